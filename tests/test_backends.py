"""Renderer backends (core.backends): onnx and bf16 frames agree with eager fp32, `auto` measures once and
remembers, `--backend onnx` renders an mp4 end to end, and backends that cannot run here say what to use."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.backends import BACKENDS, BackendUnavailable, choose_backend, make_backend
from core.device import pick_device
from core.liveportrait import LivePortraitConfig, build_liveportrait
from core.render import Renderer


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HEADCAST_CACHE_DIR", str(tmp_path / "cache"))


def tiny():
    return build_liveportrait(LivePortraitConfig.tiny(), seed=0)


def motion_rows(n: int) -> np.ndarray:
    return np.random.default_rng(3).normal(0, 0.02, (n, 70)).astype(np.float32)


def test_onnx_and_bf16_frames_match_eager(astronaut):
    cpu = pick_device("cpu", official_size=False)
    eager = Renderer(tiny(), cpu)
    onnx = Renderer(tiny(), cpu, backend="onnx")
    assert onnx.backend.name == "onnx (CPU, fp32)"
    rows = motion_rows(2)
    ref = eager.render(eager.prepare(astronaut), rows)
    got = onnx.render(onnx.prepare(astronaut), rows)
    assert np.abs(got.astype(int) - ref).max() <= 1  # uint8 frames: fp32 rounding at most one level
    assert np.abs(ref.astype(int) - astronaut).max() > 20  # and the face really was generated and pasted
    bf16 = Renderer(tiny(), pick_device("cpu", precision="bf16", official_size=False))
    assert next(bf16.models.warping_module.parameters()).dtype == torch.float32  # autocast over fp32 weights
    low = bf16.render(bf16.prepare(astronaut), rows[:1])  # one frame: bf16 is emulated (slow) on most CPUs
    diff = np.abs(low.astype(int) - ref[:1])
    assert diff.max() > 0, "bf16 autocast did not change a single pixel: it did not run in bf16"
    assert diff.mean() < 8, f"bf16 frames are far from fp32 (mean |diff| {diff.mean():.1f} levels)"


def test_backends_that_cannot_run_here_say_what_to_use():
    cpu = pick_device("cpu", official_size=False)
    with pytest.raises(BackendUnavailable, match="needs a CUDA device; use --backend eager or onnx"):
        make_backend("cudagraph", tiny(), cpu)
    with pytest.raises(BackendUnavailable, match="precision fp32"):
        make_backend("onnx", tiny(), pick_device("cpu", precision="bf16", official_size=False))
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        make_backend("tensorrt", tiny(), cpu)
    assert set(BACKENDS) == {"auto", "eager", "compile", "cudagraph", "onnx"}


def test_auto_measures_once_and_remembers(tmp_path, monkeypatch):
    from core.backends import runtime

    cpu = pick_device("cpu", official_size=False)
    models = tiny()
    calls = []
    real = runtime.self_check

    def counted(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(runtime, "self_check", counted)
    first = choose_backend(models, cpu)
    assert first in ("eager", "onnx") and calls == [["eager", "onnx"]]
    stored = json.loads((tmp_path / "cache" / "backend-choice.json").read_text())
    (entry,) = stored.values()
    assert entry["backend"] == first
    assert entry["results"]["eager"]["ok"] and entry["results"]["onnx"]["ok"]
    assert entry["results"]["onnx"]["max_abs"] < 1e-3
    assert choose_backend(models, cpu) == first and len(calls) == 1  # remembered: no second measurement
    renderer = Renderer(models, cpu, backend="auto")
    assert renderer.backend.kind == first and len(calls) == 1


def test_render_cli_with_onnx_backend_writes_an_mp4(tmp_path, astronaut, capsys):
    import av
    import cv2

    from core.__main__ import main
    from core.audio.io import save_wav
    from core.engine.sources import syllables
    from core.timebase import SAMPLE_RATE

    portrait, audio, out = tmp_path / "p.png", tmp_path / "a.wav", tmp_path / "talk.mp4"
    cv2.imwrite(str(portrait), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    save_wav(audio, syllables(SAMPLE_RATE, 0.0).astype(np.float32), SAMPLE_RATE)  # 1 s: 25 frames
    assert main(["render", "--portrait", str(portrait), "--audio", str(audio), "--out", str(out),
                 "--synthetic-weights", "tiny", "--motion", "retarget", "--backend", "onnx"]) == 0
    assert "backend: onnx (CPU, fp32)" in capsys.readouterr().err
    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(c.streams.video[0])) == 25
    assert list((tmp_path / "cache" / "onnx").glob("warping_module-fp32-op20-*.onnx"))


def test_app_setting_and_cli_accept_only_known_backends():
    import argparse

    from app.settings import AppSettings
    from core.cli_args import add_pipeline_arguments

    fixed, notes = AppSettings(backend="turbo").validated()
    assert fixed.backend == "eager" and any("backend='turbo'" in n for n in notes)
    assert AppSettings(backend="onnx").validated()[0].backend == "onnx"
    parser = argparse.ArgumentParser()
    add_pipeline_arguments(parser)
    args = parser.parse_args(["--backend", "cudagraph", "--precision", "bf16"])
    assert (args.backend, args.precision) == ("cudagraph", "bf16")
    with pytest.raises(SystemExit):
        parser.parse_args(["--backend", "tensorrt"])
