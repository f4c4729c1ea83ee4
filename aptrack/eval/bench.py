"""``aptrack bench``: the pipeline over APTv2-style clips, scored per frame and per track.

For every clip of a split the tracker is reset, then each frame runs through
one of three box sources:

* ``detector``: the product (detector -> pose -> tracker);
* ``gt``: ground-truth boxes of every frame (the single-frame upper bound,
  APTv2's track 1); the tracker still assigns ids;
* ``gt-first-frame``: APTv2's tracking track. Each animal starts from its
  first-frame ground-truth box and is carried through the clip by
  :class:`aptrack.track.propagate.IdentityPropagator` (a single-object
  tracker per animal, corrected by its pose and the motion model), so
  identities never change hands and no new ones appear.

Per-frame keypoint AP (pycocotools, the layout's OKS sigmas) and the tracking
metrics of :mod:`aptrack.eval.tracking` are computed on the same outputs.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from aptrack.core.instances import Instances
from aptrack.data.clips import Clip, ClipDataset
from aptrack.eval.keypoints import PredictionLog, evaluate_predictions, keypoints_or_zeros
from aptrack.eval.tracking import ClipTrackingEval, summarize
from aptrack.io.images import load_image
from aptrack.io.inputs import ImageSequenceReader
from aptrack.pipeline import Pipeline, StageTimer
from aptrack.runner import iter_steps

log = logging.getLogger(__name__)

BOX_SOURCES = ("detector", "gt", "gt-first-frame")


def _gt_instances(clip_data: ClipDataset, rows: np.ndarray, frame_index: int) -> Instances:
    a = clip_data.animals
    return Instances(a.boxes_xyxy[rows], np.ones(len(rows), np.float32),
                     categories=a.categories[rows], frame_index=frame_index)


def run_clip(pipeline: Pipeline, clip_data: ClipDataset, clip: Clip, source: str,
             detections: list | None = None, evidence: list | None = None) -> list[tuple[Instances, Instances]]:
    """Per frame of ``clip``: (poses that are scored for AP, tracked animals).

    The two are the same except with ``gt`` boxes, where every ground-truth
    box's pose is scored (the single-frame upper bound) while the tracker may
    still hold back a new animal's id for ``min_hits`` frames, and with
    ``gt-first-frame``, where every carried animal's pose is scored, ranked by
    how well it is seen (as APTv2's tracking track predicts one per tracked
    animal and frame), while only those seen at least
    ``propagation.visible_min_score`` are tracked.
    The tracker is reset first. With detector boxes, each frame's detections
    (with poses) are also appended to ``detections`` when a list is given; with
    ``gt-first-frame``, each frame's :class:`aptrack.track.propagate.StepEvidence`
    (None on the first frame) to ``evidence``.
    Every source runs through :func:`aptrack.runner.iter_steps`, the frame
    loop of ``aptrack run``; ``gt-first-frame`` as ``aptrack run --init-boxes``.
    """
    pipeline.reset()
    pipeline.start_video(lambda n: ImageSequenceReader(tuple(clip.files)).sample(n))  # as a run samples a folder
    frames = ((t, load_image(path)) for t, path in enumerate(clip.files))
    if source == "gt-first-frame":
        first = _gt_instances(clip_data, clip.rows[0], 0).with_(track_ids=clip_data.track_ids[clip.rows[0]])
        out = []
        for step in iter_steps(pipeline, frames, known=first):
            if evidence is not None:
                evidence.append(step.evidence)
            out.append((step.carried, step.tracked))
        return out
    given = None
    if source == "gt":
        def given(t: int) -> Instances:
            return _gt_instances(clip_data, clip.rows[t], t)
    out = []
    for step in iter_steps(pipeline, frames, given):
        tracked = step.tracked
        if source == "gt":
            scored = step.detections.with_(track_ids=clip_data.track_ids[clip.rows[step.index]])
            out.append((scored, tracked))
            continue
        if detections is not None:
            detections.append(step.detections)
        out.append((tracked, tracked))
    return out


def run_benchmark(pipeline: Pipeline, clip_data: ClipDataset, source: str, progress=None,
                  compare: tuple[str, ...] = (), bootstrap: int = 0) -> dict:
    """Run every clip and score it.

    Returns
    -------
    dict: ``keypoints`` (evaluate_predictions' metrics), ``coco`` (the ground
    truth and results that pycocotools scored),
    ``tracking`` (summarize's output), ``speed`` {fps, ms_per_frame}, ``frames``,
    ``clips``, ``source``, and with ``compare`` (names in
    :data:`aptrack.eval.compare.COMPARE_TRACKERS`,
    detector boxes only) ``trackers``: aptrack's tracker and each named one on
    the same detections; with ``bootstrap`` N > 0, ``intervals``: the 95%
    intervals of AP, IDF1 and MOTA over N draws of the clips with replacement
    (:func:`aptrack.eval.bootstrap.clip_bootstrap`).
    """
    if source not in BOX_SOURCES:
        raise ValueError(f"unknown box source {source}")
    layout = pipeline.layout if pipeline.layout is not None else clip_data.layout
    pred = PredictionLog(clip_data.layout.num_keypoints)
    evals, names = [], []
    pipeline.timer = StageTimer()
    frames = 0
    started = time.perf_counter()
    detections_per_clip = []
    adapters = []
    if compare and source == "detector":  # built first: a missing package fails before the clips run
        from aptrack.eval.compare import AptrackTracker, make_tracker
        from aptrack.track import PoseTracker
        adapters = [AptrackTracker(PoseTracker(pipeline.tracker.config, sigmas=pipeline.tracker.sigmas))]
        adapters += [make_tracker(name) for name in compare]
    for done, clip in enumerate(clip_data.clips, 1):
        detections = [] if adapters else None
        outputs = run_clip(pipeline, clip_data, clip, source, detections=detections)
        detections_per_clip.append(detections)
        evals.append(score_clip(clip_data, clip, outputs, source, layout.sigmas, pred))
        names.append(str(clip.video_id))
        frames += len(outputs)
        if progress is not None:
            progress(done)
    seconds = time.perf_counter() - started
    trackers = None
    if adapters:
        from aptrack.eval.compare import compare_trackers
        trackers = compare_trackers(adapters, clip_data, detections_per_clip,
                                    lambda c, t: load_image(clip_data.clips[c].files[t]))
    summary = _summary(clip_data, pred, evals, names, source)
    intervals = None
    if bootstrap:
        from aptrack.eval.bootstrap import clip_bootstrap
        from aptrack.eval.tracking import clip_counts

        intervals = clip_bootstrap(summary["coco"]["gt"], summary["coco"]["results"],
                                   [c.image_ids for c in clip_data.clips], clip_counts(evals),
                                   clip_data.layout.sigmas, bootstrap)
    return {"source": source, "clips": len(clip_data.clips), "frames": frames,
            **summary, "trackers": trackers, "intervals": intervals,
            "speed": {"fps": frames / seconds if seconds > 0 else float("nan"),
                      "ms_per_frame": pipeline.timer.ms_per_frame(frames)}}


def score_clip(clip_data: ClipDataset, clip: Clip, outputs: list[tuple[Instances, Instances]], source: str,
               sigmas, pred: PredictionLog) -> ClipTrackingEval:
    """Score one clip's :func:`run_clip` outputs: its tracking metrics (returned) and its poses (added to ``pred``)."""
    k = clip_data.layout.num_keypoints
    ev = ClipTrackingEval(sigmas)
    a = clip_data.animals
    for t, (inst, tracked) in enumerate(outputs):
        rows = clip.rows[t]
        ev.update(clip_data.track_ids[rows], a.boxes_xyxy[rows], a.keypoints[rows], a.visible[rows],
                  tracked.track_ids, tracked.boxes_xyxy, *keypoints_or_zeros(tracked, k))
        # a carried animal keeps the species of its first-frame box, so gt-first-frame is scored per species
        # like gt boxes, also in frames where some carried animal is not annotated
        pred.add(clip.image_ids[t], inst, _rows_of(clip_data, rows, inst, source),
                 known_species=source == "gt-first-frame")
    return ev


def score_outputs(clip_data: ClipDataset, outputs_per_clip: list, source: str) -> dict:
    """:func:`run_clip`'s outputs of every clip of ``clip_data`` (in order) scored as :func:`run_benchmark`
    scores them (OKS with the clips' layout): ``keypoints``, ``coco`` and ``tracking``."""
    pred = PredictionLog(clip_data.layout.num_keypoints)
    evals = [score_clip(clip_data, clip, outputs, source, clip_data.layout.sigmas, pred)
             for clip, outputs in zip(clip_data.clips, outputs_per_clip)]
    return _summary(clip_data, pred, evals, [str(c.video_id) for c in clip_data.clips], source)


def _summary(clip_data: ClipDataset, pred: PredictionLog, evals: list, names: list[str], source: str) -> dict:
    keypoints = evaluate_predictions(clip_data.animals, pred.arrays(), class_agnostic=source == "detector")
    coco = {"gt": keypoints.pop("gt"), "results": keypoints.pop("results")}
    return {"keypoints": keypoints, "coco": coco, "tracking": summarize(evals, names)}


def _rows_of(clip_data: ClipDataset, rows: np.ndarray, inst: Instances, source: str) -> np.ndarray:
    """The ground-truth row behind each output, or -1 (detector boxes)."""
    if source == "detector" or len(inst) == 0:
        return np.full(len(inst), -1, np.int64)
    if source == "gt":
        return np.asarray(rows, np.int64)  # one scored pose per ground-truth box, in order
    # gt-first-frame: the animal with the same track id in this frame (-1 if it is not annotated here)
    by_track = {int(clip_data.track_ids[r]): int(r) for r in rows}
    return np.array([by_track.get(int(t), -1) for t in inst.track_ids], np.int64)
