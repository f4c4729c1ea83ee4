"""``--family res_animalpose``: parity of the Animal-Pose SimpleBaseline presets with mmpose 1.3.2.

Builds mmpose's own
``configs/animal_2d_keypoint/topdown_heatmap/animalpose/td-hm_res50_8xb64-210e_animalpose-256x256.py``
(20 keypoints in mmpose's Animal-Pose order, its flip pairs) with the backbone
depth and deconvolution channels of ``--depth`` / ``--channels`` (18 and 32 for
the fixture), seeded random weights from a small shared pool, and records
``inference_topdown``'s keypoints on the shared fixture image and boxes. aptrack
loads the files through its ``res50-animalpose`` preset at the same size. Run
through ``benchmarks/mmpose_parity.py --family res_animalpose [--full]``; see
that script's docstring for installing the reference.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from mmpose_parity import (BOXES, HRNET_POOL_SIZE, ROOT, config_path, mmpose_keypoints, save_checkpoints,
                           seeded_state)

CONFIG = "configs/animal_2d_keypoint/topdown_heatmap/animalpose/td-hm_res50_8xb64-210e_animalpose-256x256.py"
PRESET = "res50-animalpose"
STEM = "res_animalpose"


def build(depth: int, channels: int):
    """mmpose's Animal-Pose ResNet config at ``depth`` / ``channels``, on the CPU, no weights."""
    from mmengine.config import Config
    from mmpose.apis import init_model

    cfg = Config.fromfile(str(config_path(CONFIG)))
    cfg.model.backbone.depth = depth
    cfg.model.backbone.init_cfg = None
    cfg.model.head.in_channels = 512 if depth < 50 else 2048
    cfg.model.head.deconv_out_channels = (channels,) * 3
    return init_model(cfg, checkpoint=None, device="cpu")


def aptrack_keypoints(checkpoint: Path, architecture: dict, image: np.ndarray, boxes: np.ndarray):
    """aptrack's keypoints (N, 20, 2) and scores (N, 20) through the ``res50-animalpose`` preset."""
    from aptrack.core.instances import Instances
    from aptrack.models.checkpoint import load_checkpoint
    from aptrack.models.presets import get_preset
    from aptrack.pose.config import PoseConfig
    from aptrack.pose.estimator import TopDownPoseEstimator

    preset = get_preset(PRESET)
    preset = preset.with_(architecture={**preset.architecture, **architecture})
    model, preset, _ = load_checkpoint(checkpoint, preset=preset)
    out = TopDownPoseEstimator(model, preset, PoseConfig())(
        image, Instances(boxes.astype(np.float32), np.ones(len(boxes), np.float32)))
    return out.keypoints, out.keypoint_scores


def run(args, version: str) -> int:
    depth, channels = (50, 256) if args.full else (args.depth, args.channels)
    model = build(depth, channels)
    state = seeded_state(model, args.seed, HRNET_POOL_SIZE)
    stored = args.out / "image.png"
    if not stored.exists():
        raise SystemExit(f"{stored} is missing: make the res fixture first")
    image = cv2.imread(str(stored), cv2.IMREAD_COLOR)
    keypoints, scores = mmpose_keypoints(model, image, BOXES)
    architecture = {"depth": depth, "deconv_channels": [channels] * 3, "deconv_kernel": 4}
    meta = {"mmpose_version": version, "config": CONFIG, "family": STEM, "depth": depth,
            "deconv_channels": [channels] * 3, "seed": args.seed}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) if args.full else args.out
        paths = save_checkpoints(state, meta, folder, f"res{depth}_animalpose")
        results = [aptrack_keypoints(p, architecture, image, BOXES) for p in paths]
        if not args.full:
            np.savez(args.out / f"{STEM}_mmpose_keypoints.npz", keypoints=keypoints, keypoint_scores=scores,
                     boxes=BOXES)
            description = {**meta, "image": "image.png", "checkpoints": {"1.x": paths[0].name, "0.x": paths[1].name},
                           "reference": f"{STEM}_mmpose_keypoints.npz", "aptrack_preset": PRESET,
                           "aptrack_architecture": architecture, "flip_test": True, "shift_heatmap": True,
                           "box_padding": 1.25, "made_by": "benchmarks/mmpose_parity.py --family res_animalpose"}
            (args.out / f"{STEM}_fixture.json").write_text(json.dumps(description, indent=2) + "\n")
    print(f"mmpose {version}, Animal-Pose ResNet-{depth}, deconv {channels}, "
          f"score range {scores.min():.3f}..{scores.max():.3f}")
    for name, (kp, sc) in zip(("1.x", "0.x"), results):
        print(f"{name} checkpoint: max |keypoint diff| {np.abs(kp - keypoints).max():.3g} px, "
              f"max |score diff| {np.abs(sc - scores).max():.3g}")
    return 0


if __name__ == "__main__":  # pragma: no cover - run through mmpose_parity.py
    raise SystemExit(f"run: python {ROOT / 'benchmarks' / 'mmpose_parity.py'} --family {STEM}")
