"""Engine statistics: what the status line and the benches read. The engine's threads record into `Recorder`
(counters, per-stage cost averages, recent emissions and latencies); `Recorder.snapshot` turns that into one
`EngineStats`. Kept apart from the worker so the figures' definitions can be read in one place."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from .run import Run

STATS_WINDOW_S = 5.0  # latency percentiles and render fps are over this much recent stream


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




class Recorder:
    """Counters of the current run plus per-frame stage costs kept across runs. Written by the worker and pacer
    threads (appends and integer updates), read by `snapshot` from any thread."""

    def __init__(self) -> None:
        self.stage_s = {"motion": 0.0, "render": 0.0, "sinks": 0.0}  # per frame, kept across runs
        self.warm_sizes: set[int] = set()  # batch sizes rendered once already (a first render is a cold start)
        self.render_cold = False  # the render estimate comes from a cold batch only
        self.reset()

    def reset(self) -> None:
        self.rendered = self.emitted = self.shed = 0
        self.emit_times: deque[float] = deque(maxlen=256)
        self.latencies: deque[tuple[float, float]] = deque(maxlen=1024)  # (time the sinks had it, latency s)
        self.render_log: deque[tuple[float, int]] = deque(maxlen=1024)  # (time, frames) per batch
        self.first_frame_s: float | None = None
        self.busy: tuple[float, int] | None = None  # (start, frames) of the render in flight

    def avg(self, stage: str, seconds: float, frames: int = 1) -> None:
        """Exponential average per frame; weight 0.25 so a cost change shows within a few batches (the
        render estimate decides what to skip)."""
        per = seconds / max(frames, 1)
        old = self.stage_s[stage]
        self.stage_s[stage] = per if old == 0 else 0.75 * old + 0.25 * per

    def rendered_batch(self, now: float, seconds: float, frames: int) -> None:
        """The first render of a batch size is a cold start (graph capture, buffers, kernel choice), not what
        the next batch will cost: it stands in only while there is no other figure, and the first warm
        batch replaces it. The estimate decides what to shed, so a capture spike must not feed it."""
        warm = frames in self.warm_sizes
        self.warm_sizes.add(frames)
        if warm and self.render_cold:
            self.stage_s["render"] = 0.0  # replaced, not averaged with
            self.render_cold = False
        if warm or not self.stage_s["render"]:
            self.render_cold = not warm
            self.avg("render", seconds, frames)
        self.rendered += frames
        self.render_log.append((now, frames))

    def emitted_frame(self, emit_time: float, done: float, capture_time: float, repeated: bool,
                      t_start: float) -> None:
        """A frame reached the sinks; its latency ends when they have it (`done`, after the writes)."""
        if not repeated:
            self.emitted += 1
            self.latencies.append((done, done - capture_time))
        if self.first_frame_s is None:
            self.first_frame_s = emit_time - t_start
        self.emit_times.append(emit_time)

    @property
    def render_per_frame_s(self) -> float:
        return self.stage_s["render"]

    def snapshot(self, run: Run | None, now: float, fps: int, running: bool, muted: bool, device: str,
                 device_type: str, idle_budget_ms: float) -> EngineStats:
        emitted = [t for t in list(self.emit_times) if now - t <= 1.0]
        # over the last second, or since the first frame went out when that is more recent: right after a start
        # "output 2 fps" beside "render 17 fps" would describe the wait for the first frame, not the stream
        first_out = run.t_start + self.first_frame_s if run is not None and self.first_frame_s is not None else None
        out_span = 1.0 if first_out is None else min(1.0, max(now - first_out, 1.0 / fps))
        output_fps = len(emitted) / out_span
        recent = [(t, lat) for t, lat in list(self.latencies) if now - t <= STATS_WINDOW_S]
        lat = np.array([x for _, x in recent]) * 1000 if recent else np.zeros(0)
        rendered = [(t, n) for t, n in list(self.render_log) if now - t <= STATS_WINDOW_S]
        span = min(STATS_WINDOW_S, max(now - (run.t_start if run else now), 1e-3))
        render_fps = sum(n for _, n in rendered) / span if rendered else 0.0
        capacity = self._capacity(run, now, fps)
        pacer = run.pacer if run else None
        drops_after = pacer.drops if pacer else 0
        repeats = pacer.underruns if pacer else 0
        budget = run.budget_s * 1000 if run else idle_budget_ms
        keeping_up = capacity == 0.0 or capacity >= 0.95 * fps
        return EngineStats(
            running=running, device=device, fps=output_fps,
            latency_ms=float(np.median(lat)) if len(lat) else 0.0,
            first_frame_ms=1000 * self.first_frame_s if self.first_frame_s is not None else 0.0,
            stage_ms={k: 1000 * v for k, v in self.stage_s.items()}, audio_queue=len(run.audio) if run else 0,
            frame_queue=len(pacer.frames) if pacer else 0, frames_rendered=self.rendered,
            frames_emitted=self.emitted, underruns=repeats, drops=self.shed + drops_after, muted=muted,
            output_fps=output_fps, render_fps=render_fps, capacity_fps=capacity, repeats=repeats,
            drops_before_render=self.shed, drops_after_render=drops_after,
            catch_up_drops=pacer.catch_up_drops if pacer else 0,
            latency_ms_p50=float(np.percentile(lat, 50)) if len(lat) else 0.0,
            latency_ms_p95=float(np.percentile(lat, 95)) if len(lat) else 0.0,
            latency_ms_max=float(lat.max()) if len(lat) else 0.0, latency_budget_ms=budget,
            keeping_up=keeping_up, state=state_text(keeping_up, capacity, fps, budget, device_type),
        )

    def _capacity(self, run: Run | None, now: float, fps: int) -> float:
        """What the renderer could do flat out; a render in flight counts too (the first official-size frame on
        a CPU takes many seconds)."""
        per_frame = self.stage_s["render"] + self.stage_s["motion"] if self.stage_s["render"] else 0.0
        capacity = 1.0 / per_frame if per_frame > 0 else 0.0
        busy = self.busy
        if busy is not None and run is not None and not run.stop.is_set():
            since, frames = busy
            if now - since > frames / fps:
                capacity = min(capacity, frames / (now - since)) if capacity else frames / (now - since)
        return capacity


def state_text(keeping_up: bool, capacity: float, fps: int, budget: float, device_type: str) -> str:
    if not capacity:
        return "starting: waiting for the first frame"
    if keeping_up:
        return f"keeping up: renders up to {min(capacity, 999):.0f} fps for {fps} fps within {budget:.0f} ms"
    where = "on CPU" if device_type == "cpu" else f"on {device_type.upper()}"
    rate = f"{capacity:.2f}" if capacity < 1 else f"{capacity:.1f}"
    return (f"cannot keep up: rendering {rate} of {fps} fps {where}, so frames are skipped to stay "
            f"within {budget:.0f} ms; try Lite mode, a smaller size or a GPU")
