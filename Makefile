# aptrack: `make demo` and `make test` each set up .venv first (torch + torchvision from
# the package registry, then this project in editable mode).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

# Offline mirror of weights and sample data, when the shared folder sits beside the project.
SHARED_ASSETS := $(abspath ../shared/assets)
ifneq ($(wildcard $(SHARED_ASSETS)),)
export APTRACK_MIRROR ?= $(SHARED_ASSETS)
endif
export YOLO_OFFLINE := 1
export YOLO_AUTOINSTALL := False

DEMO_VIDEO ?= $(APTRACK_MIRROR)/videos/dog_clip.avi
DEMO_OUT ?= demo_out

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch torchvision
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: setup
	@test -f "$(DEMO_VIDEO)" || { echo "demo video not found: '$(DEMO_VIDEO)'; run make demo DEMO_VIDEO=your.mp4"; exit 2; }
	$(BIN)/aptrack run "$(DEMO_VIDEO)" -o $(DEMO_OUT) --trails

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/bench_speed.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build *.egg-info
