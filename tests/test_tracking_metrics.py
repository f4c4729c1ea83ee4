import numpy as np
import pytest

from aptrack.core.oks import keypoint_oks
from aptrack.eval.tracking import ClipTrackingEval, iou_distances, summarize

SIGMAS = np.full(2, 0.1)


def box(x):
    return [x, 0, x + 10, 10]


def _frame(ev, gt_ids, gt_x, pred_ids, pred_x):
    n, m = len(gt_ids), len(pred_ids)
    gt_boxes = np.array([box(x) for x in gt_x], float).reshape(-1, 4)
    gt_kp = np.zeros((n, 2, 2)) + np.array([[[5, 5], [6, 6]]]) + np.array(gt_x, float).reshape(-1, 1, 1) * [1, 0]
    pred_kp = np.zeros((m, 2, 2)) + np.array([[[5, 5], [6, 6]]]) + np.array(pred_x, float).reshape(-1, 1, 1) * [1, 0]
    ev.update(gt_ids, gt_boxes, gt_kp, np.ones((n, 2), bool), pred_ids,
              np.array([box(x) for x in pred_x], float).reshape(-1, 4), pred_kp, np.ones((m, 2)))


def test_scripted_tracks_give_the_hand_worked_mota_and_idf1():
    # two animals A (x=0) and B (x=100) over 4 frames.
    ev = ClipTrackingEval(SIGMAS)
    _frame(ev, [1, 2], [0, 100], [10, 20], [0, 100])   # both matched
    _frame(ev, [1, 2], [0, 100], [10, 30], [0, 100])   # B's id switches 20 -> 30
    _frame(ev, [1, 2], [0, 100], [10], [0])            # B missed
    _frame(ev, [1, 2], [0, 100], [10, 30, 40], [0, 100, 300])  # one false positive
    out = summarize([ev])["overall"]
    # 8 ground-truth boxes; FN 1, FP 1, ID switch 1 -> MOTA = 1 - 3 / 8
    assert out["objects"] == 8 and out["misses"] == 1 and out["false_positives"] == 1
    assert out["id_switches"] == 1
    assert out["MOTA"] == pytest.approx(1 - 3 / 8)
    # IDF1: best one-to-one id mapping 1<->10 (4 frames), 2<->30 (2 frames) -> IDTP 6,
    # predictions 8 (IDFP 2: the 20 frame and the false positive), truth 8 (IDFN 2) -> 12 / 16
    assert out["IDF1"] == pytest.approx(2 * 6 / (8 + 8))
    assert out["MOTP"] == pytest.approx(1.0)  # matched boxes are identical
    # keypoints follow their boxes, so the keypoint MOTA equals the box MOTA here
    assert out["keypoint_MOTA"] == pytest.approx(1 - 3 / 8)


def test_hota_of_a_hand_worked_id_switch():
    # one animal, four frames, perfectly localised; the tracker changes its id half-way.
    # DetA = 1; each true positive's association: 2 matched / (4 truth + 2 predicted - 2) = 0.5
    ev = ClipTrackingEval(SIGMAS)
    for pred_id in (7, 7, 8, 8):
        _frame(ev, [1], [0], [pred_id], [0])
    out = summarize([ev])["overall"]
    assert out["DetA"] == pytest.approx(1.0) and out["AssA"] == pytest.approx(0.5)
    assert out["HOTA"] == pytest.approx(np.sqrt(0.5))
    assert out["id_switches"] == 1


def test_distance_matrices_are_precomputed_with_nan_beyond_the_threshold():
    d = iou_distances([box(0)], [box(0), box(2), box(50)], max_distance=0.5)
    assert d[0, 0] == 0.0
    assert d[0, 1] == pytest.approx(1 - 80 / 120)  # IoU 80 / 120
    assert np.isnan(d[0, 2])
    oks = keypoint_oks([[0, 0]], [[0, 0], [3, 4]], area=[100.0], sigma=0.1)
    assert oks[0, 0] == 1.0
    assert oks[0, 1] == pytest.approx(np.exp(-25 / (2 * 100 * 0.04)))


def test_numpy2_safe_path_never_calls_asfarray(monkeypatch):
    # motmetrics' own distance helpers use np.asfarray, gone in NumPy 2; our path must not need it
    monkeypatch.delattr(np, "asfarray", raising=False)
    ev = ClipTrackingEval(SIGMAS)
    _frame(ev, [1], [0], [5], [0])
    assert summarize([ev])["overall"]["MOTA"] == 1.0


def test_per_clip_figures_are_reported():
    a, b = ClipTrackingEval(SIGMAS), ClipTrackingEval(SIGMAS)
    _frame(a, [1], [0], [5], [0])
    _frame(b, [1], [0], [], [])
    res = summarize([a, b], ["a", "b"])
    assert res["per_clip"]["a"]["MOTA"] == 1.0 and res["per_clip"]["b"]["MOTA"] == 0.0
    assert res["overall"]["MOTA"] == 0.5
    assert res["overall"]["MOTP"] == 1.0  # a clip with no match must not turn MOTP into NaN
