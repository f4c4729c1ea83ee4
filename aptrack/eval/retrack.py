"""Tools for tracking research: re-track saved detections, and score any results file.

``aptrack track`` reads detections or poses in the COCO-results format that
``aptrack run`` writes (or a plain list of COCO result records), runs only the
tracker over them, and writes the same format with new ``track_id`` values.

``aptrack eval --gt --pred`` scores a results file (records with ``image_id``,
``track_id``, ``bbox`` xywh, ``score`` and optionally ``keypoints``) against a
video keypoint file: per-frame keypoint AP plus the tracking metrics of
:mod:`aptrack.eval.tracking`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from aptrack.core.errors import DatasetError
from aptrack.core.instances import Instances
from aptrack.data.clips import ClipDataset
from aptrack.data.datasets import read_json
from aptrack.eval.keypoints import PredictionLog, evaluate_predictions, keypoints_or_zeros
from aptrack.io.results import records_to_instances
from aptrack.eval.tracking import ClipTrackingEval, summarize
from aptrack.track import PoseTracker

log = logging.getLogger(__name__)


MAX_COORDINATE = 1e5
"""Pixels: the largest |x| or |y| of a box corner or keypoint taken as sane (a 100,000-pixel frame)."""


def invalid_reason(rec: dict) -> str | None:
    """Why a result record cannot be tracked, or None when it can.

    A record needs a ``bbox`` of 4 finite numbers (``x, y, w, h``) with ``w``
    and ``h`` > 0 and corners within :data:`MAX_COORDINATE`; a ``score`` (when
    given) finite in [0, 1]; ``keypoints`` (when given) as ``x, y, v``
    triples, finite, within :data:`MAX_COORDINATE`, with ``v`` in [0, 2] (a
    score in [0, 1], or a COCO visibility flag).
    """
    def numbers(value):
        try:
            arr = np.asarray(value, np.float64)
        except (TypeError, ValueError):
            return None
        return arr if arr.ndim == 1 else None

    box = numbers(rec.get("bbox"))
    if box is None or len(box) != 4:
        return f"bbox {rec.get('bbox')!r} is not 4 numbers"
    if not np.isfinite(box).all():
        return f"bbox {box.tolist()} is not finite"
    if box[2] <= 0 or box[3] <= 0:
        return f"bbox {box.tolist()} (x, y, w, h) has a width or height <= 0"
    if np.abs(box[:2]).max() > MAX_COORDINATE or np.abs(box[:2] + box[2:]).max() > MAX_COORDINATE:
        return f"bbox {box.tolist()} lies outside +-{MAX_COORDINATE:g} pixels"
    if "score" in rec:
        score = numbers([rec["score"]]) if not isinstance(rec["score"], (list, dict)) else None
        if score is None or not np.isfinite(score).all() or not 0.0 <= score[0] <= 1.0:
            return f"score {rec['score']!r} is not in [0, 1]"
    if "keypoints" in rec:
        kp = numbers(rec["keypoints"])
        if kp is None or len(kp) % 3:
            return "keypoints are not x, y, v triples of numbers"
        kp = kp.reshape(-1, 3)
        if not np.isfinite(kp).all():
            return "keypoints are not finite"
        if len(kp) and np.abs(kp[:, :2]).max() > MAX_COORDINATE:
            return f"keypoints lie outside +-{MAX_COORDINATE:g} pixels"
        if len(kp) and (kp[:, 2].min() < 0 or kp[:, 2].max() > 2):
            return "keypoint scores are not in [0, 2]"
    return None


def read_results(path: str | Path, drop_invalid: bool = False) -> tuple[dict, list[dict], int]:
    """``(info, records, dropped)`` from an ``aptrack run`` json or a plain list of COCO results.

    Every record is checked (:func:`invalid_reason`). A bad one is an error
    naming it, or, with ``drop_invalid``, left out and counted in ``dropped``.
    """
    path = Path(path)
    data = read_json(path, "results file")
    if isinstance(data, list):
        info, records = {}, data
    elif isinstance(data, dict) and isinstance(data.get("annotations"), list):
        info, records = data.get("info", {}), data["annotations"]
    else:
        raise DatasetError(f"{path}: expected a list of results or an object with 'annotations'")
    kept = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or "bbox" not in rec or ("image_id" not in rec and "frame" not in rec):
            raise DatasetError(f"{path}: record {i} lacks 'bbox' or 'image_id'/'frame'")
        reason = invalid_reason(rec)
        if reason is None:
            kept.append(rec)
        elif not drop_invalid:
            frame = rec.get("image_id", rec.get("frame"))
            raise DatasetError(f"{path}: record {i} (image_id {frame!r}): {reason}; "
                               f"pass --drop-invalid to leave such records out")
    dropped = len(records) - len(kept)
    if dropped:
        log.info("%s: left out %d invalid record(s) of %d", path, dropped, len(records))
    return info, kept, dropped


def group_frames(records: list[dict]):
    """Records grouped by video (``video_id``, else one video) and frame, both in order.

    Returns {video: [(frame_key, [records])]}.
    """
    videos: dict = {}
    for rec in records:
        video = rec.get("video_id", 0)
        frame = rec.get("frame", rec.get("image_id"))
        videos.setdefault(video, {}).setdefault(frame, []).append(rec)
    return {v: sorted(frames.items(), key=lambda kv: kv[0]) for v, frames in sorted(videos.items())}


def retrack(records: list[dict], tracker: PoseTracker, num_keypoints: int | None) -> list[dict]:
    """New records with the tracker's ``track_id``; detections the tracker drops are left out.

    The tracker is reset for every video; frames without records still advance it.
    """
    out = []
    for video, frames in group_frames(records).items():
        tracker.reset()
        previous = None
        for frame_key, recs in frames:
            if isinstance(frame_key, (int, np.integer)) and previous is not None:
                for gap in range(int(previous) + 1, int(frame_key)):  # frames with no detection at all
                    tracker.update(Instances.empty(num_keypoints or 0, gap))
            previous = frame_key
            index = int(frame_key) if isinstance(frame_key, (int, np.integer)) else 0
            inst = records_to_instances(recs, index, num_keypoints)
            tracked = tracker.update(inst)
            for j in range(len(tracked)):
                # the tracker emits the matched detection itself: find its record by box
                d = np.abs(inst.boxes_xyxy - tracked.boxes_xyxy[j]).sum(axis=1)
                rec = dict(recs[int(np.argmin(d))])
                rec["track_id"] = int(tracked.track_ids[j])
                out.append(rec)
    return out


def evaluate_results(gt: ClipDataset, records: list[dict]) -> dict:
    """Per-frame keypoint metrics and tracking metrics of ``records`` against ``gt``.

    Returns {"keypoints": ..., "tracking": ...}.
    """
    a = gt.animals
    k = gt.layout.num_keypoints
    by_image: dict[int, list[dict]] = {}
    for rec in records:
        if "image_id" not in rec:
            raise DatasetError("results for scoring need 'image_id' on every record")
        by_image.setdefault(int(rec["image_id"]), []).append(rec)
    known = set(int(i) for c in gt.clips for i in c.image_ids)
    stray = set(by_image) - known
    if stray:
        log.warning("%d result image id(s) are not in the ground truth and are ignored", len(stray))
    pred = PredictionLog(k)
    evals, names = [], []
    for clip in gt.clips:
        ev = ClipTrackingEval(gt.layout.sigmas)
        for t, (iid, rows) in enumerate(zip(clip.image_ids, clip.rows)):
            recs = by_image.get(int(iid), [])
            inst = records_to_instances(recs, t, k)
            ids = np.array([int(r.get("track_id", -1)) for r in recs], np.int64)
            ev.update(gt.track_ids[rows], a.boxes_xyxy[rows], a.keypoints[rows], a.visible[rows],
                      ids, inst.boxes_xyxy, *keypoints_or_zeros(inst, k))
            pred.add(iid, inst, np.full(len(inst), -1))
        evals.append(ev)
        names.append(str(clip.video_id))
    keypoints = evaluate_predictions(a, pred.arrays(), class_agnostic=True)
    keypoints.pop("gt")
    keypoints.pop("results")
    return {"keypoints": keypoints, "tracking": summarize(evals, names)}
