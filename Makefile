# Two entry points for a new machine: `make run` (the app) and `make test` (the test suite).
# Both create .venv on first use. Without an NVIDIA GPU, torch==2.13.0 (the CPU build) is installed first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.headcast-installed

.PHONY: run test lint system-deps runtime-deps clean dist

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@if nvidia-smi -L >/dev/null 2>&1; then \
		echo "NVIDIA GPU found: installing CUDA torch and onnxruntime-gpu"; \
		$(PY) -m pip install -q -e '.[gpu,dev,bundle]'; \
	else \
		echo "No NVIDIA GPU: installing the CPU build torch==2.13.0 first"; \
		$(PY) -m pip install -q torch==2.13.0 && $(PY) -m pip install -q -e '.[cpu,dev,bundle]'; \
	fi
	@# silero-vad ships its ONNX model in its wheel; --no-deps keeps its torchaudio requirement out
	$(PY) -m pip install -q --no-deps 'silero-vad>=5'
	touch $(STAMP)

# The app's runtime libraries (Qt's X11/Wayland plugins, PortAudio) for `run`; those plus the test-only packages
# for `test`. As root they are installed; otherwise the one apt-get command is printed (packaging/system-deps.sh).
runtime-deps:
	@sh packaging/system-deps.sh runtime

system-deps:
	@sh packaging/system-deps.sh all

run: runtime-deps $(STAMP)
	$(PY) -m app

# The ten-minute soak runs (marker `soak`) mostly wait on the clock: they run side by side after the rest.
test: system-deps $(STAMP)
	HF_HUB_OFFLINE=1 QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "not soak"
	HF_HUB_OFFLINE=1 QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m soak -n 2

# The desktop bundle (docs/PACKAGING.md): dist/headcast/ and dist/headcast-*.tar.gz. `make dist GPU=1`: the
# CUDA variant, from an environment that has CUDA torch and onnxruntime-gpu.
dist: $(STAMP)
	$(PY) packaging/build.py $(if $(GPU),--gpu)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist
