"""The one-shot GPU check, in its CPU dry run: every step runs (tiny sizes, app packages blocked from import as on
the GPU machine), the hard per-step limit really stops a step, and one JSON + markdown report comes out."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_exercises_every_step(tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "core.bench.gpucheck", "--dry-run", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=3000)
    report = json.loads((out / "gpu-check.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == ["env", "parity", "onnx", "bench-eager", "bench-cudagraph", "bench-compile", "bench-onnx",
                           "engine", "latency"]
    for name in ("env", "parity", "onnx", "bench-eager", "bench-cudagraph", "bench-onnx", "engine", "latency"):
        assert steps[name]["status"] == "ok", f"{name}: {steps[name]['status']}\n{steps[name].get('log_tail')}"
    # compile may finish or hit its short dry-run limit (a C++ build on a shared CPU): both show the limit works
    assert steps["bench-compile"]["status"] in ("ok", "timeout")
    assert steps["bench-compile"]["seconds"] <= steps["bench-compile"]["limit_s"] + 15
    # no sounddevice (blocked, as on the GPU machine): the voice enters as a real-time file and is measured
    assert "from a real-time audio file" in steps["latency"]["log_tail"]
    assert "retarget" in steps["latency"]["log_tail"].split("look-ahead")[-1]
    assert proc.returncode == (0 if steps["bench-compile"]["status"] == "ok" else 1)

    env = steps["env"]["result"]
    assert env["imports_failed"] == {} and "core.offline" in env["imports_ok"]  # core imports without PyAV etc.
    parity = steps["parity"]["result"]
    assert {r["precision"] for r in parity["rows"]} == {"fp32", "bf16"} and parity["ok"]
    fp32 = [r for r in parity["rows"] if r["precision"] == "fp32"]
    assert len(fp32) == 3 + 7 + 1 + 1 + 3 and max(r["max_abs"] for r in fp32) < 1e-4  # vs float64 on the CPU
    assert 0 < max(r["rel_l2"] for r in parity["rows"] if r["precision"] == "bf16") < 3e-2
    onnx = steps["onnx"]["result"]
    assert {r["network"] for r in onnx["rows"]} == {"appearance_feature_extractor", "motion_extractor",
                                                     "warping_module", "spade_generator", "stitching", "lip", "eye"}
    assert all(r["ok"] and r["provider"] == "CPUExecutionProvider" for r in onnx["rows"])
    eager_rows = steps["bench-eager"]["rows"]
    assert eager_rows[0]["backend"] == "eager" and eager_rows[0]["x_base"] == 1.0
    assert any("CUDA" in r.get("error", "") for r in steps["bench-cudagraph"]["rows"])  # unavailable, reported
    assert any(r.get("name") == "onnx (CPU, fp32)" and r["max_abs"] < 1e-3 for r in steps["bench-onnx"]["rows"])
    assert "ratios reference/ours" in steps["engine"]["log_tail"]

    md = (out / "gpu-check.md").read_text()
    assert md.startswith("# GPU check (DRY RUN") and "| onnx (CPU, fp32) | fp32 | 1 |" in md


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # killed, waiting for init to reap it


def test_a_step_past_its_limit_is_killed_with_its_children_and_keeps_its_output():
    from core.bench.gpucheck import run_step

    # a step that starts a helper process (as torch.compile's workers do) and then hangs
    code = ("import subprocess, sys, time\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
            "print('helper', p.pid, flush=True)\n"
            "time.sleep(120)\n")
    t0 = time.monotonic()
    status, log = run_step([sys.executable, "-c", code], 4.0)
    assert status == "timeout" and time.monotonic() - t0 < 30
    helper = int(log.split("helper ")[1].split()[0])  # what the step printed before the kill is kept
    deadline = time.monotonic() + 10
    while not _gone(helper) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(helper), "the step's helper process outlived the step"
    ok, out = run_step([sys.executable, "-c", "print('done')"], 30.0)
    assert (ok, out.strip()) == ("ok", "done")


def test_the_output_folder_holds_only_the_report(tmp_path, monkeypatch):
    """The device tool brings back at most 8 files from $OUT: per-step files and caches must not go there."""
    import argparse
    import tempfile

    from core.bench.gpucheck import TOTAL_BUDGET_S, run_all

    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    out = tmp_path / "out"
    args = argparse.Namespace(out=str(out), dry_run=True, device="cpu", budget_s=TOTAL_BUDGET_S, only=None)
    bench = ["core", "--", "bench", "render", "--size", "tiny", "--device", "cpu", "--backends", "eager",
             "--precisions", "fp32", "--batches", "1", "--frames", "1", "--no-baseline"]
    rc = run_all(args, steps=[("env", 300, ["core", "--", "weights", "list"]), ("bench-eager", 300, bench)])
    assert sorted(p.name for p in out.iterdir()) == ["gpu-check.json", "gpu-check.md"]
    assert list(scratch_root.iterdir()) == []  # the scratch folder is removed
    report = json.loads((out / "gpu-check.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    assert rc == 0, steps
    assert steps["env"]["result"] == {"rc": 0, "ok": True}
    assert steps["bench-eager"]["rows"][0]["backend"] == "eager" and steps["bench-eager"]["rows"][0]["batch"] == 1


@pytest.mark.parametrize("dry", [False, True])
def test_every_planned_step_parses_and_the_limits_fit_the_budget(dry):
    """The GPU plan (official sizes, batch 1/4/8/16, fp16, --input auto) never runs here: its command lines are
    parsed by the real parsers, so a wrong option cannot cost the one run on a lent GPU."""
    import argparse

    from core.__main__ import COMMANDS
    from core.bench.gpucheck import DRY_SLACK, TOTAL_BUDGET_S, parser, plan
    from core.cli import add_lazy_commands

    steps = plan(dry, "cpu" if dry else "cuda")
    assert [s[0] for s in steps] == ["env", "parity", "onnx", "bench-eager", "bench-cudagraph", "bench-compile",
                                     "bench-onnx", "engine", "latency"]
    assert sum(limit for _, limit, _ in steps) <= TOTAL_BUDGET_S * (DRY_SLACK if dry else 1)
    for name, _, argv in steps:
        extra = ["--json", "rows.json", "--budget-s", "30"] if name.startswith("bench-") else []
        args = parser().parse_args(["--step", argv[0], "--result", "r.json", "--device", "cuda", *argv[1:], *extra])
        assert args.step in ("env", "parity", "onnx", "core")
        if args.step != "core":
            assert args.rest == []
            continue
        rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
        core = argparse.ArgumentParser()
        add_lazy_commands(core.add_subparsers(dest="command", required=True), COMMANDS, rest)
        parsed = core.parse_args(rest)
        assert not getattr(parsed, "missing", None), f"{name}: {parsed.missing} is missing"
        if name.startswith("bench-"):
            assert parsed.budget_s == 30 and parsed.json == "rows.json"


def test_sigterm_to_the_driver_stops_the_step_and_still_writes_the_report(tmp_path):
    """gpu-check.sh's outer `timeout` sends SIGTERM: the running step (its own process group) must not outlive the
    driver, and the report must hold the steps so far and the stopped one's output."""
    import os
    import signal

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out = tmp_path / "out"
    long_step = ["core", "--", "bench", "render", "--size", "tiny", "--device", "cpu", "--backends", "eager",
                 "--precisions", "fp32", "--batches", "1", "--frames", "100000", "--no-baseline"]
    code = ("import argparse, sys\n"
            "from core.bench.gpucheck import run_all\n"
            f"args = argparse.Namespace(out={str(out)!r}, dry_run=True, device='cpu', budget_s=600.0, only=None)\n"
            f"sys.exit(run_all(args, steps=[('env', 300, ['core', '--', 'weights', 'list']), "
            f"('bench-eager', 300, {long_step!r})]))\n")
    env = dict(os.environ, TMPDIR=str(scratch), PYTHONPATH=str(REPO))
    driver = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    for line in driver.stdout:
        if line.startswith("[gpu-check] bench-eager: limit"):
            break
    time.sleep(3)
    driver.send_signal(signal.SIGTERM)
    rest, _ = driver.communicate(timeout=60)
    assert driver.returncode == 1
    report = json.loads((out / "gpu-check.json").read_text())
    assert [(s["name"], s["status"]) for s in report["steps"]] == [("env", "ok"), ("bench-eager", "interrupted")]
    assert "# GPU check" in rest  # the markdown is printed at the end as usual
    assert list(scratch.iterdir()) == []
    time.sleep(1)
    left = [p for p in Path("/proc").iterdir() if p.name.isdigit() and str(scratch).encode() in _cmdline(p)]
    assert left == [], "the step outlived the driver"


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def test_a_parity_step_stopped_midway_has_written_the_networks_it_finished(tmp_path):
    """parity / onnx at official size may not finish inside their limits on an unknown machine: each network's rows
    are saved (marked partial) as soon as they exist, so a kill at the limit keeps them."""
    import os
    import signal

    from core.bench.gpucheck import markdown

    result = tmp_path / "parity.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), TMPDIR=str(tmp_path))  # the killed step's temp folder stays here
    step = subprocess.Popen([sys.executable, "-m", "core.bench.gpucheck", "--step", "parity", "--dry-run", "--device",
                             "cpu", "--precisions", "fp32,bf16", "--result", str(result)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not result.is_file() and step.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        partial = json.loads(result.read_text())
    finally:
        if step.poll() is None:
            os.killpg(step.pid, signal.SIGKILL)
        step.wait()
    assert partial["partial"] is True  # written before the step's end (the step was still running)
    assert partial["rows"] and partial["rows"][0]["network"] == "appearance_feature_extractor"
    md = markdown({"started": "now", "dry_run": True, "budget_s": 1.0,
                   "steps": [{"name": "parity", "status": "timeout", "result": partial}]})
    assert "PARTIAL" in md and "| fp32 | appearance_feature_extractor | out |" in md
