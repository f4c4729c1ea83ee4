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

TRAIN_OUT ?= runs/animalpose_mnv2_160
TRAIN_FT_OUT ?= runs/animalpose_mnv2_192_ft
TRAIN_FT2_OUT ?= runs/animalpose_mnv2_224_ft
TRAIN_FT3_OUT ?= runs/animalpose_mnv2_256_ft
TRAIN_FT4_OUT ?= runs/animalpose_mnv2_256_ft2
TRAIN_FT5_OUT ?= runs/animalpose_mnv2_256_ft3
TRAIN_FT6_OUT ?= runs/animalpose_mnv2_256_ft4
SYNTH_OUT ?= data/aptv2_synth

.PHONY: setup demo test bench train train-ft train-ft2 train-ft3 train-ft4 train-ft5 train-ft6 synth bench-aptv2 clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch torchvision
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -c 'import aptrack.tracker as t; t.compile_kernels()'  # numba disk cache
	touch $@

demo: setup
	@test -f "$(DEMO_VIDEO)" || { echo "demo video not found: '$(DEMO_VIDEO)'; run make demo DEMO_VIDEO=your.mp4"; exit 2; }
	$(BIN)/aptrack run "$(DEMO_VIDEO)" -o $(DEMO_OUT) --trails

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/bench_speed.py

# The default pose model is trained in seven stages on the same seeded split:
# train (160 px from ImageNet, configs/train/animalpose_mobilenetv2_160.yaml), then
# train-ft (192 px from the first stage's committed weights, ..._192_ft.yaml), then
# train-ft2 (224 px from the second stage's committed weights, ..._224_ft.yaml), then
# train-ft3 (256 px from the third stage's committed weights, ..._256_ft.yaml), then
# train-ft4 (a second 256 px cycle from the fourth stage's committed weights, ..._256_ft2.yaml), then
# train-ft5 (a 256 px cycle with lighter augmentation from the fifth stage's weights, ..._256_ft3.yaml), then
# train-ft6 (the same light cycle at a lower lr with an EMA of the weights, from the sixth, ..._256_ft4.yaml).
TRAIN_ANIMALPOSE = $(BIN)/aptrack train --data $(APTRACK_MIRROR)/animalpose/keypoints.json \
	    --images $(APTRACK_MIRROR)/animalpose/images

train: setup
	$(TRAIN_ANIMALPOSE) --config animalpose_mobilenetv2_160 -o $(TRAIN_OUT)

train-ft: setup
	$(TRAIN_ANIMALPOSE) --config animalpose_mobilenetv2_192_ft -o $(TRAIN_FT_OUT)

train-ft2: setup
	$(TRAIN_ANIMALPOSE) --config animalpose_mobilenetv2_224_ft -o $(TRAIN_FT2_OUT)

train-ft3: setup
	$(TRAIN_ANIMALPOSE) --config animalpose_mobilenetv2_256_ft -o $(TRAIN_FT3_OUT)

train-ft4: setup
	$(TRAIN_ANIMALPOSE) --config animalpose_mobilenetv2_256_ft2 -o $(TRAIN_FT4_OUT)

train-ft5: setup
	$(TRAIN_ANIMALPOSE) --config animalpose_mobilenetv2_256_ft3 -o $(TRAIN_FT5_OUT)

train-ft6: setup
	$(TRAIN_ANIMALPOSE) --config animalpose_mobilenetv2_256_ft4 -o $(TRAIN_FT6_OUT)

# A synthetic APTv2-layout dataset from the held-out Animal-Pose animals, then the benchmark.
synth: setup
	$(BIN)/aptrack synth --source $(APTRACK_MIRROR)/animalpose --out $(SYNTH_OUT) --clips 40 --seed 0

bench-aptv2: synth
	$(BIN)/aptrack bench --data $(SYNTH_OUT) --split hard -o bench_out

clean:
	rm -rf $(DEMO_OUT) bench_out .pytest_cache build *.egg-info
