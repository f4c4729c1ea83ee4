import numpy as np
import pytest

from aptrack.tracker.matching import linear_assignment, oks_matrix, similarity_matrix


def test_linear_assignment_prefers_global_minimum():
    cost = np.array([[0.1, 0.2], [0.15, 0.9]])
    # greedy would take (0,0) then (1,1)=0.9; the optimum is (0,1)+(1,0)=0.35
    matches, ur, uc = linear_assignment(cost, thresh=0.95)
    assert sorted(map(tuple, matches.tolist())) == [(0, 1), (1, 0)]
    assert ur.size == 0 and uc.size == 0


def test_linear_assignment_threshold_leaves_pairs_unmatched():
    cost = np.array([[0.1, 0.9], [0.9, 0.95], [0.8, 0.3]])
    matches, ur, uc = linear_assignment(cost, thresh=0.5)
    assert sorted(map(tuple, matches.tolist())) == [(0, 0), (2, 1)]
    assert ur.tolist() == [1] and uc.tolist() == []


@pytest.mark.parametrize("shape", [(1, 5), (5, 1), (1, 1), (3, 3), (4, 6), (6, 4)])
def test_linear_assignment_agrees_with_lap_with_or_without_its_shortcut(shape):
    """Random costs take the solver or the distinct-minimum shortcut; both must give lap's answer."""
    import lap
    rng = np.random.default_rng(3)
    for _ in range(200):
        cost = rng.uniform(0, 1, shape)
        matches, ur, uc = linear_assignment(cost, thresh=0.4)
        _, x, y = lap.lapjv(cost, extend_cost=True, cost_limit=0.4)
        want = [(i, int(j)) for i, j in enumerate(x) if j >= 0]
        assert list(map(tuple, matches.tolist())) == want
        assert ur.tolist() == [i for i, j in enumerate(x) if j < 0]
        assert uc.tolist() == [j for j, i in enumerate(y) if i < 0]


def test_linear_assignment_empty():
    m, ur, uc = linear_assignment(np.zeros((0, 3)), 0.5)
    assert m.shape == (0, 2) and ur.size == 0 and uc.tolist() == [0, 1, 2]


def test_oks_identical_is_one_and_hand_value():
    kp = np.array([[[0.0, 0.0], [10.0, 0.0]]])
    vis = np.ones((1, 2), bool)
    assert oks_matrix(kp, vis, kp, vis, [100.0], [0.1, 0.1])[0, 0] == pytest.approx(1.0)
    moved = kp + [[[3.0, 4.0], [0.0, 0.0]]]  # first keypoint 5 px away
    # e = 25 / (2 * 100 * 0.04) = 3.125 -> (exp(-3.125) + 1) / 2
    expect = (np.exp(-3.125) + 1) / 2
    assert oks_matrix(kp, vis, moved, vis, [100.0], [0.1, 0.1])[0, 0] == pytest.approx(expect)


def test_oks_uses_only_keypoints_visible_on_both_sides_and_nan_below_min_common():
    kp = np.zeros((1, 3, 2))
    far = kp + 1000.0
    far[0, 0] = 0.0
    vis_a = np.array([[True, True, False]])
    vis_b = np.array([[True, False, True]])
    assert oks_matrix(kp, vis_a, far, vis_b, [100.0], [0.1] * 3)[0, 0] == pytest.approx(1.0)
    assert np.isnan(oks_matrix(kp, vis_a, far, vis_b, [100.0], [0.1] * 3, min_common=2)[0, 0])


def test_similarity_mixes_iou_and_oks_only_where_keypoints_exist():
    boxes_a = [[0, 0, 10, 10], [0, 0, 10, 10]]
    boxes_b = [[5, 0, 15, 10]]
    kp_a = np.zeros((2, 1, 2))
    kp_b = np.zeros((1, 1, 2))
    vis_a = np.array([[True], [False]])
    vis_b = np.array([[True]])
    sim = similarity_matrix(boxes_a, boxes_b, kp_a, vis_a, kp_b, vis_b, sigmas=[0.1], oks_weight=0.5)
    iou = 50 / 150
    np.testing.assert_allclose(sim[:, 0], [0.5 * iou + 0.5 * 1.0, iou])
