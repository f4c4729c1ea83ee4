"""aptrack's ``res50-ap10k`` preset reproduces mmpose 1.3.2's top-down keypoints.

The fixture (``tests/fixtures/mmpose/``, made by ``benchmarks/mmpose_parity.py``)
is mmpose's own AP-10K SimpleBaseline config at a small size (ResNet-18
backbone, 32-channel deconvolutions) with seeded random weights, saved as an
mmpose 1.x and a 0.x checkpoint, plus mmpose's ``inference_topdown`` keypoints
and scores (flip test with heatmap shift, as the config has it) for three
boxes of a fixed image. mmpose is not needed here.

The HRNet fixture (``hrnet_fixture.json``, made by ``benchmarks/mmpose_parity.py
--family hrnet``) is the same for mmpose's AP-10K HRNet-W32 config with its
branch widths overridden to W8 (8, 16, 32, 64), loaded through aptrack's
``hrnet-w32-ap10k`` preset at ``width=8``, on the same image and boxes.
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


FIXTURES = {"res": "fixture.json", "hrnet": "hrnet_fixture.json"}
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


def _preset(family, description):
    """The aptrack preset of the family at the fixture's reduced size."""
    if family == "hrnet":
        return get_preset("hrnet-w32-ap10k").with_(architecture={"width": description["width"]})
    preset = get_preset("res50-ap10k")
    return preset.with_(architecture={**preset.architecture, "depth": description["depth"],
                                      "deconv_channels": list(description["deconv_channels"])})


def test_fixture_is_not_trivial(fixture):
    family, description, reference, _ = fixture
    if family == "hrnet":
        assert description["family"] == "hrnet" and description["width"] == 8
    keypoints, scores = reference["keypoints"], reference["keypoint_scores"]
    assert keypoints.shape == (3, 17, 2) and scores.shape == (3, 17)
    for kp in keypoints:  # keypoints spread over the box, not one argmax everywhere
        assert len({tuple(p) for p in kp.round(2)}) > 10
    assert np.ptp(scores) > 1.0


@pytest.mark.parametrize("version", ["1.x", "0.x"])
def test_keypoints_match_mmpose(fixture, version, record_property):
    family, description, reference, image = fixture
    path = FIXTURE / description["checkpoints"][version]
    raw = torch.load(path, map_location="cpu", weights_only=True)
    head = "head." if version == "1.x" else "keypoint_head."
    assert any(k.startswith(head) for k in raw["state_dict"])
    if family == "hrnet":
        assert any(k.startswith("backbone.stage4.") for k in raw["state_dict"])

    model, preset, _ = load_checkpoint(path, preset=_preset(family, description))
    if family == "hrnet":
        assert model.backbone.width == description["width"]
    estimator = TopDownPoseEstimator(model, preset, PoseConfig())
    assert estimator.flip_test and preset.flip_shift and estimator.config.box_padding == 1.25
    boxes = reference["boxes"].astype(np.float32)
    out = estimator(image, Instances(boxes, np.ones(len(boxes), np.float32)))

    kp_diff = float(np.abs(out.keypoints - reference["keypoints"]).max())
    score_diff = float(np.abs(out.keypoint_scores - reference["keypoint_scores"]).max())
    record_property("max_keypoint_diff_px", kp_diff)
    record_property("max_score_diff", score_diff)
    assert kp_diff <= KEYPOINT_TOL, f"{family} {version}: keypoints differ from mmpose's by up to {kp_diff:.4g} px"
    assert score_diff <= SCORE_TOL, f"{family} {version}: scores differ from mmpose's by up to {score_diff:.4g}"
