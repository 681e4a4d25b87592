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
    """A bounded frame queue plus a tick schedule at `fps`, anchored at the first frame.

    Underrun (a tick with nothing queued): the last frame is repeated and counted. Overrun (more than
    `max_queue` waiting): the oldest frames are dropped and counted, which bounds latency.
    """

    def __init__(self, fps: float, max_queue: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.period = 1.0 / fps
        self.max_queue = max(1, max_queue)
        self.clock = clock
        self.frames: deque[T] = deque()
        self.underruns = 0
        self.drops = 0
        self.ticks = 0
        self._t0: float | None = None
        self._last: T | None = None
        self._lock = threading.Lock()

    def push(self, item: T) -> None:
        with self._lock:
            self.frames.append(item)
            while len(self.frames) > self.max_queue:
                self.frames.popleft()
                self.drops += 1

    @property
    def started(self) -> bool:
        return self._t0 is not None

    def due(self) -> float | None:
        """Clock time of the next tick; None until the first frame has arrived."""
        if self._t0 is None:
            return self.clock() if self.frames else None
        return self._t0 + self.ticks * self.period

    def tick(self) -> tuple[T, bool, float] | None:
        """Emit at the current tick -> (frame, repeated, stream time in s); None before the first frame."""
        with self._lock:
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
