"""A live session without Qt: what the app's Start button and `python -m core live` both run.

Why one object: the app and the headless command must behave the same (same pipeline cache, same input and
camera policy, same error wording), and the latency figures measured headless must be the app's figures. The
app keeps only its Qt signals and the preview hand-off (app/engine_bridge.py); everything else is here.

Policy owned here:
* pipeline: built once per (weights, motion source, device, checkpoint) and reused across starts;
* input: `InputChoice` -> an audio source (microphone by name, a file played at real-time pace, optionally
  looping, or the test generator); a microphone that is not connected is named with the fix;
* camera: without a backend the session says what to install and keeps running (the app's preview works);
  a camera that fails mid-run is dropped with a message while the run goes on (sinks report their own
  failure as `SinkFailure`); any other engine error ends the run;
* input level: every delivered block updates `level_dbfs`, so a meter can show file and generator input too.

Lifecycle owned here (docs/ARCHITECTURE.md, "Lifecycles", is the one description of all levels):
  idle --start()--> running --stop()--> idle        (start() on a running session stops it first)
  Each start builds a new Engine (one run). stop() closes it; a worker still inside a render after stop's
  timeout makes the old engine *retired*: the session keeps it, the next start() waits `restart_wait_s` for it
  (or raises EngineBusy), and close() joins it, so two runs never share the models and nothing is inside torch
  at exit. Portrait preparations that take minutes (a lite atlas) run on session-owned threads; a newer
  request cancels an older one; stop() cancels them and close() joins them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from core.engine.clock import Clock
from core.engine.engine import EngineBusy, EngineSettings, EngineStats
from core.engine.sinks import SinkFailure, camera_install_hint
from core.live_input import INPUT_KINDS, InputChoice, LevelMeter, MicrophoneNotConnected, find_input_device

log = logging.getLogger(__name__)

__all__ = ["INPUT_KINDS", "InputChoice", "LevelMeter", "LiveSession", "MicrophoneNotConnected", "SessionConfig",
           "find_input_device"]

@dataclass
class SessionConfig:
    """Everything a start needs besides the portrait and the input."""

    weights: str = "auto"  # auto | synthetic-tiny | synthetic-full
    motion: str = "retarget"
    device: str = "auto"
    motion_checkpoint: str | None = None
    engine: EngineSettings = field(default_factory=EngineSettings)
    loop_files: bool = False  # a file input starts again at its end instead of finishing
    options: dict = field(default_factory=dict)  # further build_pipeline keywords (a new pipeline option)
    renderer: str = "full"  # full | lite | auto (core.lite.select: auto measures the full renderer here)
    atlas: str | None = None  # lite-mode atlas grid "LIPxEYE" (None: core.lite.atlas.AtlasSpec's default)
    backend: str = "eager"  # renderer network backend (core.backends.BACKENDS)
    precision: str | None = None  # fp32 | fp16 | bf16; None/auto: fp16 on CUDA, fp32 elsewhere
    look: object | None = None  # core.look.Look from the first frame (None: neutral); set_look() changes it live
    drive: str | None = None  # camera | camera:N | a video: face + voice driving (core/drive/live.py)
    drive_options: object | None = None  # core.drive.config.LiveDriveOptions (parts the face drives, smoothing)

    @classmethod
    def from_pipeline_kwargs(cls, kwargs: dict, **fields) -> SessionConfig:
        """From `core.cli_args.pipeline_kwargs(args)`: known keys become fields, the rest `options`."""
        kw = dict(kwargs)
        known = {k: kw.pop(k) for k in ("weights", "motion", "device", "motion_checkpoint", "renderer", "atlas",
                                        "backend", "precision") if k in kw}
        return cls(**known, options=kw, **fields)

    def pipeline_key(self) -> tuple:
        return (self.weights, self.motion, self.device, self.motion_checkpoint, self.backend, self.precision,
                tuple(sorted(self.options.items())))


def _build_pipeline(config: SessionConfig) -> tuple:
    from core.pipeline import build_pipeline

    return build_pipeline(weights=config.weights, motion=config.motion, device=config.device,
                          motion_checkpoint=config.motion_checkpoint, settings=config.engine.motion,
                          backend=config.backend, precision=config.precision, **config.options)


class LiveSession:
    """Start/stop a live engine run; callbacks arrive on engine or source threads (the app re-posts them).

    `on_error(exc)`: the run ended because of exc (the session has already stopped it).
    `on_message(text)`: something the user should know; the run goes on (camera missing or lost).
    `on_camera(text)`: the camera's state in a few words ("off", "sending to v4l2loopback: /dev/video2", ...).
    `on_finished()`: a (non-looping) file input played to its end.
    `resolve_mic(name) -> device index`: how a microphone name is found (the app passes its own).
    """

    def __init__(self, on_error: Callable[[BaseException], None] | None = None,
                 on_message: Callable[[str], None] | None = None, on_camera: Callable[[str], None] | None = None,
                 on_finished: Callable[[], None] | None = None,
                 resolve_mic: Callable[[str | None], int | None] = find_input_device, clock: Clock | None = None,
                 build: Callable[[SessionConfig], tuple] | None = None):
        self.on_error = on_error
        self.on_message = on_message
        self.on_camera = on_camera
        self.on_finished = on_finished
        self.resolve_mic = resolve_mic
        self.clock = clock
        from core.process import limit_malloc_arenas

        limit_malloc_arenas()  # every start runs new threads: without a cap each keeps an arena of freed memory
        self.restart_wait_s = 30.0  # start() waits this long for a stopped run's render to finish
        self.build = build  # config -> (renderer, motion source); default core.pipeline.build_pipeline
        self.engine = None
        self.camera_sink = None
        self.drive = None  # core.drive.live.LiveDrive of the run, with `config.drive`
        self.level = LevelMeter()
        self.choice: InputChoice | None = None
        self.renderer_choice = None  # core.lite.select.RendererChoice of the last start: which renderer and why
        self.on_atlas_progress: Callable[[int, int], None] | None = None  # lite atlas build (done, total)
        self.on_renderer_note: Callable[[str], None] | None = None  # auto: what is being timed, before it is
        self._cache_key = None
        self._cache = None
        self._lock = threading.Lock()
        self._retired: list = []  # stopped engines whose worker is still inside a render (stragglers)
        self._preparing: list[threading.Thread] = []  # portrait preparations (lite atlas builds) in progress
        self._switch_gen = 0  # the newest portrait request; an older one still preparing is cancelled
        self._lite = None  # the lite renderer of the last lite start (atlases and pools), reused by the next

    # ---- pipeline -----------------------------------------------------------------------------------
    def pipeline(self, config: SessionConfig):
        """Renderer + motion source from `core.pipeline`, cached per `SessionConfig.pipeline_key()`."""
        key = config.pipeline_key()
        if self._cache_key != key:
            self._cache = self._lite = None  # free the old models before building new ones
            self._cache = (self.build or _build_pipeline)(config)
            self._cache_key = key
        renderer, motion = self._cache
        motion.configure(config.engine.motion)
        return renderer, motion

    # ---- run control --------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.engine is not None and self.engine.running

    def start(self, config: SessionConfig, portrait: str | Path | np.ndarray, choice: InputChoice,
              camera: bool = False, muted: bool = False, sinks: tuple = (), audio_taps: tuple = (),
              face: int | None = None) -> str:
        """Build (or reuse) the pipeline, open the camera if wanted, and start; returns the camera state text.
        Blocking (model loading takes seconds on a cold start): the app calls it from a worker thread.

        Order matters: a stopped run still inside a render is waited for first (two workers never share the
        models), and the audio source is built before anything that must be closed again (the camera) is
        opened, so a bad file or a missing microphone leaves nothing open."""
        from core.engine import Engine

        if self.engine is not None:
            self.stop()
        self._wait_for_stragglers(self.restart_wait_s, raise_busy=True)
        source = self.audio_source(choice, config)
        full, motion = self.pipeline(config)
        renderer = self._renderer_for(config, full, portrait, face)
        self._apply_look(renderer, config.look, ease=False)
        drive = self._drive_for(config, full, motion)  # opened first thing in _start_engine
        engine = Engine(renderer, drive.source if drive else motion, config.engine, clock=self.clock)
        try:
            camera_text = self._start_engine(engine, config, portrait, choice, source, camera, muted, sinks,
                                             audio_taps, face)
        except BaseException:
            self._close_drive()
            self._retire(engine, 5.0)
            raise
        return camera_text

    def _start_engine(self, engine, config: SessionConfig, portrait, choice: InputChoice, source, camera: bool,
                      muted: bool, sinks: tuple, audio_taps: tuple, face: int | None) -> str:
        if self.drive is not None:  # a camera that cannot open fails before the portrait is prepared
            self.drive.open()
        engine.on_error = self._engine_error
        engine.on_finished = self._finished
        engine.set_muted(muted)
        engine.set_portrait(portrait, face=face)  # face: which of several (core.face.FACE_ORDER)
        for sink in sinks:
            engine.add_sink(sink)
        camera_text = self._open_camera(engine, config.engine) if camera else "off"
        self.level.reset()
        engine.audio_taps.append(self.level)
        engine.audio_taps.extend(audio_taps)
        self.choice = choice
        with self._lock:
            self.engine = engine
        if self.drive is not None:
            self.drive.start(engine)
        engine.start(source)
        return camera_text

    def _drive_for(self, config: SessionConfig, full, speech):
        """Face + voice for this start (`config.drive`; its camera or video not yet open); None without driving."""
        if not config.drive:
            return None
        from core.drive.live import LiveDrive

        # said once: through on_message when there is one (`_message` would also log it, and the CLI shows both)
        drive = LiveDrive(config.drive, full.cropper, speech, on_message=self.on_message or self._message,
                          loop=config.loop_files, clock=self.clock, options=config.drive_options)
        self.drive = drive
        return drive

    def _close_drive(self) -> None:
        drive, self.drive = self.drive, None
        if drive is not None:
            drive.close()

    def _renderer_for(self, config: SessionConfig, full, portrait, face: int | None = None):
        """The full renderer, or (lite / auto choosing lite) a LiteRenderer with this portrait's atlas ready;
        a missing atlas is built here, reporting to `on_atlas_progress` (minutes at official size on a CPU)."""
        from core.lite.atlas import AtlasError, AtlasSpec
        from core.lite.select import RendererChoice, resolve_renderer

        if config.renderer == "full":
            self.renderer_choice = RendererChoice("full", "full renderer chosen explicitly")
            return full
        try:
            grid = AtlasSpec.parse(config.atlas) if config.atlas else AtlasSpec()
        except ValueError as exc:
            raise AtlasError(str(exc)) from exc
        renderer, self.renderer_choice = resolve_renderer(config.renderer, full, portrait, grid,
                                                          self.on_atlas_progress, face=face,
                                                          on_note=self.on_renderer_note, lite=self._lite)
        if renderer is not full:  # kept for the next start: reloading atlases and pools each start only churns
            self._lite = renderer
        log.info("renderer: %s", self.renderer_choice.reason)
        return renderer

    def audio_source(self, choice: InputChoice, config: SessionConfig | None = None):
        from core.engine import FileSource, GeneratorSource, MicrophoneSource

        if choice.kind == "file":
            if not choice.value:
                raise FileNotFoundError("no audio file chosen")
            loop = bool(config and config.loop_files)
            return FileSource(choice.value, realtime=True, loop=loop, clock=self.clock)
        if choice.kind == "generator":
            return GeneratorSource(clock=self.clock)
        if choice.kind != "mic":
            raise ValueError(f"unknown input kind {choice.kind!r}; one of {', '.join(INPUT_KINDS)}")
        return MicrophoneSource(device=self.resolve_mic(choice.value))

    def _open_camera(self, engine, settings: EngineSettings) -> str:
        """Add the virtual camera sink; without a backend say what to install and keep the run going."""
        from core.engine import VirtualCameraSink

        try:
            sink = VirtualCameraSink(width=settings.width, height=settings.height, fps=settings.fps)
        except Exception as exc:  # VirtualCameraUnavailable carries the install hint
            self._message(f"Virtual camera unavailable; the run goes on without it. {exc}")
            return camera_install_hint().splitlines()[0]
        self.camera_sink = sink
        engine.add_sink(sink)
        return f"sending to {sink.describe()}"

    def stop(self, timeout: float = 5.0) -> None:
        """End the run and release its sinks. A worker still inside a render after `timeout` s stays owned by
        the session (a straggler): the next start waits for it, `close()` joins it."""
        with self._lock:
            engine, self.engine = self.engine, None
            self._switch_gen += 1  # a portrait still being prepared for this run is no longer wanted
        self.camera_sink = None
        self._close_drive()
        if engine is not None:
            self._retire(engine, timeout)

    def close(self, timeout: float = 60.0) -> None:
        """Stop and wait up to `timeout` s for every thread the session started (a render in progress, an atlas
        build being cancelled): nothing may run inside torch while the process exits."""
        self.stop(min(timeout, 5.0))
        self._wait_for_stragglers(timeout, raise_busy=False)

    def alive_threads(self) -> int:
        """Threads of stopped runs and portrait preparations still alive (0 once everything has ended)."""
        with self._lock:
            engines, preparing = list(self._retired), list(self._preparing)
        return sum(e.alive_workers() for e in engines) + sum(t.is_alive() for t in preparing)

    def _retire(self, engine, timeout: float) -> None:
        """Close the engine (sinks released); keep it while a worker of it is still rendering."""
        try:
            engine.close(timeout, wait=False)
        finally:
            if engine.alive_workers():
                with self._lock:
                    self._retired.append(engine)

    def _wait_for_stragglers(self, timeout: float, raise_busy: bool) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            engines, preparing = list(self._retired), list(self._preparing)
        for engine in engines:
            engine.join_workers(max(0.0, deadline - time.monotonic()))
        for thread in preparing:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._retired = [e for e in self._retired if e.alive_workers()]
            self._preparing = [t for t in self._preparing if t.is_alive()]
            busy = bool(self._retired)
        if busy:
            msg = (f"the previous run is still finishing a render after {timeout:.0f} s; wait for it to end "
                   "and start again (a smaller size or Lite mode renders faster)")
            if raise_busy:
                raise EngineBusy(msg)
            log.warning(msg)

    def wait(self, timeout: float | None = None) -> bool:
        engine = self.engine
        return engine is not None and engine.wait(timeout)

    def configure(self, config: SessionConfig) -> None:
        """Apply new settings to a running engine between batches (fps from the next start)."""
        engine = self.engine
        if engine is not None:
            engine.configure(replace(config.engine))
            if self.drive is not None:  # a new latency budget applies to driving frames too
                self.drive.configure(config.engine, engine)

    def set_portrait(self, portrait: str | Path | np.ndarray, face: int | None = None) -> None:
        """Switch portraits on a running engine. A portrait the renderer cannot prepare quickly (lite mode
        without its atlas) keeps the old face on screen while it is prepared on a session-owned thread
        (progress to `on_atlas_progress`); a newer request cancels an older one, so the last request wins,
        and `close()` joins the thread."""
        engine = self.engine
        if engine is None:
            return
        if engine.renderer.ready(portrait, face=face):
            engine.set_portrait(portrait, face=face)
            return
        with self._lock:
            self._switch_gen += 1
            gen = self._switch_gen

        def cancelled() -> bool:
            return self._switch_gen != gen

        def prepare() -> None:
            try:
                engine.renderer.prepare(portrait, on_progress=self.on_atlas_progress, cancel=cancelled, face=face)
            except Exception as exc:
                if not cancelled():
                    self._message(f"Lite mode could not prepare the new portrait: {exc}")
                return
            if not cancelled() and self.engine is engine:
                engine.set_portrait(portrait, face=face)

        thread = threading.Thread(target=prepare, name="headcast-atlas", daemon=True)
        with self._lock:
            self._preparing = [t for t in self._preparing if t.is_alive()] + [thread]
        thread.start()

    @staticmethod
    def _apply_look(renderer, look, ease: bool) -> None:
        from core.look import Look

        renderer.look.set(look if look is not None else Look(), ease=ease)  # both renderers carry a LookLayer

    def set_look(self, look) -> None:
        """A new core.look.Look on a running engine: eased in over a few frames from the next batch on (the
        renderer takes it between batches; no extra render, no pause)."""
        engine = self.engine
        if engine is not None:
            self._apply_look(engine.renderer, look, ease=True)

    def set_muted(self, muted: bool) -> None:
        engine = self.engine
        if engine is not None:
            engine.set_muted(muted)

    def stats(self) -> EngineStats | None:
        engine = self.engine
        return engine.stats() if engine is not None else None

    # ---- reports from engine threads ----------------------------------------------------------------
    def _message(self, text: str) -> None:
        log.warning("%s", text)
        if self.on_message is not None:
            self.on_message(text)

    def _engine_error(self, exc: BaseException) -> None:
        if isinstance(exc, SinkFailure) and exc.sink is self.camera_sink and exc.sink is not None:
            self.camera_sink = None  # the engine dropped the sink and keeps running
            if self.on_camera is not None:
                self.on_camera(f"stopped: {exc}")
            self._message(f"The virtual camera stopped: {exc} The run goes on without it; stop and start again "
                          "to retry the camera.")
            return
        if self.on_error is not None:
            self.on_error(exc)

    def _finished(self) -> None:
        if self.on_finished is not None:
            self.on_finished()
