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

from mmpose_parity import (BOXES, HRNET_POOL_SIZE, ROOT, aptrack_keypoints, build_mmpose, checkpoint_folder,
                           fixture_image, mmpose_keypoints, print_differences, save_checkpoints, seeded_state,
                           write_fixture)

CONFIG = "configs/animal_2d_keypoint/topdown_heatmap/animalpose/td-hm_res50_8xb64-210e_animalpose-256x256.py"
PRESET = "res50-animalpose"
STEM = "res_animalpose"


def run(args, version: str) -> int:
    """``--family res_animalpose``: the ResNet fixture, or with ``--full`` ResNet-50, printing only."""
    depth, channels = (50, 256) if args.full else (args.depth, args.channels)
    model = build_mmpose(depth, channels, CONFIG)
    state = seeded_state(model, args.seed, HRNET_POOL_SIZE)
    image = fixture_image(args.out, args.seed, args.full)
    keypoints, scores = mmpose_keypoints(model, image, BOXES)
    architecture = {"depth": depth, "deconv_channels": [channels] * 3, "deconv_kernel": 4}
    meta = {"mmpose_version": version, "config": CONFIG, "family": STEM, "depth": depth,
            "deconv_channels": [channels] * 3, "seed": args.seed}
    with checkpoint_folder(args) as folder:
        paths = save_checkpoints(state, meta, folder, f"res{depth}_animalpose")
        results = [aptrack_keypoints(p, PRESET, architecture, image, BOXES) for p in paths]
    if not args.full:
        write_fixture(args.out, STEM, meta, paths, PRESET, architecture, keypoints, scores)
    print_differences(version, f"Animal-Pose ResNet-{depth}, deconv {channels}", keypoints, scores, results)
    return 0


if __name__ == "__main__":  # pragma: no cover - run through mmpose_parity.py
    raise SystemExit(f"run: python {ROOT / 'benchmarks' / 'mmpose_parity.py'} --family {STEM}")
