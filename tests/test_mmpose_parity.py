"""aptrack's mmpose presets reproduce mmpose 1.3.2's top-down keypoints.

Each fixture (``tests/fixtures/mmpose/<family>_fixture.json``, made by
``benchmarks/mmpose_parity.py --family <family>``) is one of mmpose's own
configs at a small size with seeded random weights, saved as an mmpose 1.x
and a 0.x checkpoint, plus mmpose's ``inference_topdown`` keypoints and scores
(the config's flip test) for three boxes of a fixed image. The description
names the aptrack preset (``aptrack_preset``) and the reduced architecture
(``aptrack_architecture``) that load it. mmpose is not needed here.

- ``res``: the AP-10K SimpleBaseline config with a ResNet-18 backbone and
  32-channel deconvolutions (``res50-ap10k``);
- ``hrnet``: the AP-10K HRNet-W32 config with its branch widths overridden to
  W8 (8, 16, 32, 64) (``hrnet-w32-ap10k`` at ``width=8``);
- every further family adds its own fixture description beside them.
"""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from aptrack.core.instances import Instances
from aptrack.models.checkpoint import load_checkpoint
from aptrack.models.presets import get_preset
from aptrack.pose.config import PoseConfig
from aptrack.pose.estimator import TopDownPoseEstimator

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "mmpose"
KEYPOINT_TOL = 0.5  # pixels
SCORE_TOL = 1e-3


FIXTURES = {path.name[:-len("_fixture.json")]: path.name for path in sorted(FIXTURE.glob("*_fixture.json"))}
"""Each family's fixture description, beside the shared image."""


def _load(family):
    description = json.loads((FIXTURE / FIXTURES[family]).read_text())
    reference = np.load(FIXTURE / description["reference"])
    image = cv2.imread(str(FIXTURE / description["image"]), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (240, 320, 3)
    return description, reference, image


@pytest.fixture(scope="module", params=sorted(FIXTURES))
def fixture(request):
    return (request.param, *_load(request.param))


def _preset(description):
    """The aptrack preset of the fixture, at the fixture's reduced size.

    ``aptrack_preset_overrides`` (optional) changes other preset fields, for a
    fixture made from a config whose test-time recipe differs from the preset's
    (e.g. ``warp``, ``codec``, ``flip_shift``, ``input_size``).
    """
    preset = get_preset(description["aptrack_preset"])
    overrides = dict(description.get("aptrack_preset_overrides", {}))
    if "input_size" in overrides:
        overrides["input_size"] = tuple(overrides["input_size"])
    return preset.with_(architecture={**preset.architecture, **description["aptrack_architecture"]}, **overrides)


def test_every_family_has_a_fixture():
    assert {"res", "hrnet"} <= set(FIXTURES)


def test_fixture_is_not_trivial(fixture):
    family, description, reference, _ = fixture
    if family == "hrnet":
        assert description["family"] == "hrnet" and description["width"] == 8
    keypoints, scores = reference["keypoints"], reference["keypoint_scores"]
    k = get_preset(description["aptrack_preset"]).layout.num_keypoints
    assert keypoints.shape == (3, k, 2) and scores.shape == (3, k)
    for kp in keypoints:  # keypoints spread over the box, not one argmax everywhere
        assert len({tuple(p) for p in kp.round(2)}) > 10
    assert np.ptp(scores) > description.get("min_score_spread", 1.0)


@pytest.mark.parametrize("version", ["1.x", "0.x"])
def test_keypoints_match_mmpose(fixture, version, record_property):
    family, description, reference, image = fixture
    path = FIXTURE / description["checkpoints"][version]
    raw = torch.load(path, map_location="cpu", weights_only=True)
    head = "head." if version == "1.x" else "keypoint_head."
    assert any(k.startswith(head) for k in raw["state_dict"])
    if family == "hrnet":
        assert any(k.startswith("backbone.stage4.") for k in raw["state_dict"])

    model, preset, _ = load_checkpoint(path, preset=_preset(description))
    if family == "hrnet":
        assert model.backbone.width == description["width"]
    estimator = TopDownPoseEstimator(model, preset, PoseConfig())
    assert estimator.flip_test == description["flip_test"] and estimator.config.box_padding == 1.25
    assert preset.flip_shift == description.get("shift_heatmap", False)
    boxes = reference["boxes"].astype(np.float32)
    out = estimator(image, Instances(boxes, np.ones(len(boxes), np.float32)))

    kp_diff = float(np.abs(out.keypoints - reference["keypoints"]).max())
    score_diff = float(np.abs(out.keypoint_scores - reference["keypoint_scores"]).max())
    record_property("max_keypoint_diff_px", kp_diff)
    record_property("max_score_diff", score_diff)
    assert kp_diff <= KEYPOINT_TOL, f"{family} {version}: keypoints differ from mmpose's by up to {kp_diff:.4g} px"
    assert score_diff <= SCORE_TOL, f"{family} {version}: scores differ from mmpose's by up to {score_diff:.4g}"
