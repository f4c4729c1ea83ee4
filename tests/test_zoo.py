"""mmpose's models in aptrack: presets, mmpose checkpoints (0.x and 1.x keys), mmpose's test-time maths."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from aptrack.core.errors import WeightsError
from aptrack.core.instances import Instances
from aptrack.models import Preset, build_network, get_preset, load_checkpoint
from aptrack.pose.config import PoseConfig
from aptrack.pose.estimator import TopDownPoseEstimator

from conftest import DOG_CLIP, YOLO_INT8

PARITY = Path(__file__).resolve().parent / "fixtures" / "mmpose"


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


def write_preset(preset: Preset, path, layout: str = "ap10k"):
    """``preset`` as a preset file naming its layout (JSON is YAML); returns the path."""
    data = preset.to_dict()
    data["layout"] = layout
    path.write_text(json.dumps(data))
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
    preset_file = write_preset(preset, tmp_path / "tiny-resnet.yaml")
    code = main(["run", str(DOG_CLIP), "--end", "3", "--no-video", "-q", "-o", str(tmp_path / "out"),
                 "--pose", str(weights), "--pose-config", str(preset_file)])
    assert code == 0
    result = json.loads((tmp_path / "out" / "dog_clip.json").read_text())
    assert result["info"]["models"]["pose"]["model"] == "tiny-resnet"
    assert len(result["annotations"]) == 3 and len(result["annotations"][0]["keypoints"]) == 51


ANIMALPOSE_PRESETS = {"res50-animalpose": (50, 0.691), "res101-animalpose": (101, 0.696),
                      "res152-animalpose": (152, 0.704), "hrnet-w32-animalpose": (32, 0.740),
                      "hrnet-w48-animalpose": (48, 0.738)}
"""mmpose's Animal-Pose models: depth or width, and the AP mmpose's metafiles report."""


@pytest.mark.parametrize("name", sorted(ANIMALPOSE_PRESETS))
def test_animalpose_presets_predict_mmposes_twenty_keypoints_with_mmposes_recipe(name):
    preset = get_preset(name)
    size, ap = ANIMALPOSE_PRESETS[name]
    assert preset.layout.name == "animalpose" and preset.layout.num_keypoints == 20
    assert preset.architecture.get("depth", preset.architecture.get("width")) == size
    assert preset.warp == "msra" and preset.flip_test and preset.flip_shift
    assert preset.codec == {"type": "msra-heatmap", "heatmap_size": [64, 64], "sigma": 2.0}
    assert preset.reported["AP"] == pytest.approx(ap)
    from aptrack.core import hub
    entry = hub.load_registry()[preset.weights]
    digits = re.search(r"-([0-9a-f]{8})_\d{8}\.pth$", entry.file).group(1)  # mmpose's names carry the sha256 prefix
    assert entry.url.endswith("/" + entry.file) and entry.url.startswith("https://download.openmmlab.com/mmpose/")
    assert entry.sha256 == digits and len(digits) == 8 and "animalpose" in entry.file
    with torch.device("meta"):
        model = build_network(preset)
    assert model.head.final_layer.out_channels == 20


def test_resnet152_has_the_parameter_count_of_the_simplebaseline_paper():
    from aptrack.models import count_parameters
    with torch.device("meta"):
        model = build_network(get_preset("res152-animalpose"))
    assert count_parameters(model) == pytest.approx(68.6e6, rel=0.005)


def test_eval_of_an_animalpose_model_scores_mmposes_order_against_the_files_order(tmp_path, capsys):
    """A 20-keypoint mmpose file runs on the Animal-Pose json, whose keypoints are mapped by name."""
    from conftest import ANIMALPOSE, animalpose_subset
    if not ANIMALPOSE.is_dir():
        pytest.skip("shared Animal-Pose images not found")
    from aptrack.cli import main

    torch.manual_seed(0)
    preset = tiny_resnet(name="tiny-animalpose", layout=get_preset("res50-animalpose").layout)
    weights = mmpose_0x_file(build_network(preset), tmp_path / "tiny_animalpose.pth")
    preset_file = write_preset(preset, tmp_path / "tiny-animalpose.yaml", layout="animalpose")
    sub = animalpose_subset(tmp_path / "sub.json", 2)
    code = main(["eval", "--data", str(sub), "--images", str(ANIMALPOSE / "images"), "--weights", str(weights),
                 "--pose-config", str(preset_file), "--save", str(tmp_path / "save"), "--format", "json", "-q"])
    assert code == 0
    metrics = json.loads(capsys.readouterr().out)
    gt = json.loads((tmp_path / "save" / "gt.json").read_text())
    results = json.loads((tmp_path / "save" / "results.json").read_text())
    raw = json.loads(sub.read_text())
    assert metrics["instances"] == len(raw["annotations"]) == len(gt["annotations"]) == len(results)
    assert all(len(r["keypoints"]) == 60 and {"image_id", "score"} <= set(r) for r in results)
    # the scored ground truth is in mmpose's order: its third keypoint is the file's left ear
    names = raw["categories"][0]["keypoints"]
    first = np.asarray(raw["annotations"][0]["keypoints"], float)
    scored = np.asarray(gt["annotations"][0]["keypoints"], float).reshape(20, 3)
    ear = first[names.index("left_ear")]
    assert (scored[2, 2] > 0) == (ear[2] > 0)
    if ear[2] > 0:
        np.testing.assert_allclose(scored[2, :2], ear[:2])


def test_a_published_checkpoint_is_recognised_by_its_sha256():
    from aptrack.core import hub
    from aptrack.models import preset_for_weights
    assert preset_for_weights("35760eb8" + "0" * 56) == "res50-ap10k"
    assert preset_for_weights("1AA7F075" + "f" * 56) == "hrnet-w32-animalpose"
    assert preset_for_weights("0" * 64) is None
    default = hub.load_registry()["aptrack-pose-mnv2-256-ft4"]
    assert preset_for_weights(default.sha256) is None  # aptrack's own files describe themselves


def test_pose_file_without_pose_config_takes_the_preset_its_digest_names(tmp_path, monkeypatch):
    import aptrack.models.factory
    from aptrack.pipeline import build_pose

    torch.manual_seed(0)
    preset = tiny_resnet()
    weights = mmpose_0x_file(build_network(preset), tmp_path / "tiny_mmpose.pth")
    preset_file = write_preset(preset, tmp_path / "tiny-resnet.yaml")
    seen = []
    monkeypatch.setattr(aptrack.models.factory, "preset_for_weights",  # what preset_name_for looks up
                        lambda digest: seen.append(digest) or str(preset_file))
    estimator, info = build_pose(PoseConfig(weights=str(weights)))
    from aptrack.core.hub import sha256_of
    assert seen == [sha256_of(weights)] and info["model"] == "tiny-resnet"
    assert estimator.preset.input_size == (64, 64)


def test_a_model_without_published_weights_says_how_to_run_ones_own():
    from aptrack.core.errors import WeightsError
    from aptrack.pipeline import build_pose
    with pytest.raises(WeightsError, match="vitpose-b-ap10k has no published weights: .* "
                                           "--pose FILE --pose-config vitpose-b-ap10k"):
        build_pose(PoseConfig(weights="vitpose-b-ap10k"))


def test_run_tracks_with_an_rtmpose_simcc_checkpoint(tmp_path, mirror):
    """The whole command with a SimCC model: keypoints in the json and csv, the video drawn."""
    if not DOG_CLIP.is_file():
        pytest.skip("shared assets not found")
    import csv

    from aptrack.cli import main

    fixture = json.loads((PARITY / "rtmpose_fixture.json").read_text())
    preset = get_preset("rtmpose-m-ap10k")
    data = preset.to_dict()
    data.update(name="rtmpose-tiny", layout="ap10k", weights=None,
                architecture={**preset.architecture, **fixture["aptrack_architecture"]})
    preset_file = tmp_path / "rtmpose-tiny.yaml"
    preset_file.write_text(json.dumps(data))
    weights = PARITY / fixture["checkpoints"]["1.x"]
    out = tmp_path / "out"
    assert main(["run", str(DOG_CLIP), "--end", "3", "-q", "-o", str(out), "--pose", str(weights),
                 "--pose-config", str(preset_file)]) == 0
    result = json.loads((out / "dog_clip.json").read_text())
    assert result["info"]["models"]["pose"]["model"] == "rtmpose-tiny"
    for ann in result["annotations"]:
        kp = np.asarray(ann["keypoints"], float).reshape(17, 3)
        x1, y1, w, h = ann["bbox"]
        assert np.isfinite(kp).all()
        inside = (kp[:, 0] > x1 - w) & (kp[:, 0] < x1 + 2 * w) & (kp[:, 1] > y1 - h) & (kp[:, 1] < y1 + 2 * h)
        assert inside.all()  # SimCC bins mapped back near the animal's box, not crop pixels
    rows = list(csv.DictReader((out / "dog_clip.csv").open()))
    assert len(rows) == len(result["annotations"]) == 3 and "left_eye_x" in rows[0]
    assert (out / "dog_clip.mp4").stat().st_size > 0
