"""Keypoint accuracy: COCO keypoint AP/AR with OKS (pycocotools), PCK and EPE.

``keypoint_ap`` is a thin, quiet wrapper around pycocotools' ``COCOeval`` with
the layout's OKS sigmas, so its numbers are pycocotools' numbers. PCK and EPE
are computed on ground-truth/prediction pairs:

* PCK@t: the fraction of labelled keypoints whose prediction lies within
  ``t * max(box width, box height)`` of the truth (the ground-truth box);
* EPE: the mean distance in pixels between prediction and truth over labelled
  keypoints.

With ground-truth boxes every animal has its own prediction. With detector
boxes, predictions are paired with animals per image by the Hungarian method
on OKS; an animal left without a prediction counts as wrong for PCK and is left
out of EPE.
"""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np

from aptrack.core.boxes import box_area_xyxy, xyxy_to_xywh
from aptrack.core.oks import oks_matrix
from aptrack.data.datasets import KeypointDataset
from aptrack.track.matching import linear_assignment

log = logging.getLogger(__name__)

STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


def _quiet(fn, *args, **kwargs):
    """Call a pycocotools function with its prints swallowed (library code logs, never prints)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def _coco(dataset: dict):
    from pycocotools.coco import COCO
    coco = COCO()
    coco.dataset = dataset
    _quiet(coco.createIndex)
    return coco


def single_category(gt: dict, results: list[dict]) -> tuple[dict, list[dict]]:
    """Copies of ``gt`` and ``results`` with every animal in one category (id 1).

    This is how class-agnostic keypoint AP is computed: pycocotools' OKS
    (``computeOks``) looks detections up by category even with ``useCats = 0``,
    so that switch would silently score nothing.
    """
    cats = gt.get("categories") or [{}]
    one = {"id": 1, "name": "animal", "supercategory": "animal",
           "keypoints": cats[0].get("keypoints", []), "skeleton": cats[0].get("skeleton", [])}
    gt = dict(gt, annotations=[dict(a, category_id=1) for a in gt["annotations"]], categories=[one])
    return gt, [dict(r, category_id=1) for r in results]


def keypoint_ap(gt: dict, results: list[dict], sigmas, use_categories: bool = True,
                category_ids=None) -> dict:
    """COCO keypoint AP/AR through pycocotools.

    Parameters
    ----------
    gt : dict, standard COCO keypoint ground truth
    results : list of dict, COCO results (``image_id``, ``category_id``,
        ``keypoints`` flat ``[x, y, s] * K``, ``score``)
    sigmas : (K,) OKS constants of the layout
    use_categories : bool
        False evaluates class-agnostically (every animal in one category; see
        :func:`single_category`).
    category_ids : optional list restricting the evaluation to these ids

    Returns
    -------
    dict with the ten COCO keypoint statistics (``AP``, ``AP50``, ``AP75``,
    ``APm``, ``APl``, ``AR``, ...); -1 where pycocotools has no data.
    """
    from pycocotools.cocoeval import COCOeval
    if not results:
        return {name: 0.0 for name in STAT_NAMES}
    if not use_categories:
        gt, results = single_category(gt, results)
    coco_gt = _coco(gt)
    coco_dt = _quiet(coco_gt.loadRes, list(results))
    ev = COCOeval(coco_gt, coco_dt, "keypoints")
    ev.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
    if category_ids is not None:
        ev.params.catIds = list(category_ids)
    _quiet(ev.evaluate)
    _quiet(ev.accumulate)
    _quiet(ev.summarize)
    return {name: float(v) for name, v in zip(STAT_NAMES, ev.stats)}


def pose_results(image_ids, category_ids, boxes_xyxy, box_scores, keypoints, keypoint_scores,
                 keypoint_score_threshold: float = 0.2) -> list[dict]:
    """COCO results records; each score is the box score times the mean of the
    keypoint scores above ``keypoint_score_threshold`` (mmpose's rescoring).

    Parameters
    ----------
    image_ids, category_ids : (N,) int
    boxes_xyxy : (N, 4) pixels
    box_scores : (N,)
    keypoints : (N, K, 2) pixels
    keypoint_scores : (N, K) in [0, 1]
    """
    out = []
    xywh = xyxy_to_xywh(np.asarray(boxes_xyxy, np.float64).reshape(-1, 4))
    for i in range(len(xywh)):
        ks = np.asarray(keypoint_scores[i], np.float64)
        good = ks > keypoint_score_threshold
        kp_score = float(ks[good].mean()) if good.any() else 0.0
        flat = np.concatenate([np.asarray(keypoints[i], np.float64), ks[:, None]], axis=1).reshape(-1)
        out.append({"image_id": int(image_ids[i]), "category_id": int(category_ids[i]),
                    "bbox": [round(float(v), 2) for v in xywh[i]],
                    "keypoints": [round(float(v), 3) for v in flat],
                    "score": round(float(box_scores[i]) * kp_score, 5)})
    return out


def pck_epe(gt_keypoints, gt_visible, gt_boxes_xyxy, pred_keypoints, threshold: float = 0.05):
    """PCK at ``threshold`` of the longer box side, and EPE in pixels.

    Parameters
    ----------
    gt_keypoints : (N, K, 2)
    gt_visible : (N, K) bool
    gt_boxes_xyxy : (N, 4)
    pred_keypoints : (N, K, 2); rows of NaN mean "no prediction" (wrong for
        PCK, left out of EPE)

    Returns
    -------
    pck : float in [0, 1] (nan if nothing is labelled)
    epe : float, pixels (nan if nothing is labelled and predicted)
    """
    gt = np.asarray(gt_keypoints, np.float64)
    vis = np.asarray(gt_visible, bool)
    boxes = np.asarray(gt_boxes_xyxy, np.float64).reshape(-1, 4)
    pred = np.asarray(pred_keypoints, np.float64)
    dist = np.linalg.norm(pred - gt, axis=-1)  # (N, K), nan where no prediction
    size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    if not vis.any():
        return float("nan"), float("nan")
    hit = np.where(np.isnan(dist), False, dist <= threshold * size[:, None])
    pck = float(hit[vis].mean())
    measured = vis & ~np.isnan(dist)
    epe = float(dist[measured].mean()) if measured.any() else float("nan")
    return pck, epe


def oks_to_animals(dataset: KeypointDataset, rows: np.ndarray, pred_keypoints: np.ndarray) -> np.ndarray:
    """OKS of predictions ``(P, K, 2)`` against the animals ``rows`` of one image
    (their box areas, layout sigmas); (P, len(rows)) float64, 0 where no keypoint is shared."""
    areas = box_area_xyxy(dataset.boxes_xyxy[rows])
    sim = oks_matrix(pred_keypoints, np.ones(pred_keypoints.shape[:2], bool), dataset.keypoints[rows],
                     dataset.visible[rows], areas, np.asarray(dataset.layout.sigmas))
    return np.nan_to_num(sim, nan=0.0)


def match_predictions(dataset: KeypointDataset, pred_image_ids, pred_keypoints):
    """For each annotated animal, the keypoints of the prediction paired with it.

    Pairs are found per image by the Hungarian method on OKS (layout sigmas).

    Returns
    -------
    (N, K, 2) float64, NaN rows for animals with no prediction.
    """
    out = np.full(dataset.keypoints.shape, np.nan)
    pred_ids = np.asarray(pred_image_ids)
    pred_kp = np.asarray(pred_keypoints, np.float64)
    for iid in np.unique(dataset.image_ids):
        rows = np.flatnonzero(dataset.image_ids == iid)
        cand = np.flatnonzero(pred_ids == iid)
        if not len(cand):
            continue
        sim = oks_to_animals(dataset, rows, pred_kp[cand])  # (predictions, animals)
        matches, _, _ = linear_assignment(1.0 - sim, 1.0 - 1e-9)
        for p, g in matches:
            out[rows[g]] = pred_kp[cand[p]]
    return out


class PredictionLog:
    """Collects per-image predictions into the arrays :func:`evaluate_predictions` takes.

    Parameters
    ----------
    num_keypoints : int, K of the layout; instances without keypoints (pose
        off) are logged with zero keypoints of score 0.
    """

    KEYS = ("image_ids", "boxes_xyxy", "box_scores", "keypoints", "keypoint_scores", "rows", "categories")

    def __init__(self, num_keypoints: int):
        self.k = num_keypoints
        self.parts: dict[str, list] = {key: [] for key in self.KEYS}

    def add(self, image_id: int, instances, rows, known_species: bool = False) -> None:
        """Log ``instances`` of one image; ``rows`` (N,) are their ground-truth rows or -1.

        With ``known_species`` each instance's ``categories`` entry is its species
        as given with it (e.g. carried from a first-frame ground-truth box), which
        :func:`evaluate_predictions` uses for instances without a row; otherwise
        they are logged as unknown ("")."""
        n = len(instances)
        kp, ks = keypoints_or_zeros(instances, self.k)
        species = (np.asarray(instances.categories, dtype=object) if known_species
                   else np.full(n, "", dtype=object))
        for key, value in zip(self.KEYS, (np.full(n, image_id), instances.boxes_xyxy, instances.scores,
                                          kp, ks, np.asarray(rows, np.int64).reshape(n), species)):
            self.parts[key].append(value)

    def arrays(self) -> dict:
        empty = {"image_ids": np.zeros(0), "boxes_xyxy": np.zeros((0, 4)), "box_scores": np.zeros(0),
                 "keypoints": np.zeros((0, self.k, 2)), "keypoint_scores": np.zeros((0, self.k)),
                 "rows": np.zeros(0), "categories": np.zeros(0, dtype=object)}
        return {key: np.concatenate(v) if v else empty[key] for key, v in self.parts.items()}


def keypoints_or_zeros(instances, k: int):
    """Keypoints and scores of ``instances``, or zeros (score 0) when they carry no K-keypoint pose."""
    if instances.keypoints.shape[1] == k:
        return instances.keypoints, instances.keypoint_scores
    return np.zeros((len(instances), k, 2)), np.zeros((len(instances), k))


def predict_dataset(estimator, dataset: KeypointDataset, detector=None, image_cache=None,
                    progress=None):
    """Run the pose estimator over every image of ``dataset``.

    Parameters
    ----------
    estimator : TopDownPoseEstimator
    dataset : KeypointDataset
    detector : callable ``frame -> Instances`` or None for ground-truth boxes
    image_cache : optional dict path -> image, filled as images are read
    progress : optional callable(n_images_done) for a progress bar

    Returns
    -------
    dict of arrays, one row per prediction: ``image_ids`` (P,), ``boxes_xyxy``
    (P, 4), ``box_scores`` (P,), ``keypoints`` (P, K, 2), ``keypoint_scores``
    (P, K), ``rows`` (P,) the dataset row of a ground-truth box (-1 for
    detector boxes), ``categories`` (P,) object, all "" (the species is the
    box's row's, or unknown).
    """
    from aptrack.core.instances import Instances
    from aptrack.io.images import load_image

    log_ = PredictionLog(dataset.layout.num_keypoints)
    for done, iid in enumerate(np.unique(dataset.image_ids), 1):
        rows = np.flatnonzero(dataset.image_ids == iid)
        path = dataset.files[rows[0]]
        image = image_cache.get(path) if image_cache is not None else None
        if image is None:
            image = load_image(path)
            if image_cache is not None:
                image_cache[path] = image
        if detector is None:
            inst = Instances(dataset.boxes_xyxy[rows], np.ones(len(rows), np.float32))
            pred_rows = rows
        else:
            inst = detector(image)
            pred_rows = np.full(len(inst), -1)
        if len(inst):
            log_.add(iid, estimator(image, inst), pred_rows)
        if progress is not None:
            progress(done)
    return log_.arrays()


def assign_categories(dataset: KeypointDataset, pred: dict) -> np.ndarray:
    """Species of the best-OKS annotated animal in the same image, per prediction
    ("" when it overlaps none), for per-species AP with detector boxes."""
    out = np.full(len(pred["image_ids"]), "", dtype=object)
    for iid in np.unique(pred["image_ids"]):
        p = np.flatnonzero(pred["image_ids"] == iid)
        g = np.flatnonzero(dataset.image_ids == iid)
        if not len(g):
            continue
        sim = oks_to_animals(dataset, g, np.asarray(pred["keypoints"][p], np.float64))
        best = sim.argmax(axis=1)
        for j, (b, s) in enumerate(zip(best, sim.max(axis=1))):
            if s > 0:
                out[p[j]] = dataset.categories[g[b]]
    return out


def evaluate_predictions(dataset: KeypointDataset, pred: dict, class_agnostic: bool = False,
                         pck_threshold: float = 0.05) -> dict:
    """All keypoint metrics of ``pred`` (from :func:`predict_dataset`) against ``dataset``.

    With ground-truth boxes (``pred["rows"] >= 0``) each prediction takes the
    species of its box; one without a row takes its own known species
    (``pred["categories"]``, e.g. an animal carried from its first-frame box:
    ``--boxes gt-first-frame`` is scored per species like ``--boxes gt``).
    When some prediction has neither (detector boxes, rows of -1) AP is
    class-agnostic, and for the per-species table each prediction takes the
    species of the animal it overlaps best by OKS (:func:`assign_categories`).
    ``class_agnostic`` forces one class for the headline AP.

    Returns
    -------
    dict with ``AP``, ``AP50``, ``AP75``, ``APm``, ``APl``, ``AR`` ... (pycocotools),
    ``PCK@0.05`` (key named after the threshold), ``EPE`` (pixels),
    ``per_category`` {species: AP}, ``instances``, ``images``, ``predictions``,
    plus ``gt`` and ``results`` (the COCO dicts that were scored).
    """
    gt = dataset.to_coco()
    # frames scored with no animal annotated (all hidden) are images too: what is found there is a false positive
    known = {im["id"] for im in gt["images"]}
    empty = sorted({int(i) for i in np.asarray(pred["image_ids"]).tolist()} - known)
    gt["images"] = gt["images"] + [{"id": i, "file_name": ""} for i in empty]
    cat_id = {c["name"]: c["id"] for c in gt["categories"]}
    rows = np.asarray(pred["rows"], np.int64)
    own_boxes = (rows >= 0).all() and len(np.unique(rows)) == len(rows)
    species = np.asarray(pred.get("categories", np.full(len(rows), "", dtype=object)), dtype=object)
    species = np.where(np.isin(species, list(cat_id)), species, "")  # one the ground truth does not name: unknown
    species[rows >= 0] = dataset.categories[rows[rows >= 0]]
    if (species != "").all():
        names = species
    else:
        class_agnostic = True
        names = assign_categories(dataset, pred)
    if own_boxes and len(rows) == len(dataset):
        paired = np.full(dataset.keypoints.shape, np.nan)
        paired[rows] = pred["keypoints"]
    else:
        paired = match_predictions(dataset, pred["image_ids"], pred["keypoints"])
    cats = np.array([cat_id.get(n, 0) for n in names], np.int64)
    results = pose_results(pred["image_ids"], cats, pred["boxes_xyxy"], pred["box_scores"],
                           pred["keypoints"], pred["keypoint_scores"])
    per_category = {}
    for name, cid in sorted(cat_id.items()):
        per_category[name] = keypoint_ap(gt, results, dataset.layout.sigmas, category_ids=[cid])["AP"]
    if class_agnostic:
        gt, results = single_category(gt, results)
    metrics = keypoint_ap(gt, results, dataset.layout.sigmas)
    pck, epe = pck_epe(dataset.keypoints, dataset.visible, dataset.boxes_xyxy, paired, pck_threshold)
    metrics.update({f"PCK@{pck_threshold:g}": pck, "EPE": epe, "per_category": per_category,
                    "instances": len(dataset), "images": int(len(np.unique(dataset.image_ids))),
                    "predictions": len(results), "class_agnostic": class_agnostic,
                    "gt": gt, "results": results})
    return metrics
