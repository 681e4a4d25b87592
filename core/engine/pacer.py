"""Steady-rate frame emission: which frame goes out at which tick, kept apart from threads and real clocks so
its underrun/overrun policy can be tested with a fake clock."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Pacer(Generic[T]):
    """A bounded frame queue plus a tick schedule at `fps`, anchored `prebuffer_s` after the first frame.

    Underrun (a tick with nothing queued): the last frame is repeated and counted. Overrun (more than
    `max_queue` waiting): the oldest frames are dropped and counted. `stale(item, now)`: a frame that is too
    old to show is dropped at its tick when a newer one is queued (the newest is always shown), which keeps
    latency bounded when the clock of the audio and the clock of the ticks drift apart. `prebuffer_s` absorbs
    the jitter of sources that release frames in bursts (a 25-frame motion window): without it the first
    frame of each window races the tick that wants it, and every race lost is a repeat plus, later, a drop.
    """

    def __init__(self, fps: float, max_queue: int, clock: Callable[[], float] = time.monotonic,
                 prebuffer_s: float = 0.0, stale: Callable[[T, float], bool] | None = None) -> None:
        self.period = 1.0 / fps
        self.max_queue = max(1, max_queue)
        self.clock = clock
        self.prebuffer_s = prebuffer_s
        self.stale = stale
        self.frames: deque[T] = deque()
        self.underruns = 0
        self.drops = 0
        self.ticks = 0
        self._t0: float | None = None
        self._first: float | None = None
        self._last: T | None = None
        self._lock = threading.Lock()

    def push(self, item: T) -> None:
        with self._lock:
            self.frames.append(item)
            if self._first is None:
                self._first = self.clock()
            while len(self.frames) > self.max_queue:
                self.frames.popleft()
                self.drops += 1

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
            if self.stale is not None and len(self.frames) > 1:
                now = self.clock()
                while len(self.frames) > 1 and self.stale(self.frames[0], now):
                    self.frames.popleft()
                    self.drops += 1
            if self.frames:
                item, repeated = self.frames.popleft(), False
            elif self._last is None:
                return None
            else:
                item, repeated = self._last, True
                self.underruns += 1
            if self._t0 is None:
                self._t0 = self.clock()
            self._last = item
            stream_time = self.ticks * self.period
            self.ticks += 1
            return item, repeated, stream_time
