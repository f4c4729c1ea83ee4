"""mmpose's models in aptrack: presets, mmpose checkpoints (0.x and 1.x keys), mmpose's test-time maths."""

import json

import numpy as np
import pytest
import torch

from aptrack.core.errors import WeightsError
from aptrack.core.instances import Instances
from aptrack.models import Preset, build_network, get_preset, load_checkpoint
from aptrack.pose.config import PoseConfig
from aptrack.pose.estimator import TopDownPoseEstimator

from conftest import DOG_CLIP, YOLO_INT8


def tiny_resnet(**changes) -> Preset:
    """res50-ap10k's test-time recipe on a ResNet-18 with thin deconvolutions and 64 px crops."""
    preset = get_preset("res50-ap10k").with_(
        name="tiny-resnet", architecture={"depth": 18, "deconv_channels": [16, 16, 16], "deconv_kernel": 4},
        input_size=(64, 64), codec={"type": "msra-heatmap", "heatmap_size": [16, 16], "sigma": 2.0}, weights=None)
    return preset.with_(**changes)


def mmpose_0x_file(model, path):
    """``model``'s weights as an mmpose 0.x checkpoint: ``keypoint_head.`` keys in a ``state_dict`` wrapper."""
    state = {k.replace("head.", "keypoint_head.", 1) if k.startswith("head.") else k: v
             for k, v in model.state_dict().items()}
    torch.save({"meta": {"mmpose_version": "0.x"}, "state_dict": state}, path)
    return path


def test_mmpose_presets_describe_mmposes_test_pipeline():
    preset = get_preset("res50-ap10k")
    assert preset.family == "resnet" and preset.warp == "msra" and preset.flip_shift
    assert preset.codec["type"] == "msra-heatmap" and preset.input_size == (256, 256)
    assert preset.mean == (123.675, 116.28, 103.53) and preset.color == "rgb"
    assert preset.reported["AP"] == pytest.approx(0.680)


def test_an_mmpose_checkpoint_loads_with_its_preset_and_gives_the_same_keypoints(tmp_path):
    torch.manual_seed(0)
    preset = tiny_resnet()
    original = build_network(preset)
    path = mmpose_0x_file(original, tmp_path / "tiny_mmpose.pth")
    with pytest.raises(WeightsError, match="--pose-config"):
        load_checkpoint(path)
    model, loaded, meta = load_checkpoint(path, preset=preset)
    assert loaded == preset and meta["source"] == "mmpose checkpoint"
    frame = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    boxes = Instances(np.array([[10.0, 12.0, 70.0, 80.0]]), [0.9])
    a = TopDownPoseEstimator(original, preset, PoseConfig())(frame, boxes)
    b = TopDownPoseEstimator(model, preset, PoseConfig())(frame, boxes)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    # a checkpoint of another architecture is one clear line naming the key
    with pytest.raises(WeightsError, match="shape mismatch at 'head.deconv_layers.0.weight'"):
        load_checkpoint(path, preset=preset.with_(architecture={**preset.architecture, "deconv_channels": [8, 8, 8]}))


def test_mmpose_crops_map_back_as_mmpose_does():
    """mmpose maps crop keypoints back with ``x / input_size * scale + center - scale / 2``."""
    est = TopDownPoseEstimator(build_network(tiny_resnet()), tiny_resnet(), PoseConfig())
    centers, scales = est.regions(np.array([[10.0, 20.0, 50.0, 100.0]]))
    np.testing.assert_allclose(centers, [[30.0, 60.0]])
    np.testing.assert_allclose(scales, [[100.0, 100.0]])  # 80 px tall, padded 1.25, made square
    _, matrices = est.crops(np.zeros((120, 80, 3), np.uint8), np.array([[10.0, 20.0, 50.0, 100.0]]))
    back = est.to_frame(np.array([[32.0, 32.0], [0.0, 64.0]]), matrices[0], centers[0], scales[0])
    np.testing.assert_allclose(back, [[30.0, 60.0], [-20.0, 110.0]])


def test_run_takes_an_mmpose_checkpoint_with_pose_config(tmp_path, mirror):
    if not (DOG_CLIP.is_file() and YOLO_INT8.is_file()):
        pytest.skip("shared assets not found")
    from aptrack.cli import main

    torch.manual_seed(0)
    preset = tiny_resnet()
    weights = mmpose_0x_file(build_network(preset), tmp_path / "tiny_mmpose.pth")
    preset_file = tmp_path / "tiny-resnet.yaml"
    data = preset.to_dict()
    data["layout"] = "ap10k"
    preset_file.write_text(json.dumps(data))  # JSON is YAML
    code = main(["run", str(DOG_CLIP), "--end", "3", "--no-video", "-q", "-o", str(tmp_path / "out"),
                 "--pose", str(weights), "--pose-config", str(preset_file)])
    assert code == 0
    result = json.loads((tmp_path / "out" / "dog_clip.json").read_text())
    assert result["info"]["models"]["pose"]["model"] == "tiny-resnet"
    assert len(result["annotations"]) == 3 and len(result["annotations"][0]["keypoints"]) == 51
