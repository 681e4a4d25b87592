"""`python -m core bench engine` at tiny size: both configurations run and the figures are consistent."""

import argparse

import numpy as np
import pytest

from core.bench import engine as bench
from core.engine.sources import syllables
from core.pipeline import build_pipeline


@pytest.mark.slow
def test_engine_bench_rows(astronaut):
    renderer, motion = build_pipeline("synthetic-tiny", "retarget", "cpu")
    audio = syllables(12 * 640, 0.0).astype(np.float32)
    ours = bench.run_ours(renderer, motion, astronaut, audio, batch=4)
    ref = bench.run_reference(renderer, motion, astronaut, audio)
    assert ours["frames"] == ref["frames"] == 12
    assert ours["copy"] == 0.0 and ours["paste_cpu"] == 0.0  # CPU: the paste writes into the host frame
    assert ref["copy"] > 0 and ref["paste_cpu"] > 0  # fp32 crops to the host, then a CPU paste per frame
    assert ref["window"] == 65 and bench.live_latency_s(ref) > 64 / 25  # waits for its window to fill
    assert bench.live_latency_s(ours) < bench.live_latency_s(ref)


def test_engine_bench_cli_prints_ratios(capsys):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    assert bench.main(parser.parse_args(["--size", "tiny", "--frames", "4", "--device", "cpu"])) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC WEIGHTS" in out and "ratios reference/ours" in out and "reference-like (65" in out
