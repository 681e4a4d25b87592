"""The streaming engine: audio blocks in, a steady stream of rendered frames out.

Threads (the GUI thread is never one of them):
  source  -> `_deliver` appends (samples, capture time) to the audio queue
  worker  -> owns the model device: audio -> motion source -> batched rendering -> frame queue
  pacer   -> (real-time sources) emits one frame per 1/fps tick to the sinks; repeats the last frame on
             underrun, drops the oldest frames on overrun, and counts both.
With a non-real-time source (a file rendered as fast as possible) the worker hands frames to the sinks itself.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from core.motion.source import MotionSettings, MotionSource
from core.render import PreparedPortrait, Renderer
from core.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME

from .pacer import Pacer
from .sinks import FrameInfo

log = logging.getLogger(__name__)


@dataclass
class EngineSettings:
    fps: int = 25  # output frame rate (motion is generated at 25 fps; other rates resample by repetition)
    width: int = 1280  # the camera's frame size; sinks fit frames into it
    height: int = 720
    max_batch: int = 8  # frames rendered per batch at most (real time renders whatever is ready)
    max_queue_s: float = 0.6  # frames older than this in the queue are dropped (overrun) to bound latency
    motion: MotionSettings = field(default_factory=MotionSettings)


@dataclass
class EngineStats:
    running: bool
    device: str
    fps: float  # frames emitted per second over the last second
    latency_ms: float  # capture of a frame's last audio sample -> its emission (mean of recent frames)
    first_frame_ms: float  # start of the stream -> first emitted frame
    stage_ms: dict[str, float]  # per-frame cost of each stage (exponential average)
    audio_queue: int  # audio blocks waiting for the worker
    frame_queue: int  # rendered frames waiting for the pacer
    frames_rendered: int
    frames_emitted: int
    underruns: int  # pacer ticks with no new frame (the last frame was repeated)
    drops: int  # frames dropped because the queue ran over
    muted: bool


class Engine:
    def __init__(self, renderer: Renderer, motion: MotionSource, settings: EngineSettings | None = None) -> None:
        self.renderer = renderer
        self.motion = motion
        self.settings = settings or EngineSettings()
        self.on_error: Callable[[BaseException], None] | None = None
        self.sinks: list = []
        self._portrait: PreparedPortrait | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.done = threading.Event()  # set when a finite source has been fully rendered and emitted
        self._threads: list[threading.Thread] = []
        self._source = None
        self._requests: deque[tuple[Callable[[], object], Future]] = deque()
        self._muted = False
        self._host_ring: list[torch.Tensor] = []
        self._reset_counters()
        if hasattr(motion, "use_models"):
            motion.use_models(renderer.models)

    # ------------------------------------------------------------------ control (any thread)
    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def add_sink(self, sink) -> None:
        with self._lock:
            self.sinks.append(sink)

    def remove_sink(self, sink) -> None:
        with self._lock:
            if sink in self.sinks:
                self.sinks.remove(sink)
        sink.close()

    def set_portrait(self, image: np.ndarray | str | Path, face: int | None = None) -> PreparedPortrait:
        """Prepare a portrait (on the worker thread when running) and switch to it between two batches.
        `face`: which face of a photo with several (core.face.FACE_ORDER; None: the largest)."""
        portrait = self._on_worker(lambda: self.renderer.prepare(image, face=face))
        with self._lock:
            first = self._portrait is None
            self._portrait = portrait
        rebind = getattr(self.motion, "bind_portrait", None)
        if rebind is not None and not first:
            self._on_worker(lambda: rebind(portrait))
        return portrait

    def configure(self, settings: EngineSettings) -> None:
        """New settings apply at once; fps and batch size apply from the next start."""
        with self._lock:
            self.settings = replace(settings, fps=self.settings.fps) if self.running else settings
        self.motion.configure(settings.motion)

    def set_muted(self, muted: bool) -> None:
        """Muted: the motion source hears silence, so the avatar eases into its idle state."""
        self._muted = muted

    def start(self, source) -> None:
        if self.running:
            raise RuntimeError("the engine is already running; stop it first")
        if self._portrait is None:
            raise RuntimeError("no portrait: call set_portrait() before start()")
        self._reset_counters()
        self._stop.clear()
        self.done.clear()
        self._source = source
        self.motion.reset(self._portrait)
        self._realtime = bool(getattr(source, "realtime", True))
        self._threads = [threading.Thread(target=self._guard, args=(self._work,), name="headcast-worker",
                                          daemon=True)]
        if self._realtime:
            self._threads.append(threading.Thread(target=self._guard, args=(self._pace,), name="headcast-pacer",
                                                  daemon=True))
        for t in self._threads:
            t.start()
        self._t_start = time.monotonic()
        if hasattr(source, "on_error"):
            source.on_error = self._source_failed
        try:
            source.start(self._deliver)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the source and the threads; sinks stay attached (a later start reuses them)."""
        source, self._source = self._source, None
        if source is not None:
            try:
                source.stop()
            except Exception as exc:  # a vanished microphone must not block stopping
                log.warning("audio source stop: %s", exc)
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=5)
        self._threads = []
        self._fail_requests(RuntimeError("engine stopped"))

    def close(self) -> None:
        self.stop()
        with self._lock:
            sinks, self.sinks = self.sinks, []
        for sink in sinks:
            sink.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a finite source has been fully emitted (True) or the timeout passes (False)."""
        return self.done.wait(timeout)

    def stats(self) -> EngineStats:
        now = time.monotonic()
        recent = [t for t in self._emit_times if now - t <= 1.0]
        lat = list(self._latencies)
        return EngineStats(
            running=self.running, device=self.renderer.spec.describe(), fps=float(len(recent)),
            latency_ms=1000 * float(np.mean(lat)) if lat else 0.0,
            first_frame_ms=1000 * self._first_frame_s if self._first_frame_s is not None else 0.0,
            stage_ms={k: 1000 * v for k, v in self._stage_s.items()}, audio_queue=len(self._audio),
            frame_queue=len(self._pacer.frames), frames_rendered=self._rendered, frames_emitted=self._emitted,
            underruns=self._pacer.underruns, drops=self._pacer.drops, muted=self._muted,
        )

    # ------------------------------------------------------------------ internals
    def _reset_counters(self) -> None:
        self._audio: deque[tuple[np.ndarray, float]] = deque()
        limit = max(2, int(self.settings.max_queue_s * self.settings.fps))
        self._pacer: Pacer[tuple[np.ndarray, int, float]] = Pacer(self.settings.fps, limit)
        self._markers: deque[tuple[int, float]] = deque()  # (first sample index, capture time) per block
        self._samples_in = 0
        self._rendered = self._emitted = 0
        self._emit_times: deque[float] = deque(maxlen=200)
        self._latencies: deque[float] = deque(maxlen=50)
        self._stage_s = {"motion": 0.0, "render": 0.0, "sinks": 0.0}
        self._first_frame_s: float | None = None
        self._worker_done = False
        self._t_start = time.monotonic()

    def _source_failed(self, exc: BaseException) -> None:
        """The audio source died on its own thread: stop this run and tell the application."""
        log.warning("audio source failed: %s", exc)
        self._stop.set()
        self._wake.set()
        if self.on_error is not None:
            self.on_error(exc)

    def _deliver(self, samples: np.ndarray, capture_time: float) -> None:
        self._audio.append((samples, capture_time))
        self._wake.set()

    def _on_worker(self, fn: Callable[[], object]):
        """Run fn on the worker thread if it is running (it owns the device), else here."""
        worker = self._threads[0] if self._threads else None
        if worker is None or not worker.is_alive() or worker is threading.current_thread():
            return fn()
        future: Future = Future()
        self._requests.append((fn, future))
        self._wake.set()
        return future.result(timeout=120)

    def _fail_requests(self, exc: BaseException) -> None:
        while self._requests:
            _, future = self._requests.popleft()
            future.set_exception(exc)

    def _guard(self, body: Callable[[], None]) -> None:
        try:
            body()
        except BaseException as exc:  # report and end this run; the engine can be started again
            log.exception("engine thread failed")
            self._stop.set()
            self._wake.set()
            self._fail_requests(exc)
            if self.on_error is not None:
                self.on_error(exc)

    def _avg(self, stage: str, seconds: float, frames: int = 1) -> None:
        per = seconds / max(frames, 1)
        old = self._stage_s[stage]
        self._stage_s[stage] = per if old == 0 else 0.9 * old + 0.1 * per

    def _capture_time_of(self, sample: int) -> float:
        """Capture time of a sample index, from the block markers (old markers are discarded)."""
        while len(self._markers) > 1 and self._markers[1][0] <= sample:
            self._markers.popleft()
        start, t = self._markers[0]
        return t + (sample - start) / SAMPLE_RATE

    def _host_buffer(self, batch: int) -> torch.Tensor | None:
        """Pinned host buffers reused round-robin on CUDA (pinned allocation is slow); None elsewhere."""
        if not self.renderer.spec.is_cuda or self._portrait is None:
            return None
        h, w = self._portrait.image.shape[:2]
        cap = self.settings.max_batch
        slots = math.ceil(self.settings.max_queue_s * self.settings.fps / cap) + 3
        if not self._host_ring or self._host_ring[0].shape[1:3] != (h, w):
            self._host_ring = [torch.empty((cap, h, w, 3), dtype=torch.uint8, pin_memory=True) for _ in range(slots)]
            self._ring_i = 0
        buf = self._host_ring[self._ring_i]
        self._ring_i = (self._ring_i + 1) % len(self._host_ring)
        return buf[:batch]

    def _work(self) -> None:
        pending: list[np.ndarray] = []
        next_frame = 0
        zeros = None
        flushed = False
        while not self._stop.is_set():
            self._wake.wait(0.01)
            self._wake.clear()
            while self._requests:
                fn, future = self._requests.popleft()
                try:
                    future.set_result(fn())
                except BaseException as exc:
                    future.set_exception(exc)
            t0 = time.perf_counter()
            while self._audio:
                samples, capture = self._audio.popleft()
                self._markers.append((self._samples_in, capture))
                self._samples_in += len(samples)
                if self._muted:
                    if zeros is None or len(zeros) != len(samples):
                        zeros = np.zeros(len(samples), np.float32)
                    samples = zeros
                self.motion.push_audio(samples)
            rows = self.motion.pull()
            source = self._source
            if not flushed and source is not None and source.finished.is_set() and not self._audio:
                rows = np.concatenate((rows, self.motion.flush()))
                flushed = True
            if len(rows):
                self._avg("motion", time.perf_counter() - t0, len(rows))
                pending.append(rows)
            available = sum(len(r) for r in pending)
            batch = self.settings.max_batch
            while available and (self._realtime or available >= batch or flushed) and not self._stop.is_set():
                rows = np.concatenate(pending)
                take, rest = rows[:batch], rows[batch:]
                pending = [rest] if len(rest) else []
                available = len(rest)
                next_frame = self._render(take, next_frame)
            if flushed and not pending:
                self._worker_done = True  # the pacer sets `done` once the queue is empty
                if not self._realtime:
                    self.done.set()
                return

    def _render(self, rows: np.ndarray, first_index: int) -> int:
        with self._lock:
            portrait = self._portrait
        t0 = time.perf_counter()
        frames = self.renderer.render(portrait, rows, out=self._host_buffer(len(rows)))
        self._avg("render", time.perf_counter() - t0, len(rows))
        self._rendered += len(rows)
        for i in range(len(rows)):
            index = first_index + i
            capture = self._capture_time_of(min((index + 1) * SAMPLES_PER_FRAME, self._samples_in) - 1) \
                if self._markers else time.monotonic()
            if self._realtime:
                self._pacer.push((frames[i], index, capture))  # drops the oldest on overrun
            else:
                self._emit(frames[i], FrameInfo(index, index / 25.0, capture, time.monotonic()))
        return first_index + len(rows)

    def _emit(self, frame: np.ndarray, info: FrameInfo) -> None:
        t0 = time.perf_counter()
        with self._lock:
            sinks = list(self.sinks)
        for sink in sinks:
            try:
                sink.write(frame, info)
            except Exception as exc:  # one broken sink (camera taken away) must not stop the others
                log.warning("sink %s failed: %s", type(sink).__name__, exc)
                with self._lock:
                    if sink in self.sinks:
                        self.sinks.remove(sink)
                if self.on_error is not None:
                    self.on_error(exc)
        self._avg("sinks", time.perf_counter() - t0)
        if not info.repeated:
            self._emitted += 1
            self._latencies.append(info.emit_time - info.capture_time)
        if self._first_frame_s is None:
            self._first_frame_s = info.emit_time - self._t_start
        self._emit_times.append(info.emit_time)

    def _pace(self) -> None:
        """Emit one frame per tick from the first rendered frame on; the Pacer repeats on underrun."""
        pacer = self._pacer
        while not self._stop.is_set():
            due = pacer.due()
            if due is None:  # nothing rendered yet
                if self._worker_done:
                    self.done.set()
                    return
                self._stop.wait(0.002)
                continue
            delay = due - pacer.clock()
            if delay > 0 and self._stop.wait(delay):
                return
            if not pacer.frames and self._worker_done:
                self.done.set()
                return
            ticked = pacer.tick()
            if ticked is None:
                continue
            (frame, index, capture), repeated, stream_time = ticked
            self._emit(frame, FrameInfo(index, stream_time, capture, time.monotonic(), repeated))
