"""The engine's sense of time: `time.monotonic()`, optionally sped up so long-running behaviour can be tested
in seconds of wall time.

Why: "latency never grows with running time" needs a minute of stream to show, and a minute per test is too
slow for CI. Every timed wait in the engine, the pacer and the generated sources goes through one `Clock`, so a
`Clock(speed=10)` runs a 60 s stream in 6 s with all the same decisions (a slow renderer must sleep through
`clock.sleep` too). Real sources (the microphone) only ever see the real clock.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """Monotonic seconds; `speed` > 1 makes every second of stream take 1/speed seconds of wall time."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"clock speed must be positive, got {speed}")
        self.speed = float(speed)
        self._t0 = time.monotonic()

    def now(self) -> float:
        if self.speed == 1.0:
            return time.monotonic()
        return self._t0 + (time.monotonic() - self._t0) * self.speed

    def __call__(self) -> float:
        return self.now()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """`event.wait` for `seconds` of clock time; True when the event was set."""
        return event.wait(max(0.0, seconds) / self.speed)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds) / self.speed)


REAL_TIME = Clock()
