"""One engine run (start() .. stop()): its threads' shared state, so a late thread of an old run can never
touch a new one, and the stream's timebase (which absolute audio sample was captured when)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

import numpy as np

from core.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME

from .pacer import Pacer


class Run:
    """Audio queue, stream positions, pacer and threads of one run."""

    def __init__(self, realtime: bool, fps: float, queue_limit: int, clock: Callable[[], float], jitter_s: float,
                 observe_s: float, budget_s: float) -> None:
        self.realtime = realtime
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.audio: deque[tuple[np.ndarray, float]] = deque()
        self.markers: deque[tuple[int, float]] = deque()  # (first absolute sample, capture time) per block
        self.samples_in = 0  # absolute samples received by the worker (shed ones included)
        self.origin = 0  # absolute sample where the motion source's current stream began (moves on a shed)
        self.stream_in = 0  # samples pushed into the motion source since `origin`
        self.stream_frames = 0  # rows pulled from the motion source since `origin`
        self.frame_base = 0  # output frame index of the motion stream's frame 0
        self.pending = np.zeros((0, 0), np.float32)  # motion rows waiting for a render
        self.pending_first = 0  # motion-stream frame index of pending[0]
        self.worker_done = False
        self.t_start = clock()
        self.budget_s = budget_s
        self.pacer: Pacer = Pacer(fps, queue_limit, clock, jitter_s, stale=self._stale, observe_s=observe_s,
                                  captured=_capture_time)
        self.threads: list[threading.Thread] = []

    def _stale(self, item, now: float) -> bool:
        """A queued frame is stale at its tick once it is two periods past the budget (backstop only: the
        worker does not render what it expects to be late)."""
        return now - item[2] > self.budget_s + 2 * self.pacer.period

    def take_block(self) -> np.ndarray:
        """The oldest queued audio block, its capture time noted for the frames it makes."""
        samples, capture = self.audio.popleft()
        self.markers.append((self.samples_in, capture))
        self.samples_in += len(samples)
        self.stream_in += len(samples)
        return samples

    def capture_time_of(self, sample: int) -> float:
        """Capture time of an absolute sample index, from the block markers (old markers are discarded)."""
        markers = self.markers
        while len(markers) > 1 and markers[1][0] <= sample:
            markers.popleft()
        start, t = markers[0]
        return t + (sample - start) / SAMPLE_RATE

    def row_capture(self, stream_frame: int) -> float:
        """Capture time of the last audio sample of motion-stream frame `stream_frame`."""
        end = min((stream_frame + 1) * SAMPLES_PER_FRAME, self.stream_in)
        return self.capture_time_of(self.origin + max(end, 1) - 1)


def _capture_time(item) -> float:
    """Capture time of a queued frame's audio (the engine queues (frame, index, capture time, slot))."""
    return item[2]
