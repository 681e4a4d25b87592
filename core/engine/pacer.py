"""Steady-rate frame emission: which frame goes out at which tick, kept apart from threads and real clocks so
its underrun/overrun/catch-up policy can be tested with a fake clock."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

OBSERVE_S = 0.5  # default span of shown frames whose spare time decides a catch-up (>= one source burst)
# a tick this late (a starved thread) skips the ticks it missed instead of sending them back to back; shorter
# scheduling delays on a loaded machine are made up by a short burst, as a skip would only trade one hitch for another
REANCHOR_S = 0.2
CATCH_UP_SLACK = 0.25  # periods: frames with more than 3/4 of a period to spare beyond the cushion are caught up


class Pacer(Generic[T]):
    """A bounded frame queue plus a tick schedule at `fps`, anchored `prebuffer_s` after the first frame.

    Underrun (a tick with nothing queued): the last frame is repeated and counted. Overrun (more than
    `max_queue` waiting): the oldest frames are dropped and counted. `stale(item, now)`: a frame that is too
    old to show is dropped at its tick when a newer one is queued (the newest is always shown), which keeps
    latency bounded when the clock of the audio and the clock of the ticks drift apart. `prebuffer_s` absorbs
    the jitter of sources that release frames in bursts (a 25-frame motion window): without it the first
    frame of each window races the tick that wants it, and every race lost is a repeat plus, later, a drop.

    Catch-up: a source delivers one frame per tick on average, so a repeat leaves one more frame waiting for
    the rest of the run, one period of latency each time (issue 21: 127 -> 327 ms after 5 repeats, for good).
    The pacer notes each new frame's spare time (its tick minus its arrival). When every frame shown over the
    last `observe_s` (no repeat or catch-up among them) waited at least `prebuffer_s` plus 3/4 of a period,
    the stream is that many periods (to the nearest quarter) later than it needs to be: the oldest queued
    frames are dropped (`catch_up_drops`, also counted in `drops`) while a newer one waits, so every later
    frame still keeps about the `prebuffer_s` cushion the start gave. `observe_s` must span a source's burst
    (a 25-frame window: > 1 s),
    so the first frame of each window, the one with least to spare, is always among those observed; a bursty
    source's full queue is therefore never trimmed, and a machine that cannot keep up (frames arrive late,
    nothing to spare) is never made to skip more.

    The stream's own floor: `captured(item)` (the capture time of a frame's audio), when given, lets the pacer
    note the lowest latency any frame was shown with. Latency moves in whole periods (repeats add one, drops
    take one away), but the spare time does not: a change of block phase (a file looping, a block size that
    is not a frame) shifts when frames arrive by a fraction of a period, so a stream one period too late can
    have less spare than the prebuffer plus 3/4 of a period (issue 21's CPU-hog run stayed 40 ms late for
    good). The backlog above the floor is dropped too, as far as every observed frame keeps a quarter period
    to spare, so catching up never costs a repeat the frames before did not already risk.

    Re-anchoring: a tick served `REANCHOR_S` or more late (the pacer's thread was starved) skips
    the ticks it missed (`skipped_ticks`) instead of firing them back to back; the frames rendered meanwhile
    then have time to spare and are caught up once `observe_s` has shown it.
    """

    def __init__(self, fps: float, max_queue: int, clock: Callable[[], float] = time.monotonic,
                 prebuffer_s: float = 0.0, stale: Callable[[T, float], bool] | None = None,
                 observe_s: float = OBSERVE_S, captured: Callable[[T], float] | None = None) -> None:
        self.period = 1.0 / fps
        self.max_queue = max(1, max_queue)
        self.clock = clock
        self.prebuffer_s = prebuffer_s
        self.stale = stale
        self.observe_s = observe_s
        self.captured = captured
        self.frames: deque[T] = deque()
        self.underruns = 0
        self.drops = 0
        self.catch_up_drops = 0  # frames dropped to bring latency back to its floor (included in drops)
        self.skipped_ticks = 0  # ticks a starved caller missed, skipped instead of sent back to back
        self.ticks = 0
        self._arrived: deque[float] = deque()  # push time of each queued frame
        self._spare: deque[tuple[float, float]] = deque()  # (tick time, spare s) of new frames being observed
        self._late: deque[tuple[float, float]] = deque()  # (tick time, latency s) of the same frames
        self._floor: float | None = None  # lowest latency a new frame was shown with (needs `captured`)
        self._observe_from: float | None = None  # observation (re)starts after each repeat and catch-up
        self._t0: float | None = None
        self._first: float | None = None
        self._last: T | None = None
        self._lock = threading.Lock()

    def push(self, item: T) -> None:
        with self._lock:
            now = self.clock()
            self.frames.append(item)
            self._arrived.append(now)
            if self._first is None:
                self._first = now
            while len(self.frames) > self.max_queue:
                self._pop()
                self.drops += 1

    def held(self) -> list[T]:
        """Every item the pacer still references: the queued ones and the last one shown (a repeat shows it
        again), so their buffers must not be reused."""
        with self._lock:
            items = list(self.frames)
            if self._last is not None:
                items.append(self._last)
            return items

    @property
    def started(self) -> bool:
        return self._t0 is not None

    def next_emit(self, queued_behind: int = 0) -> float | None:
        """Clock time at which a frame pushed now would go out (None before the first frame)."""
        due = self.due()
        if due is None:
            return None
        return due + (len(self.frames) + queued_behind) * self.period

    def due(self) -> float | None:
        """Clock time of the next tick; None until the first frame has arrived."""
        if self._t0 is None:
            return None if self._first is None else self._first + self.prebuffer_s
        return self._t0 + self.ticks * self.period

    def tick(self) -> tuple[T, bool, float] | None:
        """Emit at the current tick -> (frame, repeated, stream time in s); None before the first frame."""
        with self._lock:
            now = self.clock()
            if self._t0 is not None:
                late = now - (self._t0 + self.ticks * self.period)
                if late >= max(REANCHOR_S, 2 * self.period):
                    missed = int(late / self.period)
                    self.ticks += missed
                    self.skipped_ticks += missed
            if self.stale is not None and len(self.frames) > 1:
                while len(self.frames) > 1 and self.stale(self.frames[0], now):
                    self._pop()
                    self.drops += 1
            slot = now if self._t0 is None else self._t0 + self.ticks * self.period
            self._catch_up(slot)
            if self.frames:
                arrived = self._arrived[0]
                item, repeated = self._pop(), False
                latency = None if self.captured is None else slot - self.captured(item)
                self._observe(slot, slot - arrived, latency)
            elif self._last is None:
                return None
            else:
                item, repeated = self._last, True
                self.underruns += 1
                self._restart_observation(slot + self.period)  # what was seen before a repeat no longer holds
            if self._t0 is None:
                self._t0 = now
            self._last = item
            stream_time = self.ticks * self.period
            self.ticks += 1
            return item, repeated, stream_time

    def _pop(self) -> T:
        self._arrived.popleft()
        return self.frames.popleft()

    def _restart_observation(self, start: float) -> None:
        self._spare.clear()
        self._late.clear()
        self._observe_from = start

    def _observe(self, slot: float, spare: float, latency: float | None) -> None:
        if latency is not None and (self._floor is None or latency < self._floor):
            self._floor = latency
        if self._observe_from is None:
            self._observe_from = slot
        if slot < self._observe_from:
            return
        _note_minimum(self._spare, slot, spare, self.observe_s)
        if latency is not None:
            _note_minimum(self._late, slot, latency, self.observe_s)

    def _catch_up(self, slot: float) -> None:
        """Drop the oldest queued frames by the whole periods every observed frame had to spare."""
        if len(self.frames) < 2 or not self._spare or self._observe_from is None:
            return
        if slot - self._observe_from < self.observe_s:
            return
        least = self._spare[0][1]
        # not floored: the cushion the stream ran with before is the prebuffer less a few ms of jitter, and
        # flooring would leave a whole period of the backlog in place; a quarter period of jitter is allowed for
        excess = int((least - self.prebuffer_s) / self.period + CATCH_UP_SLACK)
        if self._late and self._floor is not None:  # periods above the stream's floor, as far as spare allows
            above = int((self._late[0][1] - self._floor) / self.period + CATCH_UP_SLACK)
            room = int(least / self.period - CATCH_UP_SLACK)
            excess = max(excess, min(above, room))
        dropped = 0
        while dropped < excess and len(self.frames) > 1:
            self._pop()
            dropped += 1
        if dropped:
            self.drops += dropped
            self.catch_up_drops += dropped
            self._restart_observation(slot)


def _note_minimum(log: deque[tuple[float, float]], slot: float, value: float, span: float) -> None:
    """Sliding minimum over `span` seconds: `log[0]` is the least value noted since `slot - span`."""
    while log and log[-1][1] >= value:  # keep only what can still be the minimum
        log.pop()
    log.append((slot, value))
    while log[0][0] < slot - span:
        log.popleft()
