"""Side by side: the same detections through aptrack's tracker and others, scored
with the same MOT metrics.

The others are Ultralytics' BYTETracker and BoT-SORT, and boxmot's OC-SORT and
Deep OC-SORT. Only the trackers' ``update`` calls are timed. Each runs with its
own default settings: Ultralytics' ``bytetrack.yaml`` / ``botsort.yaml``
(BoT-SORT without re-identification, as ``yolo track`` uses them); boxmot's
constructor defaults, Deep OC-SORT with camera-motion compensation but without
its ReID network (``use_embeddings=False``: its OSNet weights cannot be fetched
offline, and none ships with boxmot).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from aptrack.core.errors import ConfigError
from aptrack.core.instances import Instances

if TYPE_CHECKING:
    from aptrack.track import PoseTracker

log = logging.getLogger(__name__)

ULTRALYTICS_TRACKERS = {"bytetrack": "bytetrack.yaml", "botsort": "botsort.yaml"}
BOXMOT_TRACKERS = ("ocsort", "deepocsort")
COMPARE_TRACKERS = (*ULTRALYTICS_TRACKERS, *BOXMOT_TRACKERS)


class UltralyticsDetections:
    """The small, NumPy-backed part of Ultralytics' ``Boxes`` its trackers read:
    ``conf``, ``cls``, centre-based ``xywh``, ``xyxy``, ``len`` and boolean indexing."""

    def __init__(self, xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray):
        # here, not at the top: the CLI imports this module for its tracker names, and
        # core.boxes brings numba (0.7 s on every aptrack call)
        from aptrack.core.boxes import xyxy_to_cxcywh

        self.xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
        self.conf = np.asarray(conf, np.float32).reshape(-1)
        self.cls = np.asarray(cls, np.float32).reshape(-1)
        self.xywh = xyxy_to_cxcywh(self.xyxy).astype(np.float32)

    def __len__(self) -> int:
        return len(self.conf)

    def __getitem__(self, index) -> "UltralyticsDetections":
        return UltralyticsDetections(self.xyxy[index], self.conf[index], self.cls[index])


class UltralyticsTracker:
    """Adapter: ``update(Instances, frame) -> (track_ids, boxes_xyxy)`` over an Ultralytics tracker."""

    def __init__(self, name: str):
        from ultralytics.trackers.bot_sort import BOTSORT
        from ultralytics.trackers.byte_tracker import BYTETracker
        from ultralytics.utils import YAML, IterableSimpleNamespace
        from ultralytics.utils.checks import check_yaml

        cfg = IterableSimpleNamespace(**YAML.load(check_yaml(ULTRALYTICS_TRACKERS[name])))
        self.name = name
        self._make = lambda: (BYTETracker if name == "bytetrack" else BOTSORT)(args=cfg)
        self.tracker = self._make()

    def reset(self) -> None:
        self.tracker = self._make()

    def update(self, detections: Instances, frame: np.ndarray):
        dets = UltralyticsDetections(detections.boxes_xyxy, detections.scores, detections.labels)
        out = self.tracker.update(dets, frame)
        if len(out) == 0:
            return np.zeros(0, np.int64), np.zeros((0, 4))
        return out[:, 4].astype(np.int64), out[:, :4].astype(np.float64)


class BoxmotTracker:
    """Adapter with the same interface over boxmot's ``OcSort`` or ``DeepOcSort``.

    boxmot is installed by ``make setup`` without its declared dependencies
    (it pins ``opencv-python<5`` and pulls pandas, pyarrow, timm and
    scikit-learn, none of which these two trackers import).
    """

    def __init__(self, name: str):
        try:
            import boxmot
            from boxmot.utils import logger as boxmot_log
        except ImportError as exc:
            raise ConfigError(f"--compare {name} needs boxmot: pip install --no-deps boxmot "
                              f"(make setup does) [{exc}]") from exc
        boxmot_log.setLevel(logging.WARNING)  # it logs its settings at every construction
        if name == "ocsort":
            self._make = lambda: boxmot.OcSort()
        else:
            self._make = lambda: boxmot.DeepOcSort(use_embeddings=False)
        self.name = name
        self.tracker = self._make()

    def reset(self) -> None:
        self.tracker = self._make()

    def update(self, detections: Instances, frame: np.ndarray):
        dets = np.column_stack([detections.boxes_xyxy, detections.scores,
                                np.zeros(len(detections), np.float32)])  # class 0
        out = np.asarray(self.tracker.update(dets, frame))
        if out.size == 0:
            return np.zeros(0, np.int64), np.zeros((0, 4))
        # rows: x1, y1, x2, y2, id (from 0), score, class, detection index; ids from 1 like the others
        return out[:, 4].astype(np.int64) + 1, out[:, :4].astype(np.float64)


def make_tracker(name: str):
    """The comparison adapter named ``name`` (one of :data:`COMPARE_TRACKERS`)."""
    if name in ULTRALYTICS_TRACKERS:
        return UltralyticsTracker(name)
    if name in BOXMOT_TRACKERS:
        return BoxmotTracker(name)
    raise ConfigError(f"unknown tracker {name} for --compare; known: {', '.join(COMPARE_TRACKERS)}")


class AptrackTracker:
    """Adapter with the same interface over :class:`PoseTracker`."""

    name = "aptrack"

    def __init__(self, tracker: "PoseTracker"):
        self.tracker = tracker

    def reset(self) -> None:
        self.tracker.reset()

    def update(self, detections: Instances, frame: np.ndarray):
        out = self.tracker.update(detections)
        return out.track_ids, out.boxes_xyxy


def track_clip(tracker, clip_data, clip_index: int, detections, frame_loader=None, ev=None) -> tuple[float, int]:
    """Run ``tracker`` (reset first) over clip ``clip_index`` of ``clip_data`` on its per-frame
    ``detections``, adding each frame's output to ``ev`` (a ClipTrackingEval) when one is given.

    Returns
    -------
    (seconds spent in the tracker's ``update`` calls, frames tracked); loading frames is not timed.
    """
    a = clip_data.animals
    clip = clip_data.clips[clip_index]
    tracker.reset()
    seconds, frames = 0.0, 0
    for t, (rows, found) in enumerate(zip(clip.rows, detections)):
        image = frame_loader(clip_index, t) if frame_loader is not None else None
        start = time.perf_counter()
        ids, boxes = tracker.update(found, image)
        seconds += time.perf_counter() - start
        frames += 1
        if ev is not None:
            ev.update(clip_data.track_ids[rows], a.boxes_xyxy[rows], a.keypoints[rows], a.visible[rows], ids, boxes)
    return seconds, frames


def compare_trackers(trackers, clip_data, detections_per_clip, frame_loader=None, rounds: int = 3) -> dict:
    """Score each tracker on the same per-frame detections, and time it.

    The trackers take turns, one pass over every clip each, for ``rounds``
    rounds, so that all of them run under the same machine load; the time per
    frame is the median over the rounds (the scores come from the first round;
    the trackers are deterministic).

    Parameters
    ----------
    trackers : list of adapters with ``name``, ``reset()`` and ``update(Instances, frame)``
    clip_data : ClipDataset (ground truth)
    detections_per_clip : list (per clip) of lists (per frame) of Instances
    frame_loader : optional callable ``(clip_index, frame_index) -> image`` for
        trackers that look at frames (BoT-SORT's motion compensation); None
        passes no image. Loading is not timed.
    rounds : int
        Timed passes per tracker.

    Returns
    -------
    {tracker name: {MOTA, IDF1, HOTA, id_switches, false_positives, misses, MOTP,
    ms_per_frame (median of the rounds), ms_per_frame_rounds}}
    """
    from aptrack.eval.tracking import ClipTrackingEval, summarize

    times = {t.name: [] for t in trackers}
    results = {}
    for tracker in trackers:
        if detections_per_clip:  # warm-up on the first clip: first calls import, allocate, load compiled code
            track_clip(tracker, clip_data, 0, detections_per_clip[0], frame_loader)
    for round_ in range(max(1, rounds)):
        for tracker in trackers:
            evals, seconds, n = [], 0.0, 0
            for c, (_, dets) in enumerate(zip(clip_data.clips, detections_per_clip)):
                ev = ClipTrackingEval(clip_data.layout.sigmas) if round_ == 0 else None
                clip_seconds, frames = track_clip(tracker, clip_data, c, dets, frame_loader, ev)
                seconds, n = seconds + clip_seconds, n + frames
                if ev is not None:
                    evals.append(ev)
            times[tracker.name].append(1000 * seconds / max(1, n))
            if round_ == 0:
                overall = summarize(evals)["overall"]
                results[tracker.name] = {key: overall.get(key) for key in (
                    "MOTA", "IDF1", "HOTA", "id_switches", "false_positives", "misses", "MOTP")}
    for name, ms in times.items():
        results[name]["ms_per_frame"] = float(np.median(ms))
        results[name]["ms_per_frame_rounds"] = [round(m, 4) for m in ms]
    return results
