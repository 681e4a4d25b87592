"""Pacer policy with a fake clock: repeat on underrun, drop the oldest on overrun, even tick spacing."""

from core.engine.pacer import Pacer


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def drain_due(pacer: Pacer, clock: FakeClock, until: float) -> list:
    """Advance the fake clock tick by tick up to `until`, emitting at each due time."""
    out = []
    while (due := pacer.due()) is not None and due <= until:
        clock.t = due
        out.append(pacer.tick())
    return out


def test_nothing_before_the_first_frame():
    clock = FakeClock()
    pacer = Pacer(25, max_queue=10, clock=clock)
    assert pacer.due() is None and pacer.tick() is None
    assert pacer.underruns == 0 and not pacer.started


def test_underrun_repeats_the_last_frame_and_counts():
    clock = FakeClock()
    pacer = Pacer(25, max_queue=10, clock=clock)
    for i in range(3):
        pacer.push(i)
    emitted = drain_due(pacer, clock, until=100.0 + 9 * 0.04 + 1e-9)  # 10 ticks, only 3 frames
    assert [e[0] for e in emitted] == [0, 1, 2] + [2] * 7
    assert [e[1] for e in emitted] == [False] * 3 + [True] * 7
    assert pacer.underruns == 7 and pacer.drops == 0
    times = [e[2] for e in emitted]
    assert all(abs(b - a - 0.04) < 1e-12 for a, b in zip(times, times[1:]))
    pacer.push(3)  # a late frame goes out at the next tick, not a burst of catch-up ticks
    clock.t += 0.04
    assert pacer.tick()[:2] == (3, False)


def test_overrun_drops_the_oldest_and_counts():
    clock = FakeClock()
    pacer = Pacer(25, max_queue=4, clock=clock)
    for i in range(10):
        pacer.push(i)
    assert pacer.drops == 6 and list(pacer.frames) == [6, 7, 8, 9]
    emitted = drain_due(pacer, clock, until=100.0 + 3 * 0.04 + 1e-9)
    assert [e[0] for e in emitted] == [6, 7, 8, 9] and pacer.underruns == 0


def test_ticks_are_anchored_to_the_first_frame():
    clock = FakeClock()
    pacer = Pacer(25, max_queue=10, clock=clock)
    clock.t = 105.0
    pacer.push("a")
    pacer.push("b")
    assert pacer.due() == 105.0
    pacer.tick()
    assert abs(pacer.due() - 105.04) < 1e-12
