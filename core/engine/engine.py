"""The streaming engine: audio blocks in, a steady stream of rendered frames out, within a latency budget.

Threads (the GUI thread is never one of them):
  source  -> `_deliver` appends (samples, capture time) to the run's audio queue
  worker  -> owns the model device: audio -> motion source -> batched rendering -> frame queue
  pacer   -> (real-time sources) emits one frame per 1/fps tick to the sinks; repeats the last frame on
             underrun, drops frames that overran the queue or went stale, and counts both; after a repeat or
             a stall it drops the frames that would keep latency above its floor (core/engine/pacer.py).
With a non-real-time source (a file rendered as fast as possible) the worker hands frames to the sinks itself.

Latency budget (real-time sources): a frame whose estimated emission would come later than `budget` after
its audio was captured is never rendered. The worker sheds (1) audio older than the budget before the motion
source sees it (the source is reset at the gap) and (2) motion rows it cannot render in time, oldest first, and
always renders the newest row. So latency exceeds the budget by at most one render of one batch and never
grows with running time; a machine too slow for real time shows fewer, recent frames instead of old ones.
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
from core.timebase import FPS, FRAME_MS, SAMPLE_RATE, SAMPLES_PER_FRAME

from .clock import REAL_TIME, Clock
from .contracts import AudioSource, FrameRenderer, Portrait, Sink
from .pacer import OBSERVE_S, Pacer
from .ring import HostRing
from .sinks import FrameInfo, SinkFailure

log = logging.getLogger(__name__)

# Default latency budgets (mouth to frame). A GPU renders a batch in tens of ms, so 300 ms leaves room for the
# motion look-ahead and a batch; a CPU that keeps up (tiny/lite sizes) needs about twice that for its batches.
GPU_BUDGET_MS = 300.0
CPU_BUDGET_MS = 600.0
# Processing room kept on top of a motion source's algorithmic latency (a 25-frame window needs ~1 s of audio
# before its first frame exists; a 300 ms budget cannot be met, so the engine uses look-ahead + this).
MIN_HEADROOM_MS = 5 * FRAME_MS
STATS_WINDOW_S = 5.0  # latency percentiles and render fps are over this much recent stream


def default_budget_ms(device: torch.device | str) -> float:
    kind = torch.device(device).type
    return GPU_BUDGET_MS if kind in ("cuda", "mps") else CPU_BUDGET_MS


@dataclass
class EngineSettings:
    fps: int = FPS  # output frame rate (motion is generated at 25 fps; other rates resample by repetition)
    width: int = 1280  # the camera's frame size; sinks fit frames into it
    height: int = 720
    max_batch: int = 8  # frames rendered per batch at most (real time renders whatever is ready)
    max_queue_s: float = 0.6  # frame queue length; never below a motion window plus a batch
    latency_budget_ms: float | None = None  # mouth-to-frame budget; None: by device (GPU 300 ms, CPU 600 ms)
    jitter_ms: float = 2 * FRAME_MS  # the pacer starts this long after the first frame (absorbs burst jitter)
    motion: MotionSettings = field(default_factory=MotionSettings)


@dataclass
class EngineStats:
    running: bool
    device: str
    fps: float  # frames emitted per second over the last second (= output_fps; repeats included)
    latency_ms: float  # capture of a frame's last audio sample -> its emission (median of recent new frames)
    first_frame_ms: float  # start of the stream -> first emitted frame
    stage_ms: dict[str, float]  # per-frame cost of each stage (exponential average)
    audio_queue: int  # audio blocks waiting for the worker
    frame_queue: int  # rendered frames waiting for the pacer
    frames_rendered: int
    frames_emitted: int  # new frames emitted (repeats not counted)
    underruns: int  # pacer ticks with no new frame (the last frame was repeated); = repeats
    drops: int  # stream frames never shown: shed before rendering + dropped from the frame queue
    muted: bool
    output_fps: float = 0.0  # what the sinks receive per second (a repeat counts)
    render_fps: float = 0.0  # new frames rendered per second over the last few seconds
    capacity_fps: float = 0.0  # what the renderer could do flat out (1 / per-frame render cost)
    repeats: int = 0
    drops_before_render: int = 0  # motion rows (or audio, in frames) shed because they could not be on time
    drops_after_render: int = 0  # rendered frames dropped from the queue (overrun, stale or catch-up)
    catch_up_drops: int = 0  # of those, dropped to bring latency back to its floor after a repeat or a stall
    latency_ms_p50: float = 0.0
    latency_ms_p95: float = 0.0
    latency_ms_max: float = 0.0
    latency_budget_ms: float = 0.0  # the budget in force (raised to the motion look-ahead + headroom if needed)
    keeping_up: bool = True
    state: str = ""  # one plain-language line: keeping up, or what the machine manages and what to try


class EngineBusy(RuntimeError):
    """start() while the previous run's worker is still finishing a render."""


class _Run:
    """Everything one start()..stop() owns, so a late thread of an old run can never touch a new one."""

    def __init__(self, engine: Engine, realtime: bool) -> None:
        s = engine.settings
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
        self.worker_done = False
        self.t_start = engine.clock.now()
        self.pacer: Pacer = Pacer(s.fps, engine._queue_limit(), engine.clock.now, s.jitter_ms / 1000.0,
                                  stale=self._stale, observe_s=engine._observe_s())
        self.budget_s = engine._budget_ms() / 1000.0
        self.threads: list[threading.Thread] = []

    def _stale(self, item, now: float) -> bool:
        """A queued frame is stale at its tick once it is two periods past the budget (backstop only: the
        worker does not render what it expects to be late)."""
        return now - item[2] > self.budget_s + 2 * self.pacer.period


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
        self._run: _Run | None = None
        self._stragglers: list[threading.Thread] = []  # threads of stopped runs still finishing a render
        self._source = None
        self._requests: deque[tuple[Callable[[], object], Future | None]] = deque()
        self._muted = False
        self._stage_s = {"motion": 0.0, "render": 0.0, "sinks": 0.0}  # per frame, kept across runs
        self._reset_counters()
        self._ring = HostRing(pinned=renderer.spec.is_cuda)
        self._warm_sizes: set[int] = set()  # batch sizes rendered once already (a first render is a cold start)
        self._render_cold = False  # the render estimate comes from a cold batch only
        motion.use_models(renderer.models)

    # ------------------------------------------------------------------ control (any thread)
    @property
    def running(self) -> bool:
        run = self._run
        return run is not None and not run.stop.is_set() and any(t.is_alive() for t in run.threads)

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
        def apply(run: _Run | None) -> None:
            self.settings = replace(settings, fps=self.settings.fps) if run is not None else settings
            self.motion.configure(settings.motion)
            if run is not None:
                run.pacer.max_queue = self._queue_limit()
                run.pacer.observe_s = self._observe_s()
                run.budget_s = self._budget_ms() / 1000.0

        if self.running:
            run = self._run
            self._post(lambda: apply(run if run is self._run and not run.stop.is_set() else None))
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
        self._reset_counters()
        self.done.clear()
        self._source = source
        self.motion.reset(self._portrait)
        # backends that capture per batch size (CUDA graphs) do it now, not mid-stream where the capture spike
        # would be a late frame and feed the render-time average that decides what to shed
        self.renderer.warm_up(self._portrait, self.settings.max_batch)
        run = _Run(self, source.realtime)
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
        self._fail_requests(RuntimeError("engine stopped"))

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
        run = self._run
        now = self.clock.now()
        emitted = [t for t in list(self._emit_times) if now - t <= 1.0]
        # over the last second, or since the first frame went out when that is more recent: right after a start
        # "output 2 fps" beside "render 17 fps" would describe the wait for the first frame, not the stream
        first_out = run.t_start + self._first_frame_s if run is not None and self._first_frame_s is not None else None
        out_span = 1.0 if first_out is None else min(1.0, max(now - first_out, 1.0 / self.settings.fps))
        output_fps = len(emitted) / out_span
        recent = [(t, lat) for t, lat in list(self._latencies) if now - t <= STATS_WINDOW_S]
        lat = np.array([x for _, x in recent]) * 1000 if recent else np.zeros(0)
        rendered = [(t, n) for t, n in list(self._render_log) if now - t <= STATS_WINDOW_S]
        span = min(STATS_WINDOW_S, max(now - (run.t_start if run else now), 1e-3))
        render_fps = sum(n for _, n in rendered) / span if rendered else 0.0
        per_frame = self._stage_s["render"] + self._stage_s["motion"] if self._stage_s["render"] else 0.0
        capacity = 1.0 / per_frame if per_frame > 0 else 0.0
        busy = self._busy
        if busy is not None and run is not None and not run.stop.is_set():  # a render in flight counts too:
            since, frames = busy  # the first official-size frame on a CPU takes many seconds
            if now - since > frames / self.settings.fps:
                capacity = min(capacity, frames / (now - since)) if capacity else frames / (now - since)
        pacer = run.pacer if run else None
        drops_after = pacer.drops if pacer else 0
        repeats = pacer.underruns if pacer else 0
        budget = run.budget_s * 1000 if run else self._budget_ms()
        fps = self.settings.fps
        keeping_up = capacity == 0.0 or capacity >= 0.95 * fps
        return EngineStats(
            running=self.running, device=self.renderer.spec.describe(), fps=output_fps,
            latency_ms=float(np.median(lat)) if len(lat) else 0.0,
            first_frame_ms=1000 * self._first_frame_s if self._first_frame_s is not None else 0.0,
            stage_ms={k: 1000 * v for k, v in self._stage_s.items()}, audio_queue=len(run.audio) if run else 0,
            frame_queue=len(pacer.frames) if pacer else 0, frames_rendered=self._rendered,
            frames_emitted=self._emitted, underruns=repeats, drops=self._shed + drops_after, muted=self._muted,
            output_fps=output_fps, render_fps=render_fps, capacity_fps=capacity, repeats=repeats,
            drops_before_render=self._shed, drops_after_render=drops_after,
            catch_up_drops=pacer.catch_up_drops if pacer else 0,
            latency_ms_p50=float(np.percentile(lat, 50)) if len(lat) else 0.0,
            latency_ms_p95=float(np.percentile(lat, 95)) if len(lat) else 0.0,
            latency_ms_max=float(lat.max()) if len(lat) else 0.0, latency_budget_ms=budget,
            keeping_up=keeping_up, state=self._state_text(keeping_up, capacity, fps, budget),
        )

    def _state_text(self, keeping_up: bool, capacity: float, fps: int, budget: float) -> str:
        device = self.renderer.spec.device.type
        if not capacity:
            return "starting: waiting for the first frame"
        if keeping_up:
            return f"keeping up: renders up to {min(capacity, 999):.0f} fps for {fps} fps within {budget:.0f} ms"
        where = "on CPU" if device == "cpu" else f"on {device.upper()}"
        rate = f"{capacity:.2f}" if capacity < 1 else f"{capacity:.1f}"
        return (f"cannot keep up: rendering {rate} of {fps} fps {where}, so frames are skipped to stay "
                f"within {budget:.0f} ms; try Lite mode, a smaller size or a GPU")

    # ------------------------------------------------------------------ internals
    def _budget_ms(self) -> float:
        """The budget in force: the setting (or the device default), raised to the motion source's
        look-ahead plus MIN_HEADROOM_MS when the setting could never be met."""
        wanted = self.settings.latency_budget_ms
        if wanted is None:
            wanted = default_budget_ms(self.renderer.spec.device)
        return max(float(wanted), float(self.motion.latency_ms()) + MIN_HEADROOM_MS)

    def _queue_limit(self) -> int:
        """Frame queue length: at least what a motion window releases at once plus a batch, so windowed
        sources (25 frames at once) are never trimmed in steady state."""
        window = math.ceil(float(self.motion.latency_ms()) / FRAME_MS) + 1
        return max(2, int(self.settings.max_queue_s * self.settings.fps), window + self.settings.max_batch)

    def _observe_s(self) -> float:
        """How long the pacer watches frames' spare time before catching up: longer than one motion window,
        so a windowed source's least-spare frame (a window's first) is always among those watched."""
        return OBSERVE_S + float(self.motion.latency_ms()) / 1000.0

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

    def _reset_counters(self) -> None:
        self._rendered = self._emitted = self._shed = 0
        self._emit_times: deque[float] = deque(maxlen=256)
        self._latencies: deque[tuple[float, float]] = deque(maxlen=1024)  # (emit time, latency s)
        self._render_log: deque[tuple[float, int]] = deque(maxlen=1024)  # (time, frames) per batch
        self._first_frame_s: float | None = None
        self._busy: tuple[float, int] | None = None  # (start, frames) of the render in flight

    def _source_failed(self, exc: BaseException) -> None:
        """The audio source died on its own thread: stop this run and tell the application."""
        log.warning("audio source failed: %s", exc)
        run = self._run
        if run is not None:
            run.stop.set()
            run.wake.set()
        if self.on_error is not None:
            self.on_error(exc)

    def _deliver(self, run: _Run, samples: np.ndarray, capture_time: float) -> None:
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
        future: Future = Future()
        self._requests.append((fn, future))
        run.wake.set()
        return future.result(timeout=120)

    def _post(self, fn: Callable[[], object]) -> None:
        """Queue fn for the worker between two batches without waiting for it."""
        self._requests.append((fn, None))
        if self._run is not None:
            self._run.wake.set()

    def _serve_requests(self) -> None:
        while self._requests:
            fn, future = self._requests.popleft()
            try:
                result = fn()
                if future is not None:
                    future.set_result(result)
            except BaseException as exc:
                if future is None:
                    raise
                future.set_exception(exc)

    def _fail_requests(self, exc: BaseException) -> None:
        while self._requests:
            fn, future = self._requests.popleft()
            if future is not None:
                future.set_exception(exc)
            else:  # settings posted for the worker: apply them here, nothing is running now
                try:
                    fn()
                except Exception as err:
                    log.warning("applying settings after stop: %s", err)

    def _guard(self, run: _Run, body: Callable[[_Run], None]) -> None:
        try:
            body(run)
        except BaseException as exc:  # report and end this run; the engine can be started again
            log.exception("engine thread failed")
            run.stop.set()
            run.wake.set()
            self._fail_requests(exc)
            if self.on_error is not None:
                self.on_error(exc)

    def _avg(self, stage: str, seconds: float, frames: int = 1) -> None:
        """Exponential average per frame; weight 0.25 so a cost change shows within a few batches (the
        render estimate decides what to skip)."""
        per = seconds / max(frames, 1)
        old = self._stage_s[stage]
        self._stage_s[stage] = per if old == 0 else 0.75 * old + 0.25 * per

    def _note_render_time(self, seconds: float, frames: int) -> None:
        """The first render of a batch size is a cold start (graph capture, buffers, kernel choice), not what
        the next batch will cost: it stands in only while there is no other figure, and the first warm
        batch replaces it. The estimate decides what to shed, so a capture spike must not feed it."""
        warm = frames in self._warm_sizes
        self._warm_sizes.add(frames)
        if warm and self._render_cold:
            self._stage_s["render"] = 0.0  # replaced, not averaged with
            self._render_cold = False
        if warm or not self._stage_s["render"]:
            self._render_cold = not warm
            self._avg("render", seconds, frames)

    def _capture_time_of(self, run: _Run, sample: int) -> float:
        """Capture time of an absolute sample index, from the block markers (old markers are discarded)."""
        markers = run.markers
        while len(markers) > 1 and markers[1][0] <= sample:
            markers.popleft()
        start, t = markers[0]
        return t + (sample - start) / SAMPLE_RATE

    def _row_capture(self, run: _Run, stream_frame: int) -> float:
        """Capture time of the last audio sample of motion-stream frame `stream_frame`."""
        end = min((stream_frame + 1) * SAMPLES_PER_FRAME, run.stream_in)
        return self._capture_time_of(run, run.origin + max(end, 1) - 1)

    def _queued_slots(self, run: _Run) -> set[int]:
        """Host-ring slots still referenced by the pacer: queued frames and the last one shown (repeats)."""
        if not run.realtime or not self._ring.pinned:
            return set()
        return {item[3] for item in run.pacer.held()}

    def _shed_audio(self, run: _Run) -> None:
        """Audio queued longer than the budget can no longer make a frame on time: keep only the newest
        look-ahead + one frame of it, drop the rest and restart the motion stream at the gap."""
        if not run.audio or run.audio[0][1] >= self.clock.now() - run.budget_s:
            return
        keep_s = float(self.motion.latency_ms()) / 1000.0 + 2 * FRAME_MS / 1000.0
        cutoff = self.clock.now() - keep_s
        dropped = 0
        while len(run.audio) > 1 and run.audio[1][1] <= cutoff:
            samples, capture = run.audio.popleft()
            run.markers.append((run.samples_in, capture))
            run.samples_in += len(samples)
            dropped += len(samples)
        if not dropped:
            return
        misaligned = run.samples_in % SAMPLES_PER_FRAME  # restart on a frame boundary of the whole stream, so
        if misaligned and len(run.audio[0][0]) > SAMPLES_PER_FRAME - misaligned:  # frame numbers stay absolute
            samples, capture = run.audio.popleft()
            cut = SAMPLES_PER_FRAME - misaligned
            run.markers.append((run.samples_in, capture))
            run.audio.appendleft((samples[cut:], capture + cut / SAMPLE_RATE))
            run.samples_in += cut
            dropped += cut
        self._shed += dropped // SAMPLES_PER_FRAME + len(run.pending)
        run.origin = run.samples_in
        run.frame_base = run.origin // SAMPLES_PER_FRAME
        run.stream_in = run.stream_frames = 0
        run.pending = np.zeros((0, 0), np.float32)
        self.motion.reset(self._portrait)

    def _work(self, run: _Run) -> None:
        run.pending = np.zeros((0, 0), np.float32)
        run.pending_first = 0  # motion-stream frame index of pending[0]
        zeros = None
        flushed = False
        while not run.stop.is_set():
            self.clock.wait(run.wake, 0.01)
            run.wake.clear()
            self._serve_requests()
            if run.realtime:
                self._shed_audio(run)
            t0 = time.perf_counter()
            while run.audio:
                samples, capture = run.audio.popleft()
                run.markers.append((run.samples_in, capture))
                run.samples_in += len(samples)
                run.stream_in += len(samples)
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
                self._avg("motion", (time.perf_counter() - t0) * self.clock.speed, len(rows))
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
                    self._drop_late_rows(run)
                take = run.pending[:batch]
                first = run.pending_first
                run.pending, run.pending_first = run.pending[len(take):], first + len(take)
                self._render(run, take, first)
                self._serve_requests()  # settings and portrait changes land between batches
            if flushed and not len(run.pending):
                run.worker_done = True  # the pacer sets `done` once the queue is empty
                if not run.realtime:
                    self._finish()
                return

    def _drop_late_rows(self, run: _Run) -> None:
        """Drop leading rows whose frame could not reach a sink within the budget; keep the newest row."""
        per_frame = self._stage_s["render"]
        pacer = run.pacer
        while len(run.pending) > 1:
            m = min(len(run.pending), self.settings.max_batch)
            now = self.clock.now()
            emit = max(now + m * per_frame, pacer.next_emit() or 0.0)
            if emit - self._row_capture(run, run.pending_first) <= run.budget_s:
                return
            run.pending, run.pending_first = run.pending[1:], run.pending_first + 1
            self._shed += 1

    def _render(self, run: _Run, rows: np.ndarray, first: int) -> None:
        with self._lock:
            portrait = self._portrait  # read once: a switch lands between batches, never inside one
        slot, out = self._ring.take(portrait.image.shape, self.settings.max_batch, len(rows), self._queued_slots(run))
        t0 = time.perf_counter()
        self._busy = (self.clock.now(), len(rows))
        frames = self.renderer.render(portrait, rows, out=out)
        self._busy = None
        self._note_render_time((time.perf_counter() - t0) * self.clock.speed, len(rows))
        self._rendered += len(rows)
        now = self.clock.now()
        self._render_log.append((now, len(rows)))
        for i in range(len(rows)):
            capture = self._row_capture(run, first + i) if run.markers else now
            index = run.frame_base + first + i
            if run.realtime:
                run.pacer.push((frames[i], index, capture, slot))  # drops the oldest on overrun
            else:
                self._emit(run, frames[i], FrameInfo(index, index / FPS, capture, self.clock.now()))

    def _emit(self, run: _Run, frame: np.ndarray, info: FrameInfo) -> None:
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
        self._avg("sinks", (time.perf_counter() - t0) * self.clock.speed)
        if not info.repeated:  # latency ends when the sinks have the frame (a camera write is part of it)
            self._emitted += 1
            done = self.clock.now()
            self._latencies.append((done, done - info.capture_time))
        if self._first_frame_s is None:
            self._first_frame_s = info.emit_time - run.t_start
        self._emit_times.append(info.emit_time)

    def _pace(self, run: _Run) -> None:
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
