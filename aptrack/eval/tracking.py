"""Tracking metrics: CLEAR-MOT and identity metrics through motmetrics, HOTA
through trackeval, and a keypoint-level MOTA in the PoseTrack style.

motmetrics 1.4.0 calls ``np.asfarray`` (removed in NumPy 2) inside its own
distance helpers, so this module never uses them: it computes every distance
matrix itself (``1 - IoU`` for boxes, ``1 - OKS`` per keypoint) and hands
motmetrics only those matrices, with NaN for pairs that may not match.

HOTA comes from trackeval (the reference implementation by HOTA's authors; the
PyPI release 1.3 runs on NumPy 2), fed per-frame id lists and IoU matrices.
"""

from __future__ import annotations

import logging

import numpy as np

from aptrack.core.boxes import box_area_xyxy, box_iou_xyxy
from aptrack.core.oks import keypoint_oks

log = logging.getLogger(__name__)

MOT_METRICS = ("mota", "motp", "idf1", "num_switches", "num_false_positives", "num_misses",
               "num_objects", "num_unique_objects", "mostly_tracked", "mostly_lost")


def iou_distances(gt_boxes_xyxy, pred_boxes_xyxy, max_distance: float = 0.5) -> np.ndarray:
    """``1 - IoU`` between ground truth (rows) and predictions (columns); NaN above ``max_distance``.

    Parameters
    ----------
    gt_boxes_xyxy : (N, 4) pixels
    pred_boxes_xyxy : (M, 4) pixels
    max_distance : float, 0.5 means a match needs IoU >= 0.5 (MOTChallenge's rule)

    Returns
    -------
    (N, M) float64
    """
    d = 1.0 - box_iou_xyxy(np.asarray(gt_boxes_xyxy, np.float64).reshape(-1, 4),
                           np.asarray(pred_boxes_xyxy, np.float64).reshape(-1, 4))
    d[d > max_distance] = np.nan
    return d


class ClipTrackingEval:
    """Accumulates one clip's frames for box-level and keypoint-level MOT metrics.

    Parameters
    ----------
    sigmas : (K,) OKS constants of the layout
    iou_threshold : a box match needs at least this IoU
    oks_threshold : a keypoint match needs at least this per-keypoint OKS
    keypoint_score_threshold : predicted keypoints below this score are not hypotheses
    """

    def __init__(self, sigmas, iou_threshold: float = 0.5, oks_threshold: float = 0.5,
                 keypoint_score_threshold: float = 0.3):
        import motmetrics as mm

        self.sigmas = np.asarray(sigmas, np.float64)
        self.iou_threshold = iou_threshold
        self.oks_threshold = oks_threshold
        self.keypoint_score_threshold = keypoint_score_threshold
        self.boxes = mm.MOTAccumulator(auto_id=True)
        self.keypoints = [mm.MOTAccumulator(auto_id=True) for _ in self.sigmas]
        self.frames: list[tuple[list[int], list[int], np.ndarray]] = []  # for HOTA

    def update(self, gt_ids, gt_boxes_xyxy, gt_keypoints, gt_visible,
               pred_ids, pred_boxes_xyxy, pred_keypoints=None, pred_keypoint_scores=None) -> None:
        """Add one frame.

        Parameters
        ----------
        gt_ids : (N,) int, gt_boxes_xyxy : (N, 4), gt_keypoints : (N, K, 2), gt_visible : (N, K) bool
        pred_ids : (M,) int, pred_boxes_xyxy : (M, 4)
        pred_keypoints : (M, K, 2) or None; pred_keypoint_scores : (M, K) or None
        """
        gt_ids = [int(i) for i in gt_ids]
        pred_ids = [int(i) for i in pred_ids]
        self.boxes.update(gt_ids, pred_ids,
                          iou_distances(gt_boxes_xyxy, pred_boxes_xyxy, 1.0 - self.iou_threshold))
        self.frames.append((gt_ids, pred_ids, box_iou_xyxy(np.asarray(gt_boxes_xyxy, np.float64).reshape(-1, 4),
                                                           np.asarray(pred_boxes_xyxy, np.float64).reshape(-1, 4))))
        gt_boxes = np.asarray(gt_boxes_xyxy, np.float64).reshape(-1, 4)
        area = box_area_xyxy(gt_boxes)
        gt_kp = np.asarray(gt_keypoints, np.float64).reshape(len(gt_ids), len(self.sigmas), 2)
        gt_vis = np.asarray(gt_visible, bool).reshape(len(gt_ids), len(self.sigmas))
        if pred_keypoints is None or len(pred_ids) == 0:
            pred_kp = np.zeros((len(pred_ids), len(self.sigmas), 2))
            pred_ok = np.zeros((len(pred_ids), len(self.sigmas)), bool)
        else:
            pred_kp = np.asarray(pred_keypoints, np.float64)
            pred_ok = np.asarray(pred_keypoint_scores) >= self.keypoint_score_threshold
        for k, acc in enumerate(self.keypoints):
            g = np.flatnonzero(gt_vis[:, k])
            p = np.flatnonzero(pred_ok[:, k])
            dist = 1.0 - keypoint_oks(gt_kp[g, k], pred_kp[p, k], area[g], self.sigmas[k])
            dist[dist > 1.0 - self.oks_threshold] = np.nan
            acc.update([gt_ids[i] for i in g], [pred_ids[i] for i in p], dist)


def hota_data(frames) -> dict:
    """trackeval's per-sequence input from ``(gt_ids, pred_ids, iou)`` per frame (ids renumbered 0..n-1)."""
    gt_map, pr_map = {}, {}
    for g, p, _ in frames:
        for i in g:
            gt_map.setdefault(i, len(gt_map))
        for i in p:
            pr_map.setdefault(i, len(pr_map))
    return {"num_gt_ids": len(gt_map), "num_tracker_ids": len(pr_map),
            "num_gt_dets": sum(len(g) for g, _, _ in frames),
            "num_tracker_dets": sum(len(p) for _, p, _ in frames),
            "gt_ids": [np.array([gt_map[i] for i in g], int) for g, _, _ in frames],
            "tracker_ids": [np.array([pr_map[i] for i in p], int) for _, p, _ in frames],
            "similarity_scores": [iou for _, _, iou in frames]}


def hota(clips: list["ClipTrackingEval"], names: list[str]) -> dict:
    """HOTA, DetA and AssA (averaged over localisation thresholds 0.05..0.95), overall and per clip."""
    from trackeval.metrics import HOTA

    metric = HOTA()
    per_clip = {name: metric.eval_sequence(hota_data(c.frames)) for name, c in zip(names, clips)}
    overall = metric.combine_sequences(per_clip)

    def pick(res):
        return {key: float(np.mean(res[key])) for key in ("HOTA", "DetA", "AssA")}

    return {"overall": pick(overall), "per_clip": {name: pick(r) for name, r in per_clip.items()}}


def mean_matched_iou(accumulators) -> float:
    """MOTP as the mean IoU of matched pairs over every clip (NaN without matches).

    Computed from the accumulators' events rather than motmetrics' OVERALL
    ``motp``, which turns NaN as soon as one clip has no match at all.
    """
    distances = []
    for acc in accumulators:
        ev = acc.mot_events
        distances.append(ev.loc[ev["Type"].isin(["MATCH", "SWITCH"]), "D"].to_numpy(np.float64))
    d = np.concatenate(distances) if distances else np.zeros(0)
    return float(1.0 - d.mean()) if len(d) else float("nan")


def clip_counts(clips: list[ClipTrackingEval]) -> np.ndarray:
    """Each clip's tracking counts (C, 7) int64: IDTP, IDFP, IDFN, misses, false positives, ID switches and
    objects (:data:`aptrack.eval.bootstrap.COUNT_KEYS`), from which IDF1 and MOTA of any set of clips follow."""
    import motmetrics as mm

    if not clips:
        return np.zeros((0, 7), np.int64)
    names = [str(i) for i in range(len(clips))]
    keys = ["idtp", "idfp", "idfn", "num_misses", "num_false_positives", "num_switches", "num_objects"]
    table = mm.metrics.create().compute_many([c.boxes for c in clips], metrics=keys, names=names)
    return table.loc[names, keys].to_numpy(np.float64).round().astype(np.int64)


def summarize(clips: list[ClipTrackingEval], names: list[str] | None = None) -> dict:
    """MOT metrics over all clips, and per clip.

    Returns
    -------
    dict with ``overall`` {MOTA, MOTP (mean IoU of matched pairs; motmetrics'
    own ``motp`` is the mean distance ``1 - IoU``), IDF1, id_switches, false_positives, misses,
    objects, tracks, mostly_tracked, mostly_lost, HOTA, DetA, AssA, keypoint_MOTA,
    keypoint_MOTA_per_keypoint}
    and ``per_clip`` {name: {MOTA, IDF1, id_switches}}.
    """
    import motmetrics as mm

    mh = mm.metrics.create()
    names = names or [str(i) for i in range(len(clips))]
    if not clips:
        return {"overall": {}, "per_clip": {}}
    box = mh.compute_many([c.boxes for c in clips], metrics=list(MOT_METRICS), names=names,
                          generate_overall=True)
    overall = box.loc["OVERALL"]
    per_kp = []
    for k in range(len(clips[0].sigmas)):
        accs = [c.keypoints[k] for c in clips]
        s = mh.compute_many(accs, metrics=["mota", "num_objects"], names=names, generate_overall=True)
        row = s.loc["OVERALL"]
        per_kp.append(float(row["mota"]) if row["num_objects"] > 0 else float("nan"))
    valid = [m for m in per_kp if np.isfinite(m)]

    def f(x):
        x = float(x)
        return x if np.isfinite(x) else float("nan")

    hota_scores = hota(clips, names)
    result = {
        **hota_scores["overall"],
        "MOTA": f(overall["mota"]), "MOTP": mean_matched_iou([c.boxes for c in clips]),
        "IDF1": f(overall["idf1"]), "id_switches": int(overall["num_switches"]),
        "false_positives": int(overall["num_false_positives"]), "misses": int(overall["num_misses"]),
        "objects": int(overall["num_objects"]), "tracks": int(overall["num_unique_objects"]),
        "mostly_tracked": int(overall["mostly_tracked"]), "mostly_lost": int(overall["mostly_lost"]),
        "keypoint_MOTA": float(np.mean(valid)) if valid else float("nan"),
        "keypoint_MOTA_per_keypoint": per_kp,
    }
    per_clip = {name: {"MOTA": f(box.loc[name]["mota"]), "IDF1": f(box.loc[name]["idf1"]),
                       "id_switches": int(box.loc[name]["num_switches"]),
                       "HOTA": hota_scores["per_clip"][name]["HOTA"]} for name in names}
    return {"overall": result, "per_clip": per_clip}
