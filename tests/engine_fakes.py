"""Stand-ins for the engine's models whose cost is set by the test: a renderer that sleeps on the engine's
clock and motion sources that release rows per frame or per window, so latency policy can be checked
deterministically (and, with a sped-up clock, over a minute of stream in seconds)."""

from __future__ import annotations

import threading

import numpy as np

from core.device import pick_device
from core.engine.clock import REAL_TIME, Clock
from core.layout import MOTION_DIM
from core.look_live import LookLayer
from core.timebase import FRAME_MS, SAMPLES_PER_FRAME


class FakePortrait:
    def __init__(self, size: int = 32) -> None:
        self.image = np.zeros((size, size, 3), np.uint8)
        self.key = "fake"


class FakeRenderer:
    """render() sleeps `per_frame * B + per_batch` seconds of `clock` time and returns a reused frame buffer."""

    def __init__(self, per_frame: float = 0.0, per_batch: float = 0.0, clock: Clock = REAL_TIME, size: int = 32):
        self.per_frame, self.per_batch, self.clock = per_frame, per_batch, clock
        self.spec = pick_device("cpu")
        self.models = None
        self.look = LookLayer()  # the session sets a look on every renderer; a fake ignores it when rendering
        self.size = size
        self._out = np.zeros((64, size, size, 3), np.uint8)
        self.active = 0  # renders in progress right now (must never exceed 1)
        self.max_active = 0
        self._lock = threading.Lock()

    def prepare(self, image, source_name=None, face=None, on_progress=None, cancel=None):
        return FakePortrait(self.size)

    backend_name = "fake"

    def ready(self, image, face=None) -> bool:
        return True

    def warm_up(self, portrait, max_batch: int) -> None:
        pass

    def render(self, portrait, motion, out=None):
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self.clock.sleep(self.per_frame * len(motion) + self.per_batch)
            return self._out[: len(motion)]
        finally:
            with self._lock:
                self.active -= 1


class WindowMotion:
    """Releases zero rows `window` frames at a time once their audio has arrived (window=1: per frame)."""

    name = "fake"

    def __init__(self, window: int = 1) -> None:
        self.window = window
        self.configured_on: list[str] = []
        self.reset()

    def reset(self, portrait=None) -> None:
        self.samples = 0
        self.pulled = 0

    def use_models(self, models) -> None:
        pass

    def bind_portrait(self, portrait) -> None:
        pass

    def configure(self, settings) -> None:
        self.configured_on.append(threading.current_thread().name)
        self.window = max(1, int(settings.window))

    def push_audio(self, samples) -> None:
        self.samples += len(samples)

    def pull(self) -> np.ndarray:
        ready = self.samples // SAMPLES_PER_FRAME
        n = (ready - self.pulled) // self.window * self.window
        self.pulled += n
        return np.zeros((n, MOTION_DIM), np.float32)

    def flush(self) -> np.ndarray:
        total = -(-self.samples // SAMPLES_PER_FRAME)
        n, self.pulled = total - self.pulled, total
        return np.zeros((n, MOTION_DIM), np.float32)

    def latency_ms(self) -> float:
        return (self.window - 1) * FRAME_MS
