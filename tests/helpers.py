"""Assertions shared by the parity tests."""

from __future__ import annotations

import numpy as np


def assert_close(got, expected, name: str, max_abs: float = 1e-4, rel_l2: float | None = 5e-5) -> None:
    """The kits' tolerance: max |diff| and relative L2, with the worst element named on failure."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, f"{name}: shape {got.shape} != expected {expected.shape}"
    diff = np.abs(got - expected)
    worst = float(diff.max()) if diff.size else 0.0
    rel = float(np.linalg.norm(got - expected) / max(np.linalg.norm(expected), 1e-30))
    where = np.unravel_index(int(diff.argmax()), diff.shape) if diff.size else ()
    assert worst <= max_abs, f"{name}: max_abs {worst:.3g} > {max_abs:g} at {where}; rel_l2 {rel:.3g}"
    if rel_l2 is not None:
        assert rel <= rel_l2, f"{name}: rel_l2 {rel:.3g} > {rel_l2:g}; max_abs {worst:.3g}"


def wait_until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    """Poll `predicate` until it holds. Tests wait for behaviour, not for a fixed time: the timeout only bounds
    a hang, so it is generous enough for a machine ten times slower than today's."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(0.01)


class kill_after:  # noqa: N801 (used as a context manager, like contextlib's)
    """`with kill_after(proc, 600):` kills `proc` if it still runs after `seconds`, so a blocking read of its pipes
    ends (EOF) and the test fails with what it printed instead of hanging the suite."""

    def __init__(self, proc, seconds: float) -> None:
        import threading

        self.timer = threading.Timer(seconds, proc.kill)
        self.timer.daemon = True

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.cancel()
