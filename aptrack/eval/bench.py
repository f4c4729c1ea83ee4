"""``aptrack bench``: the pipeline over APTv2-style clips, scored per frame and per track.

For every clip of a split the tracker is reset, then each frame runs through
one of three box sources:

* ``detector``: the product (detector -> pose -> tracker);
* ``gt``: ground-truth boxes of every frame (the single-frame upper bound,
  APTv2's track 1); the tracker still assigns ids;
* ``gt-first-frame``: APTv2's tracking track. Each animal starts from its
  first-frame ground-truth box; in later frames its box comes from its own
  pose in the previous frame (the box around its confident keypoints,
  smoothed by the Kalman filter), so identities never change hands.

Per-frame keypoint AP (pycocotools, the layout's OKS sigmas) and the tracking
metrics of :mod:`aptrack.eval.tracking` are computed on the same outputs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from aptrack.core.boxes import xyah_to_xyxy, xyxy_to_xyah
from aptrack.core.instances import Instances
from aptrack.data.clips import Clip, ClipDataset
from aptrack.eval.keypoints import PredictionLog, evaluate_predictions, keypoints_or_zeros
from aptrack.eval.tracking import ClipTrackingEval, summarize
from aptrack.io.images import load_image
from aptrack.pipeline import Pipeline, StageTimer
from aptrack.runner import iter_frames, timed_frames
from aptrack.track.kalman import KalmanBoxMotion

log = logging.getLogger(__name__)

BOX_SOURCES = ("detector", "gt", "gt-first-frame")


@dataclass(frozen=True)
class PropagationConfig:
    """How ``gt-first-frame`` turns a pose into next frame's box.

    The box around keypoints scoring at least ``keypoint_score_threshold`` is
    grown by ``box_growth`` (keypoints sit inside an animal's outline); with
    fewer than ``min_keypoints`` of them the Kalman prediction is kept.
    """

    keypoint_score_threshold: float = 0.3
    min_keypoints: int = 3
    box_growth: float = 1.2


def keypoint_box_xyxy(keypoints, scores, threshold: float, growth: float, min_keypoints: int):
    """Box around confident keypoints, grown about its centre; None if too few.

    Parameters
    ----------
    keypoints : (K, 2) pixels; scores : (K,)
    """
    ok = np.asarray(scores) >= threshold
    if ok.sum() < min_keypoints:
        return None
    pts = np.asarray(keypoints, np.float64)[ok]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre, size = (lo + hi) / 2, np.maximum(hi - lo, 1.0) * growth
    return np.concatenate([centre - size / 2, centre + size / 2])


def _gt_instances(clip_data: ClipDataset, rows: np.ndarray, frame_index: int) -> Instances:
    a = clip_data.animals
    return Instances(a.boxes_xyxy[rows], np.ones(len(rows), np.float32),
                     categories=a.categories[rows], frame_index=frame_index)


def run_clip(pipeline: Pipeline, clip_data: ClipDataset, clip: Clip, source: str,
             propagation: PropagationConfig = PropagationConfig(),
             detections: list | None = None) -> list[tuple[Instances, Instances]]:
    """Per frame of ``clip``: (poses that are scored for AP, tracked animals).

    The two are the same except with ``gt`` boxes, where every ground-truth
    box's pose is scored (the single-frame upper bound) while the tracker may
    still hold back a new animal's id for ``min_hits`` frames.
    The tracker is reset first. With detector boxes, each frame's detections
    (with poses) are also appended to ``detections`` when a list is given.
    ``detector`` and ``gt`` run through :func:`aptrack.runner.iter_frames`,
    the frame loop of ``aptrack run``.
    """
    pipeline.reset()
    frames = ((t, load_image(path)) for t, path in enumerate(clip.files))
    if source == "gt-first-frame":
        return _propagate_first_frame(pipeline, clip_data, clip, frames, propagation)
    given = None
    if source == "gt":
        def given(t: int) -> Instances:
            return _gt_instances(clip_data, clip.rows[t], t)
    out = []
    for t, _, tracked in iter_frames(pipeline, frames, given):
        if source == "gt":
            scored = pipeline.last_detections.with_(track_ids=clip_data.track_ids[clip.rows[t]])
            out.append((scored, tracked))
            continue
        if detections is not None:
            detections.append(pipeline.last_detections)
        out.append((tracked, tracked))
    return out


def _propagate_first_frame(pipeline: Pipeline, clip_data: ClipDataset, clip: Clip, frames,
                           propagation: PropagationConfig) -> list[tuple[Instances, Instances]]:
    """``gt-first-frame``: identities are the first frame's animals, boxes follow their poses."""
    timer: StageTimer = pipeline.timer
    motion = KalmanBoxMotion()
    states: dict[int, tuple] = {}
    out = []
    for t, frame in timed_frames(frames, timer):
        rows = clip.rows[t]
        if t == 0:
            ids = clip_data.track_ids[rows]
            boxes = clip_data.animals.boxes_xyxy[rows].astype(np.float64)
            states = {int(i): motion.initiate(xyxy_to_xyah(b[None])[0]) for i, b in zip(ids, boxes)}
        else:
            with timer("track"):
                states = {i: motion.predict(*s) for i, s in states.items()}
        ids = np.array(sorted(states), np.int64)
        boxes = np.array([xyah_to_xyxy(states[i][0][:4][None])[0] for i in ids]).reshape(-1, 4)
        inst = Instances(boxes, np.ones(len(ids), np.float32), track_ids=ids, frame_index=t)
        if pipeline.pose is not None and len(inst):
            inst = pipeline.estimate_pose(frame, inst)
            with timer("track"):
                for i, kp, ks in zip(ids, inst.keypoints, inst.keypoint_scores):
                    box = keypoint_box_xyxy(kp, ks, propagation.keypoint_score_threshold,
                                            propagation.box_growth, propagation.min_keypoints)
                    if box is not None:
                        states[int(i)] = motion.update(*states[int(i)], xyxy_to_xyah(box[None])[0])
        out.append((inst, inst))
    return out


def run_benchmark(pipeline: Pipeline, clip_data: ClipDataset, source: str, progress=None,
                  compare: tuple[str, ...] = ()) -> dict:
    """Run every clip and score it.

    Returns
    -------
    dict: ``keypoints`` (evaluate_predictions' metrics), ``coco`` (the ground
    truth and results that pycocotools scored),
    ``tracking`` (summarize's output), ``speed`` {fps, ms_per_frame}, ``frames``,
    ``clips``, ``source``, and with ``compare`` (Ultralytics tracker names,
    detector boxes only) ``trackers``: aptrack's tracker and each named one on
    the same detections.
    """
    if source not in BOX_SOURCES:
        raise ValueError(f"unknown box source {source}")
    layout = pipeline.layout if pipeline.layout is not None else clip_data.layout
    pred = PredictionLog(clip_data.layout.num_keypoints)
    evals, names = [], []
    pipeline.timer = StageTimer()
    frames = 0
    k = clip_data.layout.num_keypoints
    started = time.perf_counter()
    detections_per_clip = []
    for done, clip in enumerate(clip_data.clips, 1):
        detections = [] if compare else None
        outputs = run_clip(pipeline, clip_data, clip, source, detections=detections)
        detections_per_clip.append(detections)
        ev = ClipTrackingEval(layout.sigmas)
        for t, (inst, tracked) in enumerate(outputs):
            rows = clip.rows[t]
            a = clip_data.animals
            ev.update(clip_data.track_ids[rows], a.boxes_xyxy[rows], a.keypoints[rows], a.visible[rows],
                      tracked.track_ids, tracked.boxes_xyxy, *keypoints_or_zeros(tracked, k))
            pred.add(clip.image_ids[t], inst, _rows_of(clip_data, rows, inst, source))
            frames += 1
        evals.append(ev)
        names.append(str(clip.video_id))
        if progress is not None:
            progress(done)
    seconds = time.perf_counter() - started
    trackers = None
    if compare and source == "detector":
        from aptrack.eval.compare import AptrackTracker, UltralyticsTracker, compare_trackers
        from aptrack.track import PoseTracker
        adapters = [AptrackTracker(PoseTracker(pipeline.tracker.config, sigmas=pipeline.tracker.sigmas))]
        adapters += [UltralyticsTracker(name) for name in compare]
        trackers = compare_trackers(adapters, clip_data, detections_per_clip,
                                    lambda c, t: load_image(clip_data.clips[c].files[t]))
    keypoints = evaluate_predictions(clip_data.animals, pred.arrays(), class_agnostic=source == "detector")
    coco = {"gt": keypoints.pop("gt"), "results": keypoints.pop("results")}
    return {"source": source, "clips": len(clip_data.clips), "frames": frames, "coco": coco,
            "trackers": trackers,
            "keypoints": keypoints, "tracking": summarize(evals, names),
            "speed": {"fps": frames / seconds if seconds > 0 else float("nan"),
                      "ms_per_frame": pipeline.timer.ms_per_frame(frames)}}


def _rows_of(clip_data: ClipDataset, rows: np.ndarray, inst: Instances, source: str) -> np.ndarray:
    """The ground-truth row behind each output, or -1 (detector boxes)."""
    if source == "detector" or len(inst) == 0:
        return np.full(len(inst), -1, np.int64)
    if source == "gt":
        return np.asarray(rows, np.int64)  # one scored pose per ground-truth box, in order
    # gt-first-frame: the animal with the same track id in this frame (-1 if it is not annotated here)
    by_track = {int(clip_data.track_ids[r]): int(r) for r in rows}
    return np.array([by_track.get(int(t), -1) for t in inst.track_ids], np.int64)
