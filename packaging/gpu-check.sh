#!/usr/bin/env bash
# One-shot GPU check (issue 12): parity on the GPU (fp32, fp16, bf16), ONNX export + onnxruntime parity, the render
# bench per backend at batch 1/4/8/16, the engine bench (and the latency bench where it can run), with a hard time
# limit per step and 8 minutes in all. Writes OUT_DIR/gpu-check.json and OUT_DIR/gpu-check.md.
#
# Runs from the source tree with the machine's own python (no install, no network): core imports without PyAV,
# PySide6, sounddevice, pyvirtualcam and platformdirs. Put the LivePortrait parity kit at ./shared/parity (or set
# HEADCAST_SHARED) so the parity step compares with the official outputs; without it, it compares with float64.
#
#   packaging/gpu-check.sh [OUT_DIR] [extra gpucheck options, e.g. --only env,parity]
#   packaging/gpu-check.sh --dry-run-here     # the same steps on this CPU at tiny sizes (minutes)
#
# On the lent machine (device tool): run  `bash packaging/gpu-check.sh "$OUT"`  with timeout_s 560.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [[ "${1:-}" == "--dry-run-here" ]]; then
    shift
    exec "$PY" -m core.bench.gpucheck --dry-run --out "${1:-gpu-check-dry}"
fi
OUT_DIR=${1:-${OUT:-gpu-check-out}}
shift || true
# Optional wheels carried with the tree (the device README's .whl recipe), e.g. a newer onnxruntime-gpu.
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/headcast-site \
        .whl/*.whl && export PYTHONPATH="/tmp/headcast-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,temperature.gpu --format=csv 2>&1 | head -3
# the driver keeps its own 480 s budget; this outer limit only guards against the driver itself hanging
timeout 540 "$PY" -m core.bench.gpucheck --out "$OUT_DIR" "$@"
rc=$?
echo "gpu-check exit status $rc; report: $OUT_DIR/gpu-check.md"
exit $rc
