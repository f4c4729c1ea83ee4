import numpy as np
import pytest

from aptrack.eval.bootstrap import _drawn_coco, clip_bootstrap, paired_interval, tracking_figures
from aptrack.eval.tracking import ClipTrackingEval, clip_counts, summarize

SIGMAS = np.array([0.1, 0.1])
CATEGORIES = [{"id": 1, "name": "dog", "keypoints": ["a", "b"], "skeleton": []}]


def _annotation(ann_id, image_id, xy):
    (x1, y1), (x2, y2) = xy
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0, "num_keypoints": 2,
            "keypoints": [x1, y1, 2, x2, y2, 2], "bbox": [0, 0, 100, 100], "area": 10000.0}


def _result(image_id, xy, score):
    (x1, y1), (x2, y2) = xy
    return {"image_id": image_id, "category_id": 1, "keypoints": [x1, y1, 1, x2, y2, 1], "score": score}


def _clips(offsets):
    """One image and one animal per clip; clip c's prediction is ``offsets[c]`` px off the truth."""
    truth = ((20.0, 30.0), (60.0, 70.0))
    gt = {"images": [{"id": c + 1, "width": 100, "height": 100} for c in range(len(offsets))],
          "annotations": [_annotation(c + 1, c + 1, truth) for c in range(len(offsets))],
          "categories": CATEGORIES}
    results = [_result(c + 1, [(x + d, y) for x, y in truth], 0.9 - 0.1 * c) for c, d in enumerate(offsets)]
    return gt, results, [np.array([c + 1]) for c in range(len(offsets))]


PERFECT_COUNTS = [10, 0, 0, 0, 0, 0, 10]  # IDTP, IDFP, IDFN, misses, FP, switches, objects


def test_tracking_figures_by_hand():
    # the scripted clip of test_tracking_metrics: IDTP 6, IDFP 2, IDFN 2, FN 1, FP 1, one switch, 8 objects
    idf1, mota = tracking_figures([6, 2, 2, 1, 1, 1, 8])
    assert idf1 == pytest.approx(12 / 16) and mota == pytest.approx(1 - 3 / 8)
    assert all(np.isnan(tracking_figures([0] * 7)))


def test_clip_counts_give_summarize_s_idf1_and_mota():
    ev = ClipTrackingEval(SIGMAS)

    def frame(gt_ids, gt_x, pred_ids, pred_x):
        boxes = lambda xs: np.array([[x, 0, x + 10, 10] for x in xs], float).reshape(-1, 4)  # noqa: E731
        kp = lambda xs: np.zeros((len(xs), 2, 2)) + np.array(xs, float).reshape(-1, 1, 1)  # noqa: E731
        ev.update(gt_ids, boxes(gt_x), kp(gt_x), np.ones((len(gt_ids), 2), bool), pred_ids, boxes(pred_x),
                  kp(pred_x), np.ones((len(pred_ids), 2)))

    frame([1, 2], [0, 100], [10, 20], [0, 100])
    frame([1, 2], [0, 100], [10, 30], [0, 100])  # a switch
    frame([1, 2], [0, 100], [10], [0])  # a miss
    frame([1, 2], [0, 100], [10, 30, 40], [0, 100, 300])  # a false positive
    counts = clip_counts([ev])
    assert counts.tolist() == [[6, 2, 2, 1, 1, 1, 8]]
    overall = summarize([ev])["overall"]
    assert tracking_figures(counts.sum(axis=0)) == pytest.approx((overall["IDF1"], overall["MOTA"]))


def test_a_clip_drawn_twice_counts_twice_under_new_ids():
    gt, results, images = _clips([0.0, 40.0])
    draw_gt, draw_results = _drawn_coco(gt, results, images, np.array([1, 1]))
    assert len({im["id"] for im in draw_gt["images"]}) == 2
    assert len({a["id"] for a in draw_gt["annotations"]}) == 2
    assert sorted(r["image_id"] for r in draw_results) == sorted(im["id"] for im in draw_gt["images"])
    assert all(r["keypoints"][0] == 60.0 for r in draw_results)  # both copies are clip 1's (40 px off)
    assert len(gt["images"]) == 2 and gt["images"][0]["id"] == 1  # the input is left as it was


def test_identical_clips_give_a_one_point_interval():
    gt, results, images = _clips([0.0, 0.0, 0.0])
    out = clip_bootstrap(gt, results, images, [PERFECT_COUNTS] * 3, SIGMAS, draws=20)
    assert out["AP"] == pytest.approx((1.0, 1.0))
    assert out["IDF1"] == pytest.approx((1.0, 1.0)) and out["MOTA"] == pytest.approx((1.0, 1.0))
    assert len(out["samples"]["AP"]) == 20 and out["draws"] == 20 and out["level"] == 0.95


def test_the_interval_spans_good_and_bad_clips_and_is_seeded():
    gt, results, images = _clips([0.0, 40.0, 0.0, 40.0])  # two clips perfect, two with every keypoint missed
    counts = [PERFECT_COUNTS, [0, 10, 10, 10, 10, 0, 10]] * 2
    out = clip_bootstrap(gt, results, images, counts, SIGMAS, draws=200, seed=3)
    low, high = out["AP"]
    assert low < 0.5 < high <= 1.0
    assert out["IDF1"][0] < 0.5 < out["IDF1"][1]
    again = clip_bootstrap(gt, results, images, counts, SIGMAS, draws=200, seed=3)
    assert again["samples"] == out["samples"]


def test_paired_draws_cancel_what_both_runs_share():
    a = np.array([0.30, 0.45, 0.38, 0.52])
    assert paired_interval(a, a - 0.02) == pytest.approx((0.02, 0.02))  # each run's own spread is 0.2
    with pytest.raises(ValueError, match="same N"):
        paired_interval(a, a[:3])


def test_draws_and_level_are_checked():
    gt, results, images = _clips([0.0])
    with pytest.raises(ValueError, match="draws"):
        clip_bootstrap(gt, results, images, [PERFECT_COUNTS], SIGMAS, draws=0)
    with pytest.raises(ValueError, match="level"):
        clip_bootstrap(gt, results, images, [PERFECT_COUNTS], SIGMAS, draws=5, level=1.0)
