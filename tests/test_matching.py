import numpy as np
import pytest

from aptrack.core.oks import oks_matrix
from aptrack.track.matching import linear_assignment, similarity_matrix


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


def _random_scene(rng, t, n, k):
    xy = rng.uniform(0, 200, (t + n, 2))
    wh = rng.uniform(5, 60, (t + n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    boxes[0, 3] = boxes[0, 1]                       # a zero-height box
    boxes[1, 2] = boxes[1, 0] - 3                   # corners swapped: no area
    kp = boxes[:, None, :2] + rng.uniform(0, 1, (t + n, k, 2)) * wh[:, None]
    scores = rng.uniform(0, 1, (t + n, k))
    return boxes[:t], kp[:t], scores[:t], boxes[t:], kp[t:], scores[t:]


def test_box_iou_equals_a_numpy_formula_on_random_and_degenerate_boxes():
    from aptrack.core.boxes import box_iou_xyxy
    rng = np.random.default_rng(5)
    a, _, _, b, _, _ = _random_scene(rng, 6, 7, 1)
    b[2] = b[3]                                     # identical boxes
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)   # noqa: E731
    union = area(a)[:, None] + area(b)[None] - inter
    want = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
    np.testing.assert_allclose(box_iou_xyxy(a, b), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(box_iou_xyxy(b.astype(np.float32), b), box_iou_xyxy(b, b), rtol=1e-5)
    assert box_iou_xyxy(b, b)[2, 3] == 1.0
    assert box_iou_xyxy(a, a)[0, 0] == 0.0 and box_iou_xyxy(a, a)[1, 1] == 0.0   # boxes without area
    assert box_iou_xyxy(np.zeros((0, 4)), b).shape == (0, 7)


def test_assign_subsets_equals_linear_assignment_on_the_submatrix():
    """Both the compiled shortcut and the solver path, on random subsets of random similarities."""
    from aptrack.track.matching import assign_subsets
    rng = np.random.default_rng(8)
    solver_path = 0
    for _ in range(300):
        sim = rng.uniform(0, 1, (7, 6))
        rows = np.sort(rng.choice(7, rng.integers(1, 6), replace=False))
        cols = np.sort(rng.choice(6, rng.integers(1, 6), replace=False))
        matches, ur, uc = assign_subsets(sim, rows, cols, 0.6)
        want, wr, wc = linear_assignment(1.0 - sim[rows][:, cols], 0.6)
        assert matches.tolist() == [[rows[i], cols[j]] for i, j in want.tolist()]
        assert ur.tolist() == rows[wr].tolist() and uc.tolist() == cols[wc].tolist()
        sub = (1.0 - sim[rows][:, cols])
        lines = sub if len(rows) <= len(cols) else sub.T
        solver_path += len(set(lines.argmin(axis=1).tolist())) < len(lines)
    assert 30 < solver_path < 270                   # both paths were taken
    empty = assign_subsets(np.zeros((3, 2)), np.array([0, 2]), np.zeros(0, np.int64), 0.5)
    assert empty[0].shape == (0, 2) and empty[1].tolist() == [0, 2] and empty[2].size == 0


@pytest.mark.parametrize("min_common", [1, 3])
def test_track_similarities_equal_moved_keypoints_then_similarity_matrix(min_common):
    """The compiled loop gives the NumPy reference's numbers: IoU, poses moved to the prediction, OKS mix."""
    from aptrack.core.boxes import box_iou_xyxy
    from aptrack.track.matching import track_similarities
    from aptrack.track.tracker import moved_keypoints
    rng = np.random.default_rng(11)
    t, n, k = 5, 6, 7
    last, last_kp, last_sc, boxes, kp, sc = _random_scene(rng, t, n, k)
    pred = last + rng.normal(0, 4, last.shape)
    means = np.concatenate([(pred[:, :2] + pred[:, 2:]) / 2, rng.uniform(0.5, 2, (t, 1)),
                            rng.uniform(5, 60, (t, 1))], axis=1)
    sigmas = rng.uniform(0.02, 0.1, k)
    table = np.concatenate([last, last_kp.reshape(t, -1), last_sc], axis=1)   # the tracker's layout: views
    iou, mixed = track_similarities(pred, means, table[:, :4], boxes.astype(np.float32),
                                    table[:, 4:4 + 2 * k].reshape(t, k, 2), table[:, 4 + 2 * k:],
                                    kp.astype(np.float32), sc.astype(np.float32), sigmas,
                                    score_threshold=0.3, oks_weight=0.4, min_common=min_common)
    b32 = boxes.astype(np.float32).astype(np.float64)
    want_iou = box_iou_xyxy(pred, b32)
    moved = moved_keypoints(last_kp, last, means)
    want = similarity_matrix(pred, b32, moved, last_sc >= 0.3, kp.astype(np.float32), sc.astype(np.float32) >= 0.3,
                             sigmas, 0.4, min_common, iou=want_iou)
    np.testing.assert_allclose(iou, want_iou, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(mixed, want, rtol=1e-12, atol=1e-15)
    assert np.any(mixed != iou)                      # the pose term did something


def test_track_similarities_without_poses_are_iou_only():
    from aptrack.core.boxes import box_iou_xyxy
    from aptrack.track.matching import track_similarities
    rng = np.random.default_rng(2)
    last, last_kp, last_sc, boxes, kp, sc = _random_scene(rng, 3, 4, 2)
    for sigmas, weight in ((None, 0.5), ([0.1, 0.1], 0.0)):
        iou, mixed = track_similarities(last, np.zeros((3, 4)), last, boxes, last_kp, last_sc, kp, sc,
                                        sigmas=sigmas, oks_weight=weight)
        np.testing.assert_allclose(iou, box_iou_xyxy(last, boxes))
        np.testing.assert_array_equal(mixed, iou)
    iou, mixed = track_similarities(np.zeros((0, 4)), np.zeros((0, 4)), np.zeros((0, 4)), boxes,
                                    np.zeros((0, 2, 2)), np.zeros((0, 2)), kp, sc, sigmas=[0.1, 0.1])
    assert iou.shape == mixed.shape == (0, 4)


def test_per_keypoint_oks_is_the_same_formula_as_pose_oks():
    from aptrack.core.oks import keypoint_oks
    gt = np.array([[[0.0, 0.0]], [[10.0, 5.0]]])
    pred = np.array([[[3.0, 4.0]], [[0.0, 0.0]], [[10.0, 6.0]]])
    areas = np.array([100.0, 400.0])
    one = keypoint_oks(gt[:, 0], pred[:, 0], areas, 0.1)                       # (gt, pred)
    full = oks_matrix(pred, np.ones((3, 1), bool), gt, np.ones((2, 1), bool), areas, [0.1]).T
    np.testing.assert_allclose(one, full, rtol=0, atol=1e-15)
    assert one[0, 0] == pytest.approx(np.exp(-25 / (2 * 100 * 0.2 ** 2)))
