"""The latency policy: the budget in force, how long the frame queue is, and what the worker drops to stay within
the budget. Kept apart from the threads (core/engine/engine.py) so the rules can be read, and changed, alone.

Latency budget (real-time sources): a frame whose estimated emission would come later than `budget` after its
audio was captured is never rendered. The worker sheds (1) audio older than the budget before the motion source
sees it (the source is reset at the gap: `shed_stale_audio`) and (2) motion rows it cannot render in time,
oldest first, always rendering the newest row (`drop_late_rows`). So latency exceeds the budget by at most one
render of one batch and never grows with running time; a machine too slow for real time shows fewer, recent
frames instead of old ones. The pacer's own rules (repeat, overrun, catch-up) are in core/engine/pacer.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from core.motion.source import MotionSettings
from core.timebase import FPS, FRAME_MS, SAMPLE_RATE, SAMPLES_PER_FRAME

from .pacer import OBSERVE_S
from .run import Run

# Default latency budgets (mouth to frame). A GPU renders a batch in tens of ms, so 300 ms leaves room for the
# motion look-ahead and a batch; a CPU that keeps up (tiny/lite sizes) needs about twice that for its batches.
GPU_BUDGET_MS = 300.0
CPU_BUDGET_MS = 600.0
# Processing room kept on top of a motion source's algorithmic latency (a 25-frame window needs ~1 s of audio
# before its first frame exists; a 300 ms budget cannot be met, so the engine uses look-ahead + this).
MIN_HEADROOM_MS = 5 * FRAME_MS


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


def default_budget_ms(device: torch.device | str) -> float:
    kind = torch.device(device).type
    return GPU_BUDGET_MS if kind in ("cuda", "mps") else CPU_BUDGET_MS


def budget_ms(settings: EngineSettings, device: torch.device | str, motion_latency_ms: float) -> float:
    """The budget in force: the setting (or the device default), raised to the motion source's look-ahead plus
    MIN_HEADROOM_MS when the setting could never be met."""
    wanted = settings.latency_budget_ms
    if wanted is None:
        wanted = default_budget_ms(device)
    return max(float(wanted), float(motion_latency_ms) + MIN_HEADROOM_MS)


def queue_limit(settings: EngineSettings, motion_latency_ms: float) -> int:
    """Frame queue length: at least what a motion window releases at once plus a batch, so windowed sources
    (25 frames at once) are never trimmed in steady state."""
    window = math.ceil(float(motion_latency_ms) / FRAME_MS) + 1
    return max(2, int(settings.max_queue_s * settings.fps), window + settings.max_batch)


def observe_s(motion_latency_ms: float) -> float:
    """How long the pacer watches frames' spare time before catching up: longer than one motion window, so a
    windowed source's least-spare frame (a window's first) is always among those watched."""
    return OBSERVE_S + float(motion_latency_ms) / 1000.0


def shed_stale_audio(run: Run, now: float, motion_latency_ms: float) -> int | None:
    """Audio queued longer than the budget can no longer make a frame on time: keep only the newest look-ahead
    plus one frame of it and drop the rest, restarting the motion stream at the gap on a frame boundary of the
    whole stream (frame numbers stay absolute). Returns the frames shed (the caller resets the motion source),
    or None when nothing was."""
    if not run.audio or run.audio[0][1] >= now - run.budget_s:
        return None
    cutoff = now - (float(motion_latency_ms) / 1000.0 + 2 * FRAME_MS / 1000.0)
    dropped = 0
    while len(run.audio) > 1 and run.audio[1][1] <= cutoff:
        samples, capture = run.audio.popleft()
        run.markers.append((run.samples_in, capture))
        run.samples_in += len(samples)
        dropped += len(samples)
    if not dropped:
        return None
    misaligned = run.samples_in % SAMPLES_PER_FRAME
    if misaligned and len(run.audio[0][0]) > SAMPLES_PER_FRAME - misaligned:
        samples, capture = run.audio.popleft()
        cut = SAMPLES_PER_FRAME - misaligned
        run.markers.append((run.samples_in, capture))
        run.audio.appendleft((samples[cut:], capture + cut / SAMPLE_RATE))
        run.samples_in += cut
        dropped += cut
    shed = dropped // SAMPLES_PER_FRAME + len(run.pending)
    run.origin = run.samples_in
    run.frame_base = run.origin // SAMPLES_PER_FRAME
    run.stream_in = run.stream_frames = 0
    run.pending = np.zeros((0, 0), np.float32)
    return shed


def drop_late_rows(run: Run, per_frame_s: float, max_batch: int, now: float) -> int:
    """Drop leading pending rows whose frame could not reach a sink within the budget; keep the newest row.
    Returns how many were dropped."""
    dropped = 0
    while len(run.pending) > 1:
        m = min(len(run.pending), max_batch)
        emit = max(now + m * per_frame_s, run.pacer.next_emit() or 0.0)
        if emit - run.row_capture(run.pending_first) <= run.budget_s:
            break
        run.pending, run.pending_first = run.pending[1:], run.pending_first + 1
        dropped += 1
    return dropped
