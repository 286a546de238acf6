# vcseg: `make demo` runs the main job end to end, `make test` runs the tests.
# Both create the virtual environment on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VCSEG := $(VENV)/bin/vcseg
# Pinned for a reproducible local install; pyproject.toml keeps ranges for users' own CUDA builds.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
DEMO_DIR := demo_out
export NO_ALBUMENTATIONS_UPDATE := 1

WEIGHTS_DATA := data/weights-train
PROPOSALS_DATA := data/proposals-train
WEIGHTS_RUN := runs/default-weights
PROPOSALS_RUN := runs/default-proposals

.PHONY: setup test demo bench weights clean gpu-check

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS) -e '.[test]'
	touch $@

test: setup
	$(PY) -m pytest

demo: setup
	$(VCSEG) demo --out $(DEMO_DIR)

bench: setup
	$(PY) -m benchmarks.run

# The CPU default weights, weights/default.pt: procedural training videos, then the memory
# network (about 1.5 h on 2 cores) and the person proposal network (about 35 minutes) on its own
# larger set (configs/default-weights.toml, configs/default-proposals.toml); an interrupted run
# continues.
weights: setup
	$(VCSEG) synth $(WEIGHTS_DATA) --videos 48 --frames 40 --size 240x427 --people 1-4 --seed 100 --overwrite
	$(VCSEG) synth $(PROPOSALS_DATA) --videos 96 --frames 40 --size 240x427 --people 1-5 --seed 200 --overwrite
	if [ -f $(WEIGHTS_RUN)/checkpoints/last.pt ]; then $(VCSEG) train --out $(WEIGHTS_RUN) --resume; \
	else $(VCSEG) train --config configs/default-weights.toml --out $(WEIGHTS_RUN); fi
	if [ -f $(PROPOSALS_RUN)/checkpoints/last.pt ]; then $(VCSEG) train --out $(PROPOSALS_RUN) --resume; \
	else $(VCSEG) train --config configs/default-proposals.toml --out $(PROPOSALS_RUN); fi
	$(VCSEG) export --memory $(WEIGHTS_RUN)/checkpoints/last.pt \
	    --proposals $(PROPOSALS_RUN)/checkpoints/last.pt --precision int8 --out weights/default.pt

# The GPU paths end to end (tests on the GPU, 2-process torchrun training killed and resumed in
# bf16 and fp16, sharded prediction), about 8 minutes; one line and exit 0 without CUDA.
gpu-check: setup
	$(PY) -m benchmarks.gpu_check

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
