import numpy as np
import pytest

from aptrack.core.instances import UNTRACKED, Instances


def make(n=3, k=2):
    return Instances(boxes_xyxy=np.arange(n * 4, dtype=float).reshape(n, 4),
                     scores=np.linspace(0.1, 0.9, n), categories=["dog", "cat", "cow"][:n],
                     keypoints=np.ones((n, k, 2)), keypoint_scores=np.full((n, k), 0.5),
                     frame_index=7)


def test_defaults_and_dtypes():
    inst = Instances(boxes_xyxy=[[0, 0, 10, 10]], scores=[0.5])
    assert inst.boxes_xyxy.dtype == np.float32
    assert inst.track_ids.tolist() == [UNTRACKED]
    assert inst.labels.tolist() == [0]
    assert inst.keypoints.shape == (1, 0, 2)
    assert not inst.has_pose


def test_empty_is_an_instance_with_zero_rows():
    e = Instances.empty(num_keypoints=17, frame_index=4)
    assert len(e) == 0 and e.keypoints.shape == (0, 17, 2) and e.frame_index == 4


def test_mask_and_index_selection_keep_rows_aligned():
    inst = make()
    sel = inst[inst.scores > 0.4]
    assert len(sel) == 2
    assert sel.categories.tolist() == ["cat", "cow"]
    assert sel.boxes_xyxy[0].tolist() == [4, 5, 6, 7]
    assert sel.frame_index == 7
    assert inst[1].categories.tolist() == ["cat"]


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="scores"):
        Instances(boxes_xyxy=np.zeros((2, 4)), scores=[0.1])
    with pytest.raises(ValueError, match="boxes_xyxy"):
        Instances(boxes_xyxy=np.zeros((2, 5)), scores=[0.1, 0.2])


def test_arrays_are_read_only_and_with_copies():
    inst = make()
    with pytest.raises(ValueError):
        inst.scores[0] = 1.0
    moved = inst.with_(track_ids=[5, 6, 7])
    assert moved.track_ids.tolist() == [5, 6, 7]
    assert inst.track_ids.tolist() == [UNTRACKED] * 3


def test_concatenate():
    a, b = make(2), make(3)
    both = Instances.concatenate([a, b])
    assert len(both) == 5 and both.categories.tolist() == ["dog", "cat", "dog", "cat", "cow"]


def test_take_with_new_track_ids_checks_them_and_leaves_the_input_alone():
    inst = make()
    ids = np.array([9, 4])
    sel = inst.take([2, 0], track_ids=ids)
    assert sel.track_ids.dtype == np.int64 and sel.track_ids.tolist() == [9, 4]
    assert sel.categories.tolist() == ["cow", "dog"] and sel.frame_index == 7
    np.testing.assert_array_equal(sel.boxes_xyxy, inst.boxes_xyxy[[2, 0]])
    with pytest.raises(ValueError):
        sel.track_ids[0] = 1          # read-only like every Instances
    ids[0] = 1                        # the caller's array stays writeable and is not shared
    assert sel.track_ids.tolist() == [9, 4]
    with pytest.raises(ValueError, match="track_ids"):
        inst.take([0, 1], track_ids=[1])
    assert inst.track_ids.tolist() == [UNTRACKED] * 3
