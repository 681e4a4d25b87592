"""`python -m core bench latency`: mouth-to-frame latency measured through a real audio path.

Nobody publishes a microphone-to-screen figure for audio-driven avatars; this measures ours. A private
PulseAudio server (core/bench/pulse.py) carries a test voice from a playback stream into the virtual microphone
the live session records from, exactly as in the app. The voice is a train of syllables with sharp onsets
(silence, then a full-level 140 Hz buzz). For each onset:

  played    the time the onset left the player (PortAudio's DAC time of that sample, on time.monotonic())
  captured  the time the session's microphone stream says it captured that sample
  shown     the time the first frame whose motion was computed from audio containing the onset (the frame
            whose 40 ms holds the onset sample) reached a sink

mouth-to-frame = shown - played, split into the audio path (captured - played), the algorithmic part that no
compute can remove (the rest of the onset's frame + the motion source's look-ahead + the pacer's start cushion)
and what is left: compute, queueing and delivery. The algorithmic part plus a device's compute predicts the
figure on that device. The p50 is stored in the user cache; the app's "auto" voice delay uses it.

Where there is no audio device (the lent GPU machine has no sounddevice and no PulseAudio), `--input file` plays
the same voice into the session as a real-time audio file: capture time is then play time, the audio path
counts 0 and everything after it (algorithmic wait, compute, queueing, delivery) is measured as above.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core.cli_args import SIZE_HELP, add_size_argument
from core.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME

CACHE_ENV = "HEADCAST_CACHE_DIR"
CACHE_FILE = "latency.json"
INPUT_PATHS = ("auto", "pulse", "file")
FILE_LEAD_S = 4.0  # file input: silence before the voice, so the first onset comes after the first frames


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--motion", default="retarget,dit,joyvasa", help="comma-separated motion sources")
    add_size_argument(parser, default="tiny", help_text="synthetic network size: " + SIZE_HELP.split(": ", 1)[1])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    parser.add_argument("--onsets", type=int, default=10, help="syllable onsets per motion source")
    parser.add_argument("--gap", type=float, default=0.9, help="seconds from one onset to the next")
    parser.add_argument("--input", choices=INPUT_PATHS, default="auto",
                        help="pulse: the voice goes through a PulseAudio virtual microphone, as in the app; file: "
                             "it is played into the session as a real-time audio file (no audio device: the "
                             "audio path counts 0, the rest is measured the same way); auto: pulse where "
                             "sounddevice and pulseaudio exist, else file")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help='also write the figures as {"sources": {NAME: {"lookahead_ms", "p50_ms", "p95_ms", ...}}}')
    parser.add_argument("--no-store", action="store_true",
                        help="do not store the figures for the app (file input never stores: the app hears a "
                             "microphone)")


# ---- the measured figure, stored for the app ------------------------------------------------------------
def cache_path() -> Path:
    root = os.environ.get(CACHE_ENV)
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("headcast")
    return Path(root) / CACHE_FILE


@functools.lru_cache(maxsize=8)
def _device_kind(device: str) -> str:
    """'cpu' / 'cuda' / 'mps' (cached: the app asks several times a second)."""
    if device == "auto":
        import torch

        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    return device.split(":")[0]


_read_cache: dict[str, tuple[float, dict]] = {}


def load_measurements() -> dict:
    path = cache_path()
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return {}
    hit = _read_cache.get(str(path))
    if hit is not None and hit[0] == mtime:
        return hit[1]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    data = data if isinstance(data, dict) else {}
    _read_cache[str(path)] = (mtime, data)
    return data


def measured_latency_ms(device: str, motion: str) -> float | None:
    """The stored mouth-to-frame p50 for this device kind and motion source, or None if never measured."""
    entry = load_measurements().get(f"{_device_kind(device)}/{motion}")
    try:
        return float(entry["p50_ms"]) if entry else None
    except (KeyError, TypeError, ValueError):
        return None


def store_measurement(device_kind: str, motion: str, figures: dict) -> Path:
    from core.atomic import atomic_path

    data = dict(load_measurements())
    data[f"{device_kind}/{motion}"] = figures
    path = cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".json") as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


# ---- the test voice ---------------------------------------------------------------------------------------
def onset_voice(n: int, gap_s: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` syllables with sharp onsets -> (samples, onset sample indices). Onsets fall at random positions
    inside a frame, so the wait for the rest of the onset's frame averages out instead of being fixed."""
    rng = np.random.default_rng(seed)
    lead = int(0.8 * SAMPLE_RATE)
    burst = int(0.25 * SAMPLE_RATE)
    step = int(gap_s * SAMPLE_RATE)
    onsets = np.array([lead + i * step + int(rng.integers(0, SAMPLES_PER_FRAME)) for i in range(n)])
    x = np.zeros(onsets[-1] + step, np.float32)
    t = np.arange(burst) / SAMPLE_RATE
    buzz = np.sign(np.cos(2 * np.pi * 140 * t)) * 0.35 + np.cos(2 * np.pi * 420 * t) * 0.2  # full level at sample 0
    envelope = np.minimum(1.0, np.exp(-(t - 0.15).clip(0) * 30))  # full level at once, fades after 150 ms
    for o in onsets:
        x[o:o + burst] = (buzz * envelope).astype(np.float32)
    return x, onsets


def detect_onsets(x: np.ndarray, quiet_s: float = 0.3, threshold: float = 0.1) -> np.ndarray:
    """First sample above `threshold` after at least `quiet_s` below it."""
    loud = np.flatnonzero(np.abs(x) > threshold)
    if not len(loud):
        return loud
    keep = np.concatenate(([True], np.diff(loud) > quiet_s * SAMPLE_RATE))
    return loud[keep]


class _Player:
    """Plays mono audio to a device and notes when given samples leave it (DAC time on time.monotonic())."""

    def __init__(self, device: str, signal: np.ndarray, marks: np.ndarray) -> None:
        self.signal, self.marks, self.device = signal, marks, device
        self.played: dict[int, float] = {}
        self.pos = 0

    def _callback(self, out, frames, t, status) -> None:
        now = time.monotonic()
        start = self.pos
        chunk = self.signal[start:start + frames]
        out[: len(chunk), 0] = chunk
        out[len(chunk):, 0] = 0
        dac = now + max(0.0, t.outputBufferDacTime - t.currentTime) if t.outputBufferDacTime else now
        for i, m in enumerate(self.marks):
            if start <= m < start + frames:
                self.played[i] = dac + (m - start) / SAMPLE_RATE
        self.pos += frames
        if self.pos >= len(self.signal) + 4 * frames:
            import sounddevice as sd

            raise sd.CallbackStop

    def play(self) -> None:
        import sounddevice as sd

        with sd.OutputStream(device=self.device, channels=1, samplerate=SAMPLE_RATE, blocksize=256,
                             dtype="float32", callback=self._callback) as stream:
            while stream.active:
                time.sleep(0.02)


class _Watch:
    """Sink + audio tap: first emission time per frame index, and every captured block with its time."""

    def __init__(self) -> None:
        self.shown: dict[int, float] = {}
        self.blocks: list[tuple[np.ndarray, float]] = []
        self.lock = threading.Lock()

    def write(self, frame, info) -> None:
        if not info.repeated and info.index not in self.shown:
            self.shown[info.index] = info.emit_time

    def close(self) -> None:
        pass

    def tap(self, samples: np.ndarray, capture: float) -> None:
        with self.lock:
            self.blocks.append((np.array(samples, np.float32), capture))

    def delivered(self) -> int:
        with self.lock:
            return sum(len(b) for b, _ in self.blocks)

    def audio(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with self.lock:
            blocks = list(self.blocks)
        x = np.concatenate([b for b, _ in blocks]) if blocks else np.zeros(0, np.float32)
        starts = np.cumsum([0] + [len(b) for b, _ in blocks[:-1]]) if blocks else np.zeros(0, int)
        return x, starts, np.array([c for _, c in blocks])


def pulse_unavailable() -> str | None:
    """None if the PulseAudio path can run here, else why not."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("sounddevice") is None:
        return "sounddevice is not installed"
    if shutil.which("pulseaudio") is None:
        return "no pulseaudio binary for the virtual microphone"
    return None


def measure(motion: str, size: str, device: str, n: int, gap: float, portrait: np.ndarray,
            pulse: str | None = None) -> dict:
    """One motion source: per-onset figures, summarised. `pulse`: the PulseAudio virtual microphone the session
    records from while a player plays into it; None: the voice enters as a real-time audio file, so each
    onset's capture time is also its played time and the audio path counts 0."""
    from core.engine import EngineSettings
    from core.session import InputChoice, LiveSession, SessionConfig

    watch = _Watch()
    errors: list[BaseException] = []
    session = LiveSession(on_error=errors.append)
    config = SessionConfig(weights=f"synthetic-{size}", motion=motion, device=device, engine=EngineSettings())
    voice, onsets = onset_voice(n, gap)
    player: _Player | None = None
    with tempfile.TemporaryDirectory(prefix="headcast-latency-") as tmp:
        if pulse is None:
            from core.audio.io import save_wav

            voice = np.concatenate([np.zeros(int(FILE_LEAD_S * SAMPLE_RATE), np.float32), voice,
                                    np.zeros(3 * SAMPLE_RATE, np.float32)])
            choice = InputChoice("file", str(save_wav(Path(tmp) / "onsets.wav", voice)))
        else:
            choice = InputChoice("mic", pulse)
        session.start(config, portrait, choice, sinks=(watch,), audio_taps=(watch.tap,))
        engine = session.engine
        lookahead_s = float(engine.motion.latency_ms()) / 1000.0
        try:
            deadline = time.monotonic() + 60 + len(voice) / SAMPLE_RATE
            if pulse is not None:
                while (not watch.shown or watch.delivered() < SAMPLE_RATE // 2) and not errors:
                    if time.monotonic() > deadline:
                        raise RuntimeError("no frames or no audio within 60 s of starting the session")
                    time.sleep(0.05)
                player = _Player(pulse, voice, onsets)
                player.play()
                time.sleep(1.0 + lookahead_s + 0.5)
            else:  # the file's trailing silence gives the last onset's frame time to arrive
                while watch.delivered() < len(voice) - SAMPLE_RATE // 2 and not errors:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the audio file did not play through within a minute of its length")
                    time.sleep(0.05)
            stats = engine.stats()
        finally:
            session.close(timeout=60)
    if player is not None:
        import sounddevice as sd

        sd.sleep(10)
    if errors:
        raise RuntimeError(f"{motion}: the session failed: {errors[0]}")
    x, starts, captures = watch.audio()
    found = detect_onsets(x)
    if len(found) != n:
        via = "PulseAudio" if pulse is not None else "the audio file"
        raise RuntimeError(f"{motion}: {len(found)} onsets arrived through {via}, {n} were played")
    cushion_s = engine.settings.jitter_ms / 1000.0
    first_shown = min(watch.shown.values()) if watch.shown else float("inf")
    rows, warming = [], 0
    for i, s in enumerate(found):
        b = int(np.searchsorted(starts, s, side="right") - 1)
        captured = captures[b] + (s - starts[b]) / SAMPLE_RATE
        played = player.played.get(i) if player is not None else captured
        frame = int(s // SAMPLES_PER_FRAME)
        later = [k for k in watch.shown if k >= frame]
        if played is None or not later:
            continue
        if captured < first_shown:  # spoken before the first frame: start-up, not steady-state latency
            warming += 1
            continue
        shown = watch.shown[min(later)]
        frame_wait = ((frame + 1) * SAMPLES_PER_FRAME - s) / SAMPLE_RATE
        total = shown - played
        path = captured - played
        algorithmic = frame_wait + lookahead_s + cushion_s
        rows.append((total, path, algorithmic, total - path - algorithmic, min(later) != frame))
    if not rows:
        raise RuntimeError(f"{motion}: no onset could be matched to a shown frame "
                           f"({warming} came before the first frame)")
    a = np.array([r[:4] for r in rows]) * 1000

    def pct(col: int, q: float) -> float:
        return round(float(np.percentile(a[:, col], q)), 1)

    return {
        "motion": engine.motion.name, "input": "pulse" if pulse is not None else "file", "onsets": len(rows),
        "skipped_frames": int(sum(r[4] for r in rows)), "startup_onsets": warming,
        "p50_ms": pct(0, 50), "p95_ms": pct(0, 95),
        "audio_path_p50_ms": pct(1, 50), "algorithmic_p50_ms": pct(2, 50), "algorithmic_p95_ms": pct(2, 95),
        "compute_p50_ms": pct(3, 50), "compute_p95_ms": pct(3, 95),
        "lookahead_ms": round(lookahead_s * 1000, 1), "cushion_ms": round(cushion_s * 1000, 1),
        "render_ms_per_frame": round(stats.stage_ms["render"], 1), "drops": stats.drops,
        "budget_ms": round(stats.latency_budget_ms, 1), "batch": engine.settings.max_batch,
        "device": stats.device, "size": size,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_json(path: str | Path, results: dict[str, dict]) -> Path:
    """The figures per motion source, `lookahead_ms` (audio needed after a frame's own samples, by construction)
    next to the measured `p50_ms` / `p95_ms`; written atomically."""
    from core.atomic import atomic_path

    path = Path(path)
    with atomic_path(path, suffix=".json") as tmp:
        Path(tmp).write_text(json.dumps({"sources": results}, indent=2) + "\n", encoding="utf-8")
    return path


def main(args: argparse.Namespace) -> int:
    import contextlib
    import sys

    from core.bench.pulse import PulseUnavailable, private_pulse

    motions = [m.strip() for m in args.motion.split(",") if m.strip()]
    if args.onsets < 2:
        print("error: --onsets must be at least 2", file=sys.stderr)
        return 2
    path = args.input
    if path == "auto":
        why = pulse_unavailable()
        path = "pulse" if why is None else "file"
        if why:
            print(f"no PulseAudio path here ({why}): the voice enters as a real-time audio file")
    from skimage import data

    portrait = data.astronaut()
    kind = _device_kind(args.device)
    via = "through PulseAudio" if path == "pulse" else "from a real-time audio file (audio path not measured)"
    print(f"mouth-to-frame latency {via}, {args.size} synthetic networks on {kind}, "
          f"{args.onsets} onsets per source (SYNTHETIC WEIGHTS: timing only)")
    print(f"{'motion':10} {'p50':>7} {'p95':>7} {'audio path':>11} {'algorithmic':>12} {'compute+queue':>14} "
          f"{'look-ahead':>11}  (ms; algorithmic and compute+queue are p50; look-ahead: audio a source needs after a "
          "frame's own samples, by construction)")
    results = {}
    try:
        with (private_pulse() if path == "pulse" else contextlib.nullcontext()) as pulse:
            for motion in motions:
                try:
                    r = measure(motion, args.size, args.device, args.onsets, args.gap, portrait, pulse)
                except Exception as exc:  # one source failing (not installed, no onsets) must not hide the others
                    print(f"{motion:10} failed: {exc}")
                    continue
                results[motion] = r
                notes = [f"{r['skipped_frames']} onset frames skipped by the budget"] if r["skipped_frames"] else []
                if r["startup_onsets"]:
                    notes.append(f"{r['startup_onsets']} onsets before the first frame left out")
                print(f"{motion:10} {r['p50_ms']:7.0f} {r['p95_ms']:7.0f} "
                      + (f"{r['audio_path_p50_ms']:11.0f}" if path == "pulse" else f"{'-':>11}")
                      + f" {r['algorithmic_p50_ms']:12.0f} {r['compute_p50_ms']:14.0f} {r['lookahead_ms']:11.0f}"
                      + (f"  ({'; '.join(notes)})" if notes else ""))
    except PulseUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not results:
        return 1
    if args.json:
        print(f"wrote {write_json(args.json, results)}")
    if path == "file":
        print("not stored for the app: its 'auto' voice delay needs the microphone path (--input pulse)")
    elif not args.no_store:
        for motion, r in results.items():
            stored = store_measurement(kind, motion, r)
        print(f"stored in {stored} (the app's 'auto' voice delay uses the p50 for {kind})")
    return 0
