import json

import numpy as np
import pytest
from conftest import animalpose_subset

from aptrack.core import resources
from aptrack.core.errors import DatasetError
from aptrack.core.layout import load_layout
from aptrack.data.datasets import (
    KeypointMapping,
    find_mapping,
    load_keypoint_dataset,
    load_mapping,
    select_split,
    split_by_image,
)

AP10K = load_layout("ap10k")
TABLE = resources.folder("mappings") / "animalpose_to_ap10k.yaml"


def test_mapping_table_covers_every_ap10k_keypoint_from_known_sources():
    mapping = load_mapping(TABLE)
    assert len(mapping.source_keypoints) == 20
    m = mapping.matrix(AP10K)
    assert m.shape == (17, 20)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)  # every AP-10K keypoint gets a full recipe
    src = {name: i for i, name in enumerate(mapping.source_keypoints)}
    dst = {name: i for i, name in enumerate(AP10K.keypoints)}
    # legs map joint for joint down the chain: elbow -> shoulder/hip, knee -> elbow/knee, paw -> paw
    for side in ("left", "right"):
        assert m[dst[f"{side}_shoulder"], src[f"{side}_front_elbow"]] == 1
        assert m[dst[f"{side}_elbow"], src[f"{side}_front_knee"]] == 1
        assert m[dst[f"{side}_front_paw"], src[f"{side}_front_paw"]] == 1
        assert m[dst[f"{side}_hip"], src[f"{side}_back_elbow"]] == 1
        assert m[dst[f"{side}_knee"], src[f"{side}_back_knee"]] == 1
        assert m[dst[f"{side}_back_paw"], src[f"{side}_back_paw"]] == 1
        assert m[:, src[f"{side}_ear"]].sum() == 0  # ears have no AP-10K keypoint
    assert m[dst["neck"], src["throat"]] == m[dst["neck"], src["withers"]] == 0.5
    assert m[dst["root_of_tail"], src["tailbase"]] == 1


def test_mapping_keeps_left_right_consistent_with_the_flip_pairs():
    mapping = load_mapping(TABLE)
    rules = dict(mapping.rules)
    for a, b in AP10K.flip_pairs:
        left, right = AP10K.keypoints[a], AP10K.keypoints[b]
        assert [s.replace("left", "right") for s in rules[left]] == list(rules[right])


def test_mapping_averages_sources_and_needs_all_of_them_labelled():
    mapping = KeypointMapping("src", "toy", ("a", "b", "c"), (("x", ("a",)), ("y", ("b", "c"))))
    from aptrack.core.layout import KeypointLayout
    toy = KeypointLayout("toy", ("x", "y", "z"), (), (), (0.1, 0.1, 0.1))
    kp = np.array([[[1, 2], [10, 20], [30, 40]], [[1, 2], [10, 20], [30, 40]]], float)
    vis = np.array([[1, 1, 1], [1, 1, 0]])
    out, out_vis = mapping.apply(kp, vis, toy)
    assert out_vis.tolist() == [[True, True, False], [True, False, False]]
    np.testing.assert_allclose(out[0], [[1, 2], [20, 30], [0, 0]])
    np.testing.assert_allclose(out[1, 1], [0, 0])  # half-labelled target is dropped, not half-made


def test_the_table_is_found_by_the_files_keypoint_names(animalpose):
    names = json.loads((animalpose / "keypoints.json").read_text())["categories"][0]["keypoints"]
    assert find_mapping(names, AP10K) == load_mapping(TABLE)
    assert find_mapping(("foo", "bar"), AP10K) is None


def test_animalpose_loads_mapped_into_ap10k(animalpose, tmp_path):
    path = animalpose_subset(tmp_path / "sub.json", 3)
    raw = json.loads(path.read_text())
    ds = load_keypoint_dataset(path, animalpose / "images", AP10K)
    assert len(ds) == len(raw["annotations"]) and ds.skipped == {}
    first = raw["annotations"][0]
    np.testing.assert_allclose(ds.boxes_xyxy[0], first["bbox"])  # the file's bbox is already xyxy
    kp = np.array(first["keypoints"], float)
    src = load_mapping(TABLE).source_keypoints
    for name in ("left_eye", "nose"):
        i = src.index(name)
        assert ds.visible[0, AP10K.keypoints.index(name)] == (kp[i, 2] > 0)
        if kp[i, 2] > 0:
            np.testing.assert_allclose(ds.keypoints[0, AP10K.keypoints.index(name)], kp[i, :2])
    neck = AP10K.keypoints.index("neck")
    both = kp[src.index("throat"), 2] > 0 and kp[src.index("withers"), 2] > 0
    assert ds.visible[0, neck] == both
    assert set(ds.categories) <= {"dog", "cat", "sheep", "horse", "cow"}


def test_coco_ap10k_file_has_xywh_boxes(ap10k_sample):
    ds = load_keypoint_dataset(ap10k_sample / "test_ap10k.json", ap10k_sample, AP10K)
    raw = json.loads((ap10k_sample / "test_ap10k.json").read_text())
    ann = raw["annotations"][0]
    x, y, w, h = ann["bbox"]
    row = int(np.flatnonzero(ds.image_ids == ann["image_id"])[0])
    np.testing.assert_allclose(ds.boxes_xyxy[row], [x, y, x + w, y + h])
    assert ds.visible[row].sum() == ann["num_keypoints"]
    coco = ds.to_coco()
    assert coco["annotations"][row]["bbox"] == pytest.approx([x, y, w, h])


def _tiny_coco(tmp_path, annotations, make_image=True):
    import cv2
    if make_image:
        cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((100, 200, 3), np.uint8))
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 100},
                       {"id": 2, "file_name": "missing.jpg", "width": 200, "height": 100}],
            "categories": [{"id": 1, "name": "dog", "keypoints": list(AP10K.keypoints)}],
            "annotations": annotations}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path


def _ann(image_id=1, bbox=(10, 10, 50, 40), n=17):
    return {"id": 1, "image_id": image_id, "category_id": 1, "bbox": list(bbox),
            "keypoints": [20, 20, 2] * n}


def test_bad_rows_are_skipped_and_counted(tmp_path, caplog):
    anns = [_ann(), _ann(image_id=2), _ann(n=16), _ann(bbox=(500, 500, 20, 20)), _ann()]
    ds = load_keypoint_dataset(_tiny_coco(tmp_path, anns), tmp_path, AP10K)
    assert len(ds) == 2
    assert ds.skipped == {"missing or unreadable image": 1,
                          "keypoint array of length 48, expected 51": 1,
                          "box outside the image or empty": 1}
    assert "skipped 1 annotation(s): missing or unreadable image" in caplog.text


def test_boxes_partly_outside_are_clipped(tmp_path):
    ds = load_keypoint_dataset(_tiny_coco(tmp_path, [_ann(bbox=(-10, 50, 300, 80))]), tmp_path, AP10K)
    np.testing.assert_allclose(ds.boxes_xyxy[0], [0, 50, 200, 100])


@pytest.mark.parametrize("content, message", [
    (None, "annotation file not found"),
    ("{not json", "not valid json"),
    ('{"images": []}', "not a COCO-style keypoint file"),
])
def test_unreadable_files_raise_one_clear_error(tmp_path, content, message):
    path = tmp_path / "x.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_keypoint_dataset(path, tmp_path, AP10K)


def test_nothing_usable_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="no usable annotation"):
        load_keypoint_dataset(_tiny_coco(tmp_path, [_ann(image_id=2)]), tmp_path, AP10K)


def test_unknown_keypoints_without_a_table_is_an_error(tmp_path):
    path = _tiny_coco(tmp_path, [_ann()])
    data = json.loads(path.read_text())
    data["categories"][0]["keypoints"] = [f"k{i}" for i in range(17)]
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="no table"):
        load_keypoint_dataset(path, tmp_path, AP10K)


def test_split_is_by_image_seeded_and_disjoint(animalpose, tmp_path):
    ds = load_keypoint_dataset(animalpose_subset(tmp_path / "s.json", 60), animalpose / "images", AP10K)
    train, val = split_by_image(ds, val_instances=20, seed=3)
    assert set(ds.image_ids[train]).isdisjoint(ds.image_ids[val])
    assert len(train) + len(val) == len(ds) and len(val) >= 20
    again_train, again_val = split_by_image(ds, val_instances=20, seed=3)
    assert np.array_equal(val, again_val) and np.array_equal(train, again_train)
    assert not np.array_equal(val, split_by_image(ds, val_instances=20, seed=4)[1])
    assert len(select_split(ds, "val", 20, 3)) == len(val)
    with pytest.raises(DatasetError, match="empty side"):
        split_by_image(ds, val_instances=10_000, seed=0)
    with pytest.raises(DatasetError, match="unknown split"):
        select_split(ds, "test", 20, 3)


MMPOSE_ANIMALPOSE_ORDER = ("L_Eye", "R_Eye", "L_EarBase", "R_EarBase", "Nose", "Throat", "TailBase", "Withers",
                           "L_F_Elbow", "R_F_Elbow", "L_B_Elbow", "R_B_Elbow", "L_F_Knee", "R_F_Knee",
                           "L_B_Knee", "R_B_Knee", "L_F_Paw", "R_F_Paw", "L_B_Paw", "R_B_Paw")
"""mmpose 1.3.2's Animal-Pose keypoint order (configs/_base_/datasets/animalpose.py)."""


def test_animalpose_layout_is_mmposes_order_flip_pairs_and_sigmas():
    layout = load_layout("animalpose")
    short = {"left": "L", "right": "R", "front": "F", "back": "B"}

    def mmpose_name(name):
        parts = name.split("_")
        if parts[-1] == "ear":
            return f"{short[parts[0]]}_EarBase"
        if len(parts) == 1:
            return {"tailbase": "TailBase"}.get(name, name.capitalize())
        return "_".join(short.get(p, p.capitalize()) for p in parts)

    assert tuple(mmpose_name(k) for k in layout.keypoints) == MMPOSE_ANIMALPOSE_ORDER
    for a, b in layout.flip_pairs:  # every pair swaps left and right of the same joint
        assert layout.keypoints[a].replace("left", "right") == layout.keypoints[b]
    paired = {i for pair in layout.flip_pairs for i in pair}
    assert {layout.keypoints[i] for i in set(range(20)) - paired} == {"nose", "throat", "tailbase", "withers"}
    sigma = dict(zip(MMPOSE_ANIMALPOSE_ORDER, layout.sigmas))
    assert (sigma["L_EarBase"], sigma["R_EarBase"], sigma["Nose"]) == (0.026, 0.035, 0.035)
    assert sigma["Throat"] == sigma["Withers"] == 0.10 and sigma["R_B_Elbow"] == 0.107
    assert sigma["L_F_Knee"] == 0.087 and sigma["R_B_Paw"] == 0.089


def test_a_file_holding_every_layout_keypoint_maps_by_name(tmp_path):
    """The Animal-Pose file's own order loads into mmpose's Animal-Pose order, joint by joint."""
    layout = load_layout("animalpose")
    file_order = list(load_mapping(TABLE).source_keypoints)  # the dataset file's order
    assert set(file_order) == set(layout.keypoints) and file_order != list(layout.keypoints)
    mapping = find_mapping(file_order, layout)
    assert mapping is not None and mapping.matrix(layout).sum() == 20
    kp = [[10.0 + i, 20.0 + 2 * i, 1] for i in range(20)]
    kp[file_order.index("withers")][2] = 0  # unlabelled in the file
    import cv2
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((100, 200, 3), np.uint8))
    data = {"images": {"1": "a.jpg"},
            "categories": [{"id": 1, "name": "dog", "keypoints": file_order}],
            "annotations": [{"image_id": 1, "category_id": 1, "bbox": [5, 5, 90, 90], "keypoints": kp}]}
    (tmp_path / "ap.json").write_text(json.dumps(data))
    ds = load_keypoint_dataset(tmp_path / "ap.json", tmp_path, layout)
    for name in ("left_ear", "throat", "right_back_paw"):
        i = file_order.index(name)
        np.testing.assert_allclose(ds.keypoints[0, layout.keypoints.index(name)], [10.0 + i, 20.0 + 2 * i])
    assert not ds.visible[0, layout.keypoints.index("withers")] and ds.visible[0].sum() == 19
    # a file missing one of the layout's keypoints is not mapped by name
    assert find_mapping(file_order[:-1], layout) is None
