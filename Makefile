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

# The CPU default weights, weights/default.pt, from ImageNet EfficientNet-Lite0 encoders (a PyPI
# package, nothing downloaded): the memory network on real video (the shared DAVIS object and
# people sequences, real people pasted into real scenes, a few procedural videos; about 45 minutes
# on 2 cores) and the person proposal network on real people in real scenes plus procedural crowds
# (about 15 minutes). Two people sequences, $(HELD_OUT), stay out of both: the held-out test.
# An interrupted run continues. DAVIS_PEOPLE / DAVIS_OBJECTS: the shared DAVIS 2016 folders.
DAVIS_PEOPLE ?= ../shared/data/davis2016-people
DAVIS_OBJECTS ?= ../shared/data/davis2016-objects
HELD_OUT := rollerblade tennis
RIDERS := bmx-bumps horsejump-low motocross-bumps motorbike paragliding paragliding-launch scooter-black scooter-gray
weights: setup
	@test -d $(DAVIS_PEOPLE)/JPEGImages && test -d $(DAVIS_OBJECTS)/JPEGImages || \
	    { echo "make weights: DAVIS_PEOPLE=$(DAVIS_PEOPLE) / DAVIS_OBJECTS=$(DAVIS_OBJECTS) not found; give the shared DAVIS 2016 folders, e.g. make weights DAVIS_PEOPLE=... DAVIS_OBJECTS=..."; exit 2; }
	mkdir -p data
	ln -sfn $(abspath $(DAVIS_PEOPLE)) data/real-people
	ln -sfn $(abspath $(DAVIS_OBJECTS)) data/real-objects
	$(VCSEG) synth $(WEIGHTS_DATA) --videos 16 --frames 40 --size 240x427 --people 1-4 --seed 100 --overwrite
	$(VCSEG) synth $(PROPOSALS_DATA) --videos 32 --frames 40 --size 240x427 --people 1-5 --seed 200 --overwrite
	$(VCSEG) compose data/real-people --backgrounds data/real-objects --out data/real-composites \
	    --videos 32 --people 1-4 --seed 7 $(addprefix --exclude ,$(HELD_OUT)) --overwrite
	$(VCSEG) compose data/real-people --backgrounds data/real-objects --out data/proposals-composites \
	    --videos 48 --people 1-5 --seed 8 $(addprefix --exclude ,$(HELD_OUT) $(RIDERS)) --overwrite
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
