"""The live soak (issue 23), run in a process of its own by tests/test_live_soak.py: `LiveSession` (what
`python -m core live` and the app's Start run) in lite mode on the official-size stand-in networks, for
`--seconds`, with `--cycles` stop / start / portrait-switch cycles. Prints one JSON line of figures:
RSS at the end of the first minute and at the end, the thread count before the first start and after every stop,
and the p95 latency of the first and of the last minute (per frame, as the sink received it).

Both portraits' atlases are built before the clock starts (a 2x1 atlas is two official-size renders), so the
measured part is the steady live path, which is what must not grow."""

from __future__ import annotations

import argparse
import json
import threading
import time

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class LatencySink:
    """Per-frame latency (capture of the frame's audio -> the sink has it), new frames only."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []

    def write(self, frame: np.ndarray, info) -> None:
        if not info.repeated:
            now = time.monotonic()
            self.samples.append((now, now - info.capture_time))

    def close(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--atlas", default="2x1")
    args = parser.parse_args()

    from skimage import data

    from core.engine import EngineSettings
    from core.session import InputChoice, LiveSession, SessionConfig

    faces = [data.astronaut(), np.ascontiguousarray(data.astronaut()[:, ::-1])]
    config = SessionConfig(weights="synthetic-full", motion="retarget", device="cpu", renderer="lite",
                           atlas=args.atlas, engine=EngineSettings())
    errors: list[BaseException] = []
    session = LiveSession(on_error=errors.append)
    sink = LatencySink()
    renderer, _ = session.pipeline(config)
    t_build = time.monotonic()
    for face in faces:  # both atlases, before the measured part
        session._renderer_for(config, renderer, face).prepare(face)
    build_s = time.monotonic() - t_build

    base_threads = threading.active_count()
    threads_after_stop: list[int] = []
    rss: list[tuple[float, float]] = []
    t0 = time.monotonic()
    cycle_s = args.seconds / args.cycles
    for i in range(args.cycles):
        session.start(config, faces[i % 2], InputChoice("generator"), sinks=(sink,))
        end = t0 + (i + 1) * cycle_s
        switched = False
        while (now := time.monotonic()) < end - 0.5:
            if not switched and now > end - cycle_s / 2:
                session.set_portrait(faces[(i + 1) % 2])
                switched = True
            rss.append((now - t0, rss_mb()))
            time.sleep(min(1.0, max(0.0, end - 0.5 - now)))
        session.stop()
        deadline = time.monotonic() + 10
        while threading.active_count() > base_threads and time.monotonic() < deadline:
            time.sleep(0.05)  # sources and pacers end within their join timeouts
        threads_after_stop.append(threading.active_count())
    session.close(timeout=120)

    def p95(lo: float, hi: float) -> float:
        values = [lat for t, lat in sink.samples if lo <= t - t0 < hi]
        return float(np.percentile(values, 95)) * 1000 if values else float("nan")

    first_minute = [m for t, m in rss if t <= 60.0]
    print(json.dumps({
        "seconds": args.seconds, "cycles": args.cycles, "atlas_build_s": round(build_s, 1),
        "rss_mb_first_minute": round(first_minute[-1] if first_minute else rss[0][1], 1),
        "rss_mb_end": round(rss[-1][1], 1), "rss_mb_max": round(max(m for _, m in rss), 1),
        "threads_before": base_threads, "threads_after_stop": threads_after_stop,
        "latency_p95_ms_first_minute": round(p95(0, 60), 1),
        "latency_p95_ms_last_minute": round(p95(args.seconds - 60, args.seconds), 1),
        "frames": len(sink.samples), "errors": [str(e) for e in errors],
    }), flush=True)


if __name__ == "__main__":
    main()
