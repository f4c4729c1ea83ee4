"""A lab's own labels: DeepLabCut projects and SLEAP files as training sets, layouts as data."""

import json

import numpy as np
import pytest
import yaml

from aptrack.cli import main
from aptrack.core.errors import DatasetError, WeightsError
from aptrack.data.labelled import flip_pairs_by_name, is_lab_labels, keypoint_boxes, load_lab_labels
from aptrack.data.topview import (TOP_VIEW_KEYPOINTS, TopViewConfig, TopViewScene, write_dlc_project, write_slp,
                                  write_top_view_video)

pytest.importorskip("sleap_io")
pytest.importorskip("tables")

SMALL = dict(width=160, height=120, body_length=30.0, speed=4.0, arena_margin=0.05)
EDGES = ((0, 1), (0, 2), (1, 3), (2, 3))  # snout-ears, ears-tail base, in TOP_VIEW_KEYPOINTS' order


def scene(animals=1, seed=0):
    return TopViewScene(TopViewConfig(**SMALL, animals=animals), seed=seed)


def truth(count, animals=1, seed=0):
    return np.array([k for _, _, k in scene(animals, seed).frames(count)])  # (F, A, 4, 2)


@pytest.mark.parametrize("animals,files", [(1, ("csv", "h5")), (2, ("csv",)), (1, ("h5",))])
def test_a_deeplabcut_project_keeps_its_bodyparts_order_skeleton_and_labels(tmp_path, animals, files):
    project = write_dlc_project(tmp_path / "proj", scene(animals), 6, files=files)
    assert is_lab_labels(project) and is_lab_labels(project / "config.yaml")
    data = load_lab_labels(project, tmp_path / "frames")
    assert data.layout.keypoints == TOP_VIEW_KEYPOINTS  # the project's order, not sorted
    assert set(data.layout.skeleton) == set(EDGES)
    assert data.layout.flip_pairs == ((1, 2),)  # left_ear <-> right_ear
    assert len(data) == 6 * animals and data.visible.all()
    want = truth(6, animals).reshape(-1, 4, 2)
    got = data.keypoints[np.lexsort((data.keypoints[:, 0, 0], data.image_ids))]
    want = want[np.lexsort((want[:, 0, 0], np.repeat(np.arange(6), animals)))]
    np.testing.assert_allclose(got, want, atol=1e-3)
    assert all(f.startswith(str(project.resolve())) for f in data.files)
    assert not (project / "labeled-data" / "synthetic" / "CollectedData_aptrack.csv").exists() or "csv" in files


def test_a_sleap_file_gives_its_user_instances_and_embedded_frames(tmp_path):
    path = write_slp(tmp_path / "labels.slp", scene(2), 4, embed=True)
    for png in (tmp_path / "labels_frames").iterdir():
        png.unlink()  # only the embedded copies are left
    data = load_lab_labels(path, tmp_path / "frames")
    assert data.layout.keypoints == TOP_VIEW_KEYPOINTS and set(data.layout.skeleton) == set(EDGES)
    assert len(data) == 8 and len({*data.files}) == 4
    assert all(str(f).startswith(str(tmp_path / "frames")) for f in data.files)
    assert data.image_sizes[0].tolist() == [SMALL["width"], SMALL["height"]]


def test_flip_pairs_are_found_by_left_and_right_names():
    names = ["snout", "left_ear", "right_ear", "tail_base", "LeftPaw", "RightPaw", "ear_l", "ear_r", "hindleft",
             "hindright", "l_eye", "r_eye", "tail"]
    assert flip_pairs_by_name(names) == ((1, 2), (4, 5), (6, 7), (8, 9), (10, 11))
    assert flip_pairs_by_name(["nose", "tail_tip"]) == ()


def test_boxes_around_labelled_keypoints_are_padded_and_clipped():
    kp = np.array([[[10, 10], [30, 20], [0, 0]], [[2, 2], [4, 4], [99, 99]]], float)
    vis = np.array([[True, True, False], [True, True, False]])
    boxes = keypoint_boxes(kp, vis, [[100, 100], [100, 100]], padding=0.25, min_size=16)
    np.testing.assert_allclose(boxes[0], [5, 5, 35, 25])  # 20 x 10 grown by 5 a side; the hidden one ignored
    np.testing.assert_allclose(boxes[1], [0, 0, 11, 11])  # at least 16 px, clipped at the image's corner


def test_bad_labels_are_one_clear_error(tmp_path, capsys):
    with pytest.raises(DatasetError, match="not found"):
        load_lab_labels(tmp_path / "nowhere.slp", tmp_path)
    project = write_dlc_project(tmp_path / "proj", scene(), 3)
    cfg = yaml.safe_load((project / "config.yaml").read_text())
    cfg["bodyparts"] = []
    (project / "config.yaml").write_text(yaml.safe_dump(cfg))
    code = main(["train", "--data", str(project), "-o", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no bodyparts" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def imagenet_backbone():
    from aptrack.core import hub

    try:
        return hub.resolve("mobilenetv2-imagenet").path
    except WeightsError as exc:
        pytest.skip(f"ImageNet MobileNetV2 weights not available here: {exc}")


def test_training_on_a_deeplabcut_project_reaches_a_low_error_and_runs_with_its_skeleton(tmp_path, imagenet_backbone,
                                                                                         capsys):
    project = write_dlc_project(tmp_path / "proj", scene(), 48)
    config = tmp_path / "fast.yaml"
    config.write_text(yaml.safe_dump({  # lab_mobilenetv2, smaller and shorter (a base has no base of its own)
        "base": "animalpose_mobilenetv2", "name": "lab_fast", "eval_every": 40,
        "model": {"pretrained": str(imagenet_backbone), "frozen_stages": 0, "deconv_channels": [48, 48, 48]},
        "codec": {"input_size": [64, 64], "heatmap_size": [16, 16], "sigma": 1.0, "blur_kernel": 5},
        "augment": {"rotate_deg": 180, "rotate_prob": 0.8, "half_body_prob": 0.0, "scale_range": [0.9, 1.1],
                    "shift": 0.05},
        "optim": {"epochs": 40, "batch_size": 16, "lr": 0.004, "warmup_iters": 10},
        "split": {"val_instances": 10}}))
    code = main(["train", "--data", str(project), "--config", str(config), "-o", str(tmp_path / "run"),
                 "--device", "cpu", "--quiet"])
    assert code == 0, capsys.readouterr().err
    import torch

    ckpt = torch.load(tmp_path / "run" / "model.pt", weights_only=True, map_location="cpu")
    metrics = ckpt["meta"]["val_metrics"]
    assert metrics["instances"] == 10
    assert metrics["EPE"] < 3.0, metrics  # pixels, on held-out frames of 30-px animals
    assert ckpt["preset"]["layout"]["keypoints"] == list(TOP_VIEW_KEYPOINTS)
    assert ckpt["preset"]["layout"]["flip_pairs"] == [[1, 2]]

    video = tmp_path / "mouse.avi"
    write_top_view_video(video, scene(seed=5), 30)
    code = main(["run", str(video), "-o", str(tmp_path / "out"), "--pipeline", "arena", "--animals", "1",
                 "--pose", str(tmp_path / "run" / "model.pt"), "--no-video", "--export", "json,csv",
                 "--quiet", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    out = json.load(open(tmp_path / "out" / "mouse.json"))
    assert out["info"]["keypoint_names"] == list(TOP_VIEW_KEYPOINTS)
    assert {tuple(e) for e in out["info"]["skeleton"]} == set(EDGES)
    assert len(out["annotations"]) == 30 and len(out["annotations"][0]["keypoints"]) == 3 * 4
    header = (tmp_path / "out" / "mouse.csv").read_text().splitlines()[0]
    assert "snout_x" in header and "tail_base_y" in header
