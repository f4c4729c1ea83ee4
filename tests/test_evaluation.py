import contextlib
import io
import json

import numpy as np
import pytest
from conftest import animalpose_subset

from aptrack.core.layout import load_layout
from aptrack.data.datasets import load_keypoint_dataset
from aptrack.eval.keypoints import evaluate_predictions, keypoint_ap, match_predictions, pck_epe, pose_results

AP10K = load_layout("ap10k")


def cocoeval_on_files(gt_path, results_path, sigmas):
    """pycocotools run directly on json files, as a user would."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        dt = gt.loadRes(str(results_path))
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


def _noisy_predictions(ds, noise_px, seed=0, drop=0):
    rng = np.random.default_rng(seed)
    kp = ds.keypoints + rng.normal(0, noise_px, ds.keypoints.shape) * ds.visible[..., None]
    scores = rng.uniform(0.3, 1.0, ds.visible.shape)
    keep = np.arange(len(ds))[drop:]
    return {"image_ids": ds.image_ids[keep], "boxes_xyxy": ds.boxes_xyxy[keep],
            "box_scores": np.ones(len(keep)), "keypoints": kp[keep], "keypoint_scores": scores[keep],
            "rows": keep}


def test_ap_equals_pycocotools_on_the_same_files(animalpose, tmp_path):
    ds = load_keypoint_dataset(animalpose_subset(tmp_path / "s.json", 25), animalpose / "images", AP10K)
    pred = _noisy_predictions(ds, noise_px=4.0, drop=3)
    metrics = evaluate_predictions(ds, pred)
    (tmp_path / "gt.json").write_text(json.dumps(metrics["gt"]))
    (tmp_path / "res.json").write_text(json.dumps(metrics["results"]))
    stats = cocoeval_on_files(tmp_path / "gt.json", tmp_path / "res.json", AP10K.sigmas)
    assert metrics["AP"] == pytest.approx(stats[0], abs=1e-12)
    assert metrics["AP50"] == pytest.approx(stats[1], abs=1e-12)
    assert metrics["AP75"] == pytest.approx(stats[2], abs=1e-12)
    assert metrics["AR"] == pytest.approx(stats[5], abs=1e-12)
    assert 0.2 < metrics["AP"] < 0.99  # noisy and incomplete, so neither 0 nor perfect
    assert set(metrics["per_category"]) <= {"dog", "cat", "sheep", "horse", "cow"}


def test_perfect_predictions_score_one_and_noise_lowers_ap(animalpose, tmp_path):
    ds = load_keypoint_dataset(animalpose_subset(tmp_path / "s.json", 10), animalpose / "images", AP10K)
    perfect = evaluate_predictions(ds, _noisy_predictions(ds, 0.0))
    noisy = evaluate_predictions(ds, _noisy_predictions(ds, 10.0))
    labelled = ds.num_labelled > 0
    assert perfect["AP"] == pytest.approx(1.0) and perfect["PCK@0.05"] == 1.0 and perfect["EPE"] == 0.0
    assert noisy["AP"] < perfect["AP"] and noisy["EPE"] > 5 and labelled.any()


def test_class_agnostic_matches_pycocotools_without_categories(ap10k_sample, tmp_path):
    ds = load_keypoint_dataset(ap10k_sample / "test_ap10k.json", ap10k_sample, AP10K)
    pred = _noisy_predictions(ds, 40.0, seed=2)  # the two animals are ~1000 px wide
    pred["rows"] = np.full(len(ds), -1)  # as from a detector
    metrics = evaluate_predictions(ds, pred, class_agnostic=True)
    (tmp_path / "gt.json").write_text(json.dumps(metrics["gt"]))
    (tmp_path / "res.json").write_text(json.dumps(metrics["results"]))
    saved = json.loads((tmp_path / "gt.json").read_text())
    assert {a["category_id"] for a in saved["annotations"]} == {1}  # one "animal" category
    stats = cocoeval_on_files(tmp_path / "gt.json", tmp_path / "res.json", AP10K.sigmas)
    assert metrics["AP"] == pytest.approx(stats[0], abs=1e-12)
    assert 0.1 < metrics["AP"] < 1.0
    assert metrics["class_agnostic"]
    # the per-species table gives each prediction the species of the animal it matches by OKS
    assert set(metrics["per_category"]) == set(ds.categories)
    assert all(0 < ap <= 1 for ap in metrics["per_category"].values())


def test_pck_and_epe_by_hand():
    gt = np.array([[[0, 0], [10, 0], [0, 0]]], float)
    vis = np.array([[True, True, False]])
    box = np.array([[0, 0, 100, 50]], float)  # longer side 100 -> PCK@0.05 radius 5 px
    pred = np.array([[[3, 4], [10, 6], [50, 50]]], float)  # errors 5 (hit), 6 (miss), unlabelled
    pck, epe = pck_epe(gt, vis, box, pred, 0.05)
    assert pck == 0.5 and epe == pytest.approx(5.5)
    missing = np.full_like(pred, np.nan)
    pck, epe = pck_epe(gt, vis, box, missing, 0.05)
    assert pck == 0.0 and np.isnan(epe)


def test_rescoring_uses_confident_keypoints_only():
    res = pose_results([7], [1], [[0, 0, 10, 20]], [0.5], np.zeros((1, 3, 2)),
                       np.array([[0.9, 0.7, 0.1]]), keypoint_score_threshold=0.2)
    assert res[0]["score"] == pytest.approx(0.5 * 0.8)
    assert res[0]["bbox"] == [0, 0, 10, 20] and len(res[0]["keypoints"]) == 9


def test_predictions_pair_with_animals_by_oks(ap10k_sample):
    ds = load_keypoint_dataset(ap10k_sample / "test_ap10k.json", ap10k_sample, AP10K)
    order = np.arange(len(ds))[::-1]  # predictions in reverse order, plus one stray
    kp = np.concatenate([ds.keypoints[order], np.full((1, 17, 2), 5000.0)])
    ids = np.concatenate([ds.image_ids[order], ds.image_ids[:1]])
    paired = match_predictions(ds, ids, kp)
    np.testing.assert_allclose(paired[ds.visible], ds.keypoints[ds.visible])


def test_class_agnostic_ap_is_not_silently_zero(ap10k_sample):
    # pycocotools' computeOks ignores useCats = 0; keypoint_ap must still score class-agnostically
    ds = load_keypoint_dataset(ap10k_sample / "test_ap10k.json", ap10k_sample, AP10K)
    pred = _noisy_predictions(ds, 0.0)
    res = pose_results(pred["image_ids"], np.full(len(ds), 99), pred["boxes_xyxy"], pred["box_scores"],
                       pred["keypoints"], np.ones(ds.visible.shape))
    assert keypoint_ap(ds.to_coco(), res, AP10K.sigmas, use_categories=False)["AP"] == pytest.approx(1.0)


def test_empty_results_give_zero_ap():
    gt = {"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 1, "name": "a"}],
          "annotations": []}
    assert keypoint_ap(gt, [], AP10K.sigmas)["AP"] == 0.0


def test_a_detection_on_a_frame_where_no_animal_is_annotated_is_a_false_positive(ap10k_sample):
    # the occlusion case has frames where both animals are hidden: results there must score, not crash
    ds = load_keypoint_dataset(ap10k_sample / "test_ap10k.json", ap10k_sample, AP10K)
    perfect = _noisy_predictions(ds, 0.0)
    assert evaluate_predictions(ds, perfect)["AP"] == pytest.approx(1.0)
    stray_image = int(ds.image_ids.max()) + 1000
    extra = {key: np.concatenate([value, value[:1]]) for key, value in perfect.items()}
    extra["image_ids"][-1] = stray_image
    extra["rows"][-1] = -1
    extra["box_scores"] = np.concatenate([np.ones(len(ds)) * 0.5, [0.99]])  # the stray one ranks first
    metrics = evaluate_predictions(ds, extra)
    assert 0.5 < metrics["AP"] < 1.0


def test_predictions_of_known_species_are_scored_per_species_without_a_row(ap10k_sample):
    # an animal carried from its first-frame box (bench --boxes gt-first-frame) keeps its species in frames
    # where it is not annotated: the evaluation stays per species, as with ground-truth rows
    ds = load_keypoint_dataset(ap10k_sample / "test_ap10k.json", ap10k_sample, AP10K)
    with_rows = _noisy_predictions(ds, 40.0, seed=2)
    by_species = dict(with_rows, rows=np.full(len(ds), -1), categories=ds.categories.astype(object))
    own = evaluate_predictions(ds, by_species)
    assert not own["class_agnostic"]
    assert own["AP"] == pytest.approx(evaluate_predictions(ds, with_rows)["AP"], abs=1e-12)
    # a species the ground truth does not name (a detector's "animal") is unknown: class-agnostic as before
    unnamed = evaluate_predictions(ds, dict(by_species, categories=np.full(len(ds), "animal", dtype=object)))
    agnostic = evaluate_predictions(ds, dict(with_rows, rows=np.full(len(ds), -1)))
    assert unnamed["class_agnostic"] and agnostic["class_agnostic"]
    assert unnamed["AP"] == pytest.approx(agnostic["AP"], abs=1e-12)
    assert abs(own["AP"] - agnostic["AP"]) > 1e-3  # two species (jaguar, antelope): the modes differ here
