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

.PHONY: setup test demo bench clean

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

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
