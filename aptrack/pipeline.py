"""The pipeline: detector -> pose estimator -> tracker, one frame at a time.

A plain class composing the stages; presets in ``pipelines/`` are data.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict

import numpy as np

from .config import KeypointLayout, PipelineConfig
from .errors import AptrackError
from .structures import Instances
from .tracker import PoseTracker

log = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    """``"auto"`` becomes ``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise AptrackError(f"unknown device '{device}'; use cpu, cuda or auto")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AptrackError("--device cuda was asked for, but no CUDA GPU is available")
    return device


class StageTimer:
    """Accumulates wall time per named stage."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def ms_per_frame(self, frames: int) -> dict[str, float]:
        return {k: round(1000 * v / max(frames, 1), 2) for k, v in self.seconds.items()}


class Pipeline:
    """Detect, estimate pose and track animals frame by frame.

    Parameters
    ----------
    detector : callable ``(frame, frame_index) -> Instances``
    tracker : PoseTracker
    pose : callable ``(frame, Instances) -> Instances``, optional
    layout : KeypointLayout, optional
        The pose model's layout (None without pose).
    det_every : int
        Run the detector on every n-th frame; in between, the tracker's
        predicted boxes stand in (and the pose estimator runs on them).
    """

    def __init__(self, detector, tracker: PoseTracker, pose=None,
                 layout: KeypointLayout | None = None, det_every: int = 1):
        if det_every < 1:
            raise AptrackError(f"--det-every must be at least 1, got {det_every}")
        self.detector = detector
        self.tracker = tracker
        self.pose = pose
        self.layout = layout
        self.det_every = det_every
        self.timer = StageTimer()
        self._frames = 0
        self.last_detections: Instances | None = None
        """The detections (with poses) the tracker was given on the latest detector frame."""

    def reset(self) -> None:
        """Start a new video or clip: forget tracks and restart ids."""
        self.tracker.reset()
        self._frames = 0
        self.last_detections = None

    def __call__(self, frame: np.ndarray, frame_index: int) -> Instances:
        """Process one (H, W, 3) uint8 BGR frame; returns the tracked animals."""
        detect = self._frames % self.det_every == 0
        self._frames += 1
        if detect:
            with self.timer("detect"):
                found = self.detector(frame, frame_index)
            if self.pose is not None:
                with self.timer("pose"):
                    found = self.pose(frame, found)
            self.last_detections = found
            with self.timer("track"):
                return self.tracker.update(found)
        with self.timer("track"):
            predicted = self.tracker.predict_only(frame_index)
        if self.pose is not None and len(predicted):
            with self.timer("pose"):
                predicted = self.pose(frame, predicted)
        return predicted


def build_detector(config, device: str = "cpu"):
    """The YOLO animal detector named by a :class:`DetectorConfig`; returns (detector, info)."""
    from . import weights
    from .detector import YoloAnimalDetector

    det_weights = weights.resolve(config.weights)
    return YoloAnimalDetector(det_weights.path, config, resolve_device(device)), det_weights.describe()


def build_pose(config, device: str = "cpu"):
    """The top-down pose estimator named by a :class:`PoseConfig` (weights must be set).

    Returns (estimator, info) where info holds file, sha256, source, layout and input size.
    """
    from . import weights
    from .models import load_checkpoint
    from .pose import TopDownPoseEstimator

    device = resolve_device(device)
    pose_weights = weights.resolve(config.weights)
    model, codec, layout, _ = load_checkpoint(pose_weights.path, device)
    estimator = TopDownPoseEstimator(model, codec, layout, config, device)
    return estimator, {**pose_weights.describe(), "layout": layout.name,
                       "input_size": list(codec.input_size)}


def build_pipeline(config: PipelineConfig, device: str = "cpu", det_every: int = 1):
    """Load the models named by ``config`` and compose a :class:`Pipeline`.

    Returns
    -------
    pipeline : Pipeline
    models : dict
        ``{"detector": {...}, "pose": {...} or None}`` with file, sha256 and source.
    """
    device = resolve_device(device)
    detector, det_info = build_detector(config.detector, device)
    models = {"detector": det_info, "pose": None}
    pose, layout = None, None
    if config.pose.weights:
        pose, models["pose"] = build_pose(config.pose, device)
        layout = pose.layout
    else:
        log.warning("no pose weights are available: running detection + tracking only (--pose none)")
    tracker = PoseTracker(config.tracker, sigmas=None if layout is None else layout.sigmas)
    return Pipeline(detector, tracker, pose, layout, det_every), models
