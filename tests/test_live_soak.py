"""Ten minutes of live lite mode on the official-size stand-in with 20 stop / start / portrait-switch cycles
(issue 23): memory that grows, threads left behind by a stop, or latency that creeps up over a long call are what
short tests cannot see. The run is tests/soak_live.py in a process of its own (its RSS is the run's alone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOAK_S = 600
CYCLES = 20
MAX_RSS_GROWTH_MB = 50
MAX_P95_CREEP_MS = 50


@pytest.mark.slow
@pytest.mark.soak
def test_ten_minutes_of_lite_live_with_restarts_and_switches_do_not_grow(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HEADCAST_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    r = subprocess.run([sys.executable, str(REPO / "tests" / "soak_live.py"), "--seconds", str(SOAK_S),
                        "--cycles", str(CYCLES)], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=SOAK_S + 900)
    assert r.returncode == 0, r.stderr[-3000:]
    figures = json.loads(r.stdout.strip().splitlines()[-1])
    print("soak:", figures)
    assert not figures["errors"], figures
    assert figures["rss_mb_end"] - figures["rss_mb_first_minute"] <= MAX_RSS_GROWTH_MB, figures
    assert all(n == figures["threads_before"] for n in figures["threads_after_stop"]), figures
    assert figures["latency_p95_ms_last_minute"] <= figures["latency_p95_ms_first_minute"] + MAX_P95_CREEP_MS, figures
