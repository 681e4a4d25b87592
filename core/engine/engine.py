"""The engine's mechanism: threads, the request queue, the pinned host ring and the device, for one renderer and
one motion source. What to drop and when is the latency policy (core/engine/policy.py); what is counted and how
it reads is core/engine/stats.py; one run's state is core/engine/run.py; frame pacing is core/engine/pacer.py.

Threads (the GUI thread is never one of them):
  source  -> `_deliver` appends (samples, capture time) to the run's audio queue
  worker  -> owns the model device: audio -> motion source -> batched rendering -> frame queue; requests from
             other threads (portrait switch, settings) run on it between two batches
  pacer   -> (real-time sources) emits one frame per 1/fps tick to the sinks; repeats the last frame on
             underrun, drops frames that overran the queue or went stale, and counts both; after a repeat or
             a stall it drops the frames that would keep latency above its floor (core/engine/pacer.py).
With a non-real-time source (a file rendered as fast as possible) the worker hands frames to the sinks itself.

Lifecycle (the states are written down in docs/ARCHITECTURE.md, "Lifecycles"): idle -> start() -> running ->
stop() -> idle; a worker still inside a render after stop's timeout is a straggler: start() waits for it (or
raises EngineBusy), close() waits for it, `join_workers` lets an owner (core.session) wait for it later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from core.motion.source import MotionSource
from core.timebase import FPS

from . import policy
from .clock import REAL_TIME, Clock
from .contracts import AudioSource, FrameRenderer, Portrait, Sink
from .policy import EngineSettings, default_budget_ms  # noqa: F401  (the engine's public names)
from .requests import Requests
from .ring import HostRing
from .run import Run
from .sinks import FrameInfo, SinkFailure
from .stats import EngineStats, Recorder

log = logging.getLogger(__name__)


class EngineBusy(RuntimeError):
    """start() while the previous run's worker is still finishing a render."""


class Engine:
    restart_wait_s = 30.0  # start() waits this long for a previous run's worker to finish its render

    def __init__(self, renderer: FrameRenderer, motion: MotionSource, settings: EngineSettings | None = None,
                 clock: Clock | None = None) -> None:
        self.renderer = renderer
        self.motion = motion
        self.settings = settings or EngineSettings()
        self.clock = clock or REAL_TIME
        self.on_error: Callable[[BaseException], None] | None = None
        self.on_finished: Callable[[], None] | None = None  # a finite source was fully emitted (engine thread)
        # fn(samples, capture_time) sees every delivered block, on the source thread (level meters, benches)
        self.audio_taps: list[Callable[[np.ndarray, float], None]] = []
        self.sinks: list[Sink] = []
        self._portrait: Portrait | None = None
        self._lock = threading.Lock()
        self.done = threading.Event()  # set when a finite source has been fully rendered and emitted
        self._run: Run | None = None
        self._stragglers: list[threading.Thread] = []  # threads of stopped runs still finishing a render
        self._source = None
        self._requests = Requests()
        self._muted = False
        self.record = Recorder()  # statistics (core/engine/stats.py)
        self._ring = HostRing(pinned=renderer.spec.is_cuda)
        motion.use_models(renderer.models)

    # ------------------------------------------------------------------ control (any thread)
    @property
    def running(self) -> bool:
        run = self._run
        return run is not None and not run.stop.is_set() and any(t.is_alive() for t in run.threads)

    @property
    def frame_base(self) -> int:  # output frame number of the motion stream's row 0 (moves when audio is shed)
        return getattr(self._run, "frame_base", 0)

    def alive_workers(self) -> int:
        """Worker threads of this engine still alive (the current run's and stopped runs' stragglers)."""
        threads = set(self._stragglers) | set(self._run.threads if self._run else ())
        return sum(t.is_alive() and t.name == "headcast-worker" for t in threads)

    def add_sink(self, sink: Sink) -> None:
        with self._lock:
            self.sinks.append(sink)

    def remove_sink(self, sink: Sink) -> None:
        with self._lock:
            if sink in self.sinks:
                self.sinks.remove(sink)
        sink.close()

    def set_portrait(self, image: np.ndarray | str | Path, face: int | None = None) -> Portrait:
        """Prepare a portrait (on the worker thread when running) and switch to it between two batches.
        `face`: which face of a photo with several (core.face.FACE_ORDER; None: the largest)."""
        def switch() -> Portrait:
            # one step on the worker: the motion source is bound to the new portrait (its lip/eye tables) before
            # any batch can render it, and the worker reads `_portrait` once per batch, so no frame mixes the two
            portrait = self.renderer.prepare(image, face=face)
            if self._portrait is not None:
                self.motion.bind_portrait(portrait)
            with self._lock:
                self._portrait = portrait
            return portrait

        return self._on_worker(switch)

    def configure(self, settings: EngineSettings) -> None:
        """New settings apply on the worker between two batches (never under its feet); fps applies from the
        next start. Returns at once."""
        def apply(run: Run | None) -> None:
            self.settings = replace(settings, fps=self.settings.fps) if run is not None else settings
            self.motion.configure(settings.motion)
            if run is not None:
                run.pacer.max_queue = self._queue_limit()
                run.pacer.observe_s = self._observe_s()
                run.budget_s = self._budget_ms() / 1000.0

        if self.running:
            run = self._run
            self._requests.post(lambda: apply(run if run is self._run and not run.stop.is_set() else None),
                                run.wake.set)
        else:
            apply(None)

    def set_muted(self, muted: bool) -> None:
        """Muted: the motion source hears silence, so the avatar eases into its idle state."""
        self._muted = muted

    def start(self, source: AudioSource) -> None:
        if self.running:
            raise RuntimeError("the engine is already running; stop it first")
        if self._portrait is None:
            raise RuntimeError("no portrait: call set_portrait() before start()")
        self._reap(self.restart_wait_s)
        self.record.reset()
        self.done.clear()
        self._source = source
        self.motion.reset(self._portrait)
        # backends that capture per batch size (CUDA graphs) do it now, not mid-stream where the capture spike
        # would be a late frame and feed the render-time average that decides what to shed
        self.renderer.warm_up(self._portrait, self.settings.max_batch)
        s = self.settings
        run = Run(source.realtime, s.fps, self._queue_limit(), self.clock.now, s.jitter_ms / 1000.0,
                  self._observe_s(), self._budget_ms() / 1000.0)
        run.threads = [threading.Thread(target=self._guard, args=(run, self._work), name="headcast-worker",
                                        daemon=True)]
        if run.realtime:
            run.threads.append(threading.Thread(target=self._guard, args=(run, self._pace), name="headcast-pacer",
                                                daemon=True))
        self._run = run
        for t in run.threads:
            t.start()
        source.on_error = self._source_failed
        try:
            source.start(lambda samples, capture: self._deliver(run, samples, capture))
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the source and the threads; sinks stay attached (a later start reuses them).

        A worker still inside a render after `timeout` s is kept as a straggler: start() waits for it (or
        refuses with EngineBusy), so two workers never share the device and the models."""
        source, self._source = self._source, None
        if source is not None:
            try:
                source.stop()
            except Exception as exc:  # a vanished microphone must not block stopping
                log.warning("audio source stop: %s", exc)
        run = self._run
        if run is not None:
            run.stop.set()
            run.wake.set()
            deadline = time.monotonic() + timeout
            for t in run.threads:
                if t is not threading.current_thread():
                    t.join(timeout=max(0.0, deadline - time.monotonic()))
            self._stragglers += [t for t in run.threads if t.is_alive() and t is not threading.current_thread()]
        self._requests.fail(RuntimeError("engine stopped"))

    def close(self, timeout: float = 60.0, wait: bool = True) -> None:
        """Stop, wait up to `timeout` s for a render in progress (so nothing runs on the device while the
        process exits: that is what aborted the app with 'terminate called without an active exception'),
        and release the sinks. `wait=False`: leave a straggler to the caller (core.session owns those across
        starts and joins them with `join_workers`)."""
        self.stop(timeout)
        if wait:
            self._reap(timeout, raise_busy=False)
        with self._lock:
            sinks, self.sinks = self.sinks, []
        for sink in sinks:
            try:
                sink.close()
            except Exception as exc:  # one sink failing to close must not keep the others open
                log.warning("closing %s: %s", type(sink).__name__, exc)

    def join_workers(self, timeout: float) -> bool:
        """Wait up to `timeout` s for stopped runs' workers; True when none is left."""
        self._reap(timeout, raise_busy=False, quiet=True)
        return not self._stragglers

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a finite source has been fully emitted (True) or the timeout passes (False)."""
        return self.done.wait(timeout)

    def stats(self) -> EngineStats:
        device = self.renderer.spec
        return self.record.snapshot(self._run, self.clock.now(), self.settings.fps, self.running, self._muted,
                                    device.describe(), device.device.type, self._budget_ms())

    # ------------------------------------------------------------------ policy in force (core/engine/policy.py)
    def _budget_ms(self) -> float:
        return policy.budget_ms(self.settings, self.renderer.spec.device, self.motion.latency_ms())

    def _queue_limit(self) -> int:
        return policy.queue_limit(self.settings, self.motion.latency_ms())

    def _observe_s(self) -> float:
        return policy.observe_s(self.motion.latency_ms())

    # ------------------------------------------------------------------ internals
    def _reap(self, timeout: float, raise_busy: bool = True, quiet: bool = False) -> None:
        deadline = time.monotonic() + timeout
        for t in self._stragglers:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        self._stragglers = [t for t in self._stragglers if t.is_alive()]
        if self._stragglers:
            msg = (f"the previous run is still finishing a render after {timeout:.0f} s; wait for it to end "
                   "and start again (a smaller size or Lite mode renders faster)")
            if raise_busy:
                raise EngineBusy(msg)
            if not quiet:
                log.warning(msg)

    def _source_failed(self, exc: BaseException) -> None:
        """The audio source died on its own thread: stop this run and tell the application."""
        log.warning("audio source failed: %s", exc)
        run = self._run
        if run is not None:
            run.stop.set()
            run.wake.set()
        if self.on_error is not None:
            self.on_error(exc)

    def _deliver(self, run: Run, samples: np.ndarray, capture_time: float) -> None:
        run.audio.append((samples, capture_time))
        run.wake.set()
        for tap in self.audio_taps:
            tap(samples, capture_time)

    def _finish(self) -> None:
        self.done.set()
        if self.on_finished is not None:
            self.on_finished()

    def _on_worker(self, fn: Callable[[], object]):
        """Run fn on the worker thread if it is running (it owns the device), else here."""
        run = self._run
        worker = run.threads[0] if run and run.threads else None
        if worker is None or not worker.is_alive() or worker is threading.current_thread() or run.stop.is_set():
            if self._stragglers and threading.current_thread() not in self._stragglers:
                self._reap(self.restart_wait_s)  # a stopped run's render still holds the device: wait for it
            return fn()
        return self._requests.call(fn, run.wake.set)

    def _guard(self, run: Run, body: Callable[[Run], None]) -> None:
        try:
            body(run)
        except BaseException as exc:  # report and end this run; the engine can be started again
            log.exception("engine thread failed")
            run.stop.set()
            run.wake.set()
            self._requests.fail(exc)
            if self.on_error is not None:
                self.on_error(exc)

    def _queued_slots(self, run: Run) -> set[int]:
        """Host-ring slots still referenced by the pacer: queued frames and the last one shown (repeats)."""
        if not run.realtime or not self._ring.pinned:
            return set()
        return {item[3] for item in run.pacer.held()}

    def _work(self, run: Run) -> None:
        zeros = None
        flushed = False
        while not run.stop.is_set():
            self.clock.wait(run.wake, 0.01)
            run.wake.clear()
            self._requests.serve()
            if run.realtime:
                shed = policy.shed_stale_audio(run, self.clock.now(), self.motion.latency_ms())
                if shed is not None:
                    self.record.shed += shed
                    self.motion.reset(self._portrait)  # the stream restarts at the gap
            t0 = time.perf_counter()
            while run.audio:
                samples = run.take_block()
                if self._muted:
                    if zeros is None or len(zeros) != len(samples):
                        zeros = np.zeros(len(samples), np.float32)
                    samples = zeros
                self.motion.push_audio(samples)
            rows = self.motion.pull()
            source = self._source
            if not flushed and source is not None and source.finished.is_set() and not run.audio:
                rows = np.concatenate((rows, self.motion.flush()))
                flushed = True
            if len(rows):
                self.record.avg("motion", (time.perf_counter() - t0) * self.clock.speed, len(rows))
                if len(run.pending) == 0:
                    run.pending, run.pending_first = rows, run.stream_frames
                else:
                    run.pending = np.concatenate((run.pending, rows))
                run.stream_frames += len(rows)
            batch = self.settings.max_batch
            while len(run.pending) and (run.realtime or len(run.pending) >= batch or flushed):
                if run.stop.is_set():
                    return
                if run.realtime:
                    self.record.shed += policy.drop_late_rows(run, self.record.render_per_frame_s, batch,
                                                              self.clock.now())
                take = run.pending[:batch]
                first = run.pending_first
                run.pending, run.pending_first = run.pending[len(take):], first + len(take)
                self._render(run, take, first)
                self._requests.serve()  # settings and portrait changes land between batches
            if flushed and not len(run.pending):
                run.worker_done = True  # the pacer sets `done` once the queue is empty
                if not run.realtime:
                    self._finish()
                return

    def _render(self, run: Run, rows: np.ndarray, first: int) -> None:
        with self._lock:
            portrait = self._portrait  # read once: a switch lands between batches, never inside one
        slot, out = self._ring.take(portrait.image.shape, len(rows), self._queued_slots(run))
        t0 = time.perf_counter()
        self.record.busy = (self.clock.now(), len(rows))
        frames = self.renderer.render(portrait, rows, out=out)
        self.record.busy = None
        now = self.clock.now()
        self.record.rendered_batch(now, (time.perf_counter() - t0) * self.clock.speed, len(rows))
        for i in range(len(rows)):
            capture = run.row_capture(first + i) if run.markers else now
            index = run.frame_base + first + i
            if run.realtime:
                run.pacer.push((frames[i], index, capture, slot))  # drops the oldest on overrun
            else:
                self._emit(run, frames[i], FrameInfo(index, index / FPS, capture, self.clock.now()))

    def _emit(self, run: Run, frame: np.ndarray, info: FrameInfo) -> None:
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
                    self.on_error(exc if isinstance(exc, SinkFailure) else SinkFailure(sink, exc))
        self.record.avg("sinks", (time.perf_counter() - t0) * self.clock.speed)
        # latency ends when the sinks have the frame (a camera write is part of it)
        self.record.emitted_frame(info.emit_time, self.clock.now(), info.capture_time, info.repeated, run.t_start)

    def _pace(self, run: Run) -> None:
        """Emit one frame per tick from the first rendered frame on; the Pacer repeats on underrun."""
        pacer = run.pacer
        while not run.stop.is_set():
            due = pacer.due()
            if due is None:  # nothing rendered yet
                if run.worker_done:
                    self._finish()
                    return
                self.clock.wait(run.stop, 0.002)
                continue
            delay = due - pacer.clock()
            if delay > 0 and self.clock.wait(run.stop, delay):
                return
            if not pacer.frames and run.worker_done:
                self._finish()
                return
            ticked = pacer.tick()
            if ticked is None:
                continue
            (frame, index, capture, _slot), repeated, stream_time = ticked
            self._emit(run, frame, FrameInfo(index, stream_time, capture, self.clock.now(), repeated))
