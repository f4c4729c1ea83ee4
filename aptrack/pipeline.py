"""The pipeline: detector -> pose estimator -> tracker, one frame at a time.

A plain class composing the stages (as rtmlib's solutions do); its presets in
``pipelines/`` are data, loaded into the frozen :class:`PipelineConfig`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aptrack.core import resources
from aptrack.core.config import build_config, merged, read_yaml
from aptrack.core.errors import AptrackError, ConfigError, OutputError, WeightsError
from aptrack.core.instances import Instances
from aptrack.core.layout import KeypointLayout
from aptrack.detect.config import BackgroundConfig, CadenceConfig, DetectorConfig
from aptrack.detect.mirror import detect_mirrored_too
from aptrack.io.draw import DrawConfig
from aptrack.pose.config import PoseConfig
from aptrack.track import PoseTracker
from aptrack.track.config import AppearanceConfig, PropagationConfig, TrackerConfig
from aptrack.track.interpolate import InterpolationConfig
from aptrack.track.smooth import SmoothingConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineConfig:
    """A pipeline preset: every setting of every stage (see each section's docstring).

    ``base``: the preset this one's file was laid over (:func:`load_pipeline`).
    """

    name: str = "default"
    base: str | None = None
    layout: str = "ap10k"
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    cadence: CadenceConfig = field(default_factory=CadenceConfig)
    pose: PoseConfig = field(default_factory=PoseConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    interpolation: InterpolationConfig = field(default_factory=InterpolationConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    propagation: PropagationConfig = field(default_factory=PropagationConfig)
    draw: DrawConfig = field(default_factory=DrawConfig)


def available_pipelines() -> list[str]:
    return resources.names("pipelines")


BASE_PRESET = "default"
"""The preset a pipeline file without a ``base`` key is laid over."""


def load_pipeline(name_or_path: str | Path = "default") -> PipelineConfig:
    """Load a pipeline preset by name (``pipelines/NAME.yaml``) or by file path.

    A file is laid over the preset its ``base`` key names (default
    :data:`BASE_PRESET`), section by section and key by key, so a file that
    changes one threshold changes nothing else. The preset's own file may
    have a ``base`` too; a loop of bases is an error.
    """
    path = resources.find("pipelines", name_or_path)
    data, base = _pipeline_data(path, ())
    if base is not None:
        log.info("pipeline %s is laid over preset %s", path, base)
    return build_config(PipelineConfig, data, str(path))


def _pipeline_data(path: Path, seen: tuple[Path, ...]) -> tuple[dict, str | None]:
    """The merged mapping of the pipeline file ``path`` and the name of the preset under it."""
    data = read_yaml(path)
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(data).__name__}")
    default_path = resources.find("pipelines", BASE_PRESET)
    base = data.get("base")
    if base is None and path.resolve() == default_path.resolve():
        return data, None
    base = BASE_PRESET if base is None else base
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base must be a preset name or a file, got {base!r}")
    base_path = resources.find("pipelines", base)
    if base_path.suffix and not base_path.is_absolute():
        base_path = path.parent / base_path  # a file named beside this one
    if base_path.resolve() in [p.resolve() for p in (*seen, path)]:
        raise ConfigError(f"{path}: base '{base}' loops back to a file already read")
    under, _ = _pipeline_data(base_path, (*seen, path))
    under = {k: v for k, v in under.items() if k != "name"}
    return {"name": path.stem, **merged(under, data), "base": base}, base


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


AUTO_STREAMS = 2
"""``--streams auto`` on a CPU with at least this many cores: this many streams (see :func:`resolve_streams`)."""


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def resolve_streams(streams: int | str, device: str, cores: int | None = None) -> int:
    """How many streams (copies of the detector and pose networks, each measuring other frames)
    a run uses: ``auto`` is :data:`AUTO_STREAMS` on a CPU with that many ``cores`` or more (each
    stream then gets its share of them), else 1; on a GPU 1.

    Raises
    ------
    AptrackError
        If ``streams`` is neither ``auto`` nor a whole number from 1.
    """
    if streams == "auto":
        cores = available_cores() if cores is None else cores
        return AUTO_STREAMS if device == "cpu" and cores >= AUTO_STREAMS else 1
    if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
        raise AptrackError(f"--streams must be a whole number from 1, or auto; got {streams!r}")
    return streams


class StageTimer:
    """Accumulates wall time per named stage (from any thread: several streams add to it)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def __call__(self, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self.seconds[stage] += elapsed

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
    det_every : int or "auto"
        Run the detector on every n-th frame; in between, the tracker's
        predicted boxes stand in (and the pose estimator runs on them).
        ``"auto"``: when ``cadence`` says (:class:`CadenceConfig`).
    propagation : PropagationConfig
        How :meth:`track_known` carries known animals.
    sot_factory : callable, optional
        Makes one single-object tracker per known animal; by default the
        weights ``propagation.sot_weights`` names, loaded on the first
        :meth:`track_known` (the SOT runs only in that mode).
    embedder : callable ``(frame, Instances) -> Instances``, optional
        Adds appearance embeddings to each detector frame's animals before
        tracking (:class:`aptrack.track.appearance.AppearanceEmbedder`).
    interpolation : InterpolationConfig
        Gap filling of tracks, applied by the frame loop
        (:func:`aptrack.runner.iter_frames`).
    """

    def __init__(self, detector, tracker: PoseTracker, pose=None,
                 layout: KeypointLayout | None = None, det_every: int = 1,
                 propagation: PropagationConfig = PropagationConfig(), sot_factory=None, embedder=None,
                 interpolation: InterpolationConfig = InterpolationConfig(),
                 cadence: CadenceConfig = CadenceConfig()):
        if det_every != "auto" and (not isinstance(det_every, int) or det_every < 1):
            raise AptrackError(f"--det-every must be a whole number from 1, or auto; got {det_every!r}")
        self.detector = detector
        self.tracker = tracker
        self.pose = pose
        self.layout = layout
        self.det_every = det_every
        self.timer = StageTimer()
        self.propagation = propagation
        self.sot_factory = sot_factory
        self.embedder = embedder
        self.interpolation = interpolation
        self.cadence = cadence
        self.models: dict = {}
        """What :func:`build_pipeline` loaded (file, sha256, source per model), for the outputs' info."""
        self.more_streams: list[tuple] = []
        """(detector, pose estimator) copies for :attr:`streams` (:func:`build_pipeline`'s ``streams``)."""
        self.propagator = None
        self._frames = 0
        self._since_detection = 0
        self._detected_count = 0
        self._unsure = False
        self.last_detections: Instances | None = None
        """The boxes (with poses) the tracker was given on the latest detector frame."""

    def reset(self) -> None:
        """Start a new video or clip: forget tracks and restart ids."""
        self.tracker.reset()
        if self.propagator is not None:
            self.propagator.reset()
        self._frames = 0
        self._since_detection = 0
        self._detected_count = 0
        self._unsure = False
        self.last_detections = None

    def state(self) -> dict:
        """What the pipeline remembers between frames (its frame counters, the cadence and the
        tracker's :meth:`~aptrack.track.tracker.PoseTracker.state`), for a resumable run.

        Raises
        ------
        ConfigError
            While known animals are carried (:meth:`track_known`): their single-object
            trackers' state cannot be saved.
        """
        if self.propagator is not None and self.propagator.started:
            raise ConfigError("a run that follows --init-boxes cannot be saved for --resume: its single-object "
                              "trackers' state is not saved")
        return {"frames": self._frames, "since_detection": self._since_detection,
                "detected_count": self._detected_count, "unsure": self._unsure,
                "last_detections": self.last_detections, "tracker": self.tracker.state()}

    def load_state(self, state: dict) -> None:
        """Continue from a :meth:`state` (after :meth:`reset` and :meth:`start_video`)."""
        self._frames, self._since_detection = int(state["frames"]), int(state["since_detection"])
        self._detected_count, self._unsure = int(state["detected_count"]), bool(state["unsure"])
        self.last_detections = state["last_detections"]
        self.tracker.load_state(state["tracker"])

    def start_video(self, sample) -> None:
        """Before a video's first frame: a detector that learns from the video itself (the
        background detector's ``fit``) gets ``sample(n)``, ``n`` frames spread over it."""
        fit = getattr(self.detector, "fit", None)
        if fit is not None:
            with self.timer("detect"):
                fit(sample(self.detector.config.sample_frames))

    def _detect(self, frame: np.ndarray, frame_index: int, mirrored_too: bool = False) -> Instances:
        """The detector on one frame, given the tracker's predicted centres when it uses them; with
        ``mirrored_too`` (for a detector that takes no predictions), also on the mirrored frame, the boxes merged."""
        with self.timer("detect"):
            if getattr(self.detector, "uses_predictions", False):
                return self.detector(frame, frame_index, self.tracker.expected_centres())
            if mirrored_too:
                return detect_mirrored_too(self.detector, frame, frame_index, self.propagation.flip_nms_iou)
            return self.detector(frame, frame_index)

    def track_known(self, frame: np.ndarray, animals: Instances) -> Instances:
        """Carry these animals (boxes with track ids) through the frames that follow.

        From this frame on, each call follows exactly these animals
        (:class:`aptrack.track.propagate.IdentityPropagator`: single-object
        tracker, motion, pose and, with ``propagation.use_detector``, the
        detector's boxes matched to them); no new ids are made until
        :meth:`reset`. Returns the animals with their poses.
        """
        from aptrack.track.propagate import IdentityPropagator

        self.reset()
        if self.propagator is None:
            factory = self.sot_factory
            if factory is None and self.propagation.sot_weights:
                from aptrack.track.sot import SotFactory

                factory = self.sot_factory = SotFactory(self.propagation.sot_weights)
            self.propagator = IdentityPropagator(factory, self.propagation, self.tracker.motion, self.embedder,
                                                 self.tracker.sigmas)
        self._frames = 1
        self.last_detections = animals
        return self.propagator.start(frame, animals, self.estimate_pose)

    def estimate_pose(self, frame: np.ndarray, instances: Instances) -> Instances:
        """``instances`` with keypoints (unchanged without a pose stage or boxes), timed as ``pose``."""
        if self.pose is None or not len(instances):
            return instances
        with self.timer("pose"):
            return self.pose(frame, instances)

    def __call__(self, frame: np.ndarray, frame_index: int, boxes: Instances | None = None) -> Instances:
        """Process one (H, W, 3) uint8 BGR frame; returns the tracked animals.

        ``boxes`` replaces the detector on this frame (ground-truth or
        user-given boxes): they go through pose estimation and tracking.
        """
        detect = self._detect_now() or boxes is not None
        self._frames += 1
        self._since_detection = 0 if detect else self._since_detection + 1
        out = self._step(frame, frame_index, boxes, detect)
        if self.det_every == "auto":
            self._judge(out, detect)
        return out

    def _detect_now(self) -> bool:
        """Whether this frame runs the detector (every ``det_every`` frames, or by the cadence)."""
        if self.det_every != "auto":
            return self._frames % self.det_every == 0
        return (self._frames == 0 or self._unsure
                or self._since_detection + 1 >= self.cadence.max_interval)

    def _judge(self, out: Instances, detected: bool) -> None:
        """After a frame under ``--det-every auto``: is the next one to run the detector?"""
        if detected:
            self._detected_count, self._unsure = len(out), False
            return
        unsure = len(out) < self._detected_count
        if not unsure and len(out) and out.num_keypoints:
            unsure = float(out.keypoint_scores.mean(axis=1).min()) < self.cadence.min_keypoint_score
        self._unsure = unsure

    def _step(self, frame: np.ndarray, frame_index: int, boxes: Instances | None, detect: bool) -> Instances:
        if self.propagator is not None and self.propagator.started:
            found = boxes
            if found is None and detect and self.propagation.use_detector:
                found = self._detect(frame, frame_index, self.propagation.detector_flip_test)
            self.last_detections = found
            return self.propagator.step(frame, frame_index, self.estimate_pose, found, self.timer)
        if detect:
            if boxes is None:
                boxes = self._detect(frame, frame_index)
                if self.pose is not None:  # on an empty frame too: its Instances then carry K keypoints
                    with self.timer("pose"):
                        boxes = self.pose(frame, boxes)
            else:
                boxes = self.estimate_pose(frame, boxes)
            return self._track(frame, boxes)
        with self.timer("track"):
            predicted = self.tracker.predict_only(frame_index)
        return self.estimate_pose(frame, predicted)

    def _track(self, frame: np.ndarray, boxes: Instances) -> Instances:
        """The tracker's step on one frame's detections with their poses (looks added first)."""
        if self.embedder is not None:
            with self.timer("track"):
                boxes = self.embedder(frame, boxes)
        self.last_detections = boxes
        with self.timer("track"):
            return self.tracker.update(boxes)

    @property
    def batches_frames(self) -> bool:
        """Whether several frames can go through the networks together (:meth:`measure`): every frame
        is detected (``det_every`` 1), no known animals are carried, and the detector does not take
        the tracker's predictions (the background detector does)."""
        return (self.det_every == 1 and self.propagator is None
                and not getattr(self.detector, "uses_predictions", False))

    @property
    def streams(self) -> list[tuple]:
        """The (detector, pose estimator) pairs :meth:`measure` may use at the same time from
        several threads: this pipeline's own, then :attr:`more_streams`."""
        return [(self.detector, self.pose), *self.more_streams]

    def measure(self, frames: list[tuple[int, np.ndarray]], stream: int = 0) -> list[Instances]:
        """The detections with poses of several frames ``(frame_index, frame)`` (only when
        :attr:`batches_frames`): the detector on them together where it can (``detect_many``), the
        pose network on all their crops together. Give each to :meth:`track_measured` in order.

        ``stream`` picks the networks (an index into :attr:`streams`): calls with different
        streams may run at the same time on different threads; it touches nothing else of the
        pipeline but its timer."""
        detector, pose = self.streams[stream]
        with self.timer("detect"):
            many = getattr(detector, "detect_many", None)
            found = many(frames) if many is not None else [detector(f, i) for i, f in frames]
        if pose is None:
            return found
        with self.timer("pose"):
            many = getattr(pose, "estimate_many", None)
            items = [(f, d) for (_, f), d in zip(frames, found)]
            return many(items) if many is not None else [pose(f, d) for f, d in items]

    def track_measured(self, frame: np.ndarray, boxes: Instances) -> Instances:
        """One frame of :meth:`measure` through the tracker: what calling the pipeline on it gives."""
        self._frames += 1
        self._since_detection = 0
        return self._track(frame, boxes)


def build_detector(config: DetectorConfig, device: str = "cpu", background: BackgroundConfig = BackgroundConfig(),
                   animals: int | None = None, threads: int | None = None):
    """The animal detector a :class:`DetectorConfig` names (YOLO, or the background detector
    with ``background``'s settings, told the known number of ``animals``); returns (detector, info).
    ``threads``: a YOLO ONNX model's intra-op threads on the CPU (default: ONNX Runtime's choice)."""
    if config.kind == "background":
        from aptrack.detect.background import BackgroundDetector

        return BackgroundDetector(background, config.arena, animals), {"kind": "background", "arena": config.arena}
    from aptrack.core import hub
    from aptrack.detect.yolo import YoloAnimalDetector

    det_weights = hub.resolve(config.weights)
    detector = YoloAnimalDetector(det_weights.path, config, resolve_device(device), threads=threads)
    info = {"kind": "yolo", **det_weights.describe(), "arena": config.arena}
    if config.arena is not None:
        from aptrack.detect.background import ArenaFilter

        detector = ArenaFilter(detector, config.arena)
    return detector, info


def build_pose(config: PoseConfig, device: str = "cpu", threads: int | None = None):
    """The top-down pose estimator a :class:`PoseConfig` names (weights must be set).

    With ``config.backend`` ``onnxruntime`` (or ``auto`` on the CPU) the
    network is exported to ONNX once (cached under the weights cache, by the
    checkpoint's sha256) and run by ONNX Runtime, with ``threads`` intra-op
    threads (default: torch's thread count); an ``.onnx`` file
    (``aptrack export``) always is.

    Returns (estimator, info) where info holds the model name, file, sha256,
    source, layout, input size and backend.
    """
    from aptrack.core import hub
    from aptrack.models import get_preset, list_presets, load_checkpoint, preset_name_for
    from aptrack.pose.estimator import TopDownPoseEstimator

    device = resolve_device(device)
    if config.weights in list_presets() and not get_preset(config.weights).weights:
        raise WeightsError(f"model {config.weights} has no published weights: run a checkpoint of yours "
                           f"with --pose FILE --pose-config {config.weights}")
    pose_weights = hub.resolve(config.weights)
    backend = config.backend if config.backend != "auto" else "onnxruntime" if device == "cpu" else "torch"
    if pose_weights.path.suffix.lower() == ".onnx":
        from aptrack.models.onnxrt import OnnxPoseNetwork

        model = OnnxPoseNetwork(pose_weights.path, device, threads)
        preset, backend = model.preset, "onnxruntime"
    else:
        named = preset_name_for(config.weights, pose_weights.sha256, config.model)
        if named and not config.model and config.weights not in list_presets():
            log.info("pose weights %s are the published weights of %s", pose_weights.path, named)
        model, preset, _ = load_checkpoint(pose_weights.path, "cpu" if backend == "onnxruntime" else device,
                                           name=pose_weights.name, preset=get_preset(named) if named else None)
        if backend == "onnxruntime":
            from aptrack.models.onnxrt import OnnxPoseNetwork, cached_export, fits_onnx

            if config.backend == "auto" and not fits_onnx(model):
                log.info("%s is too large for one ONNX file: running it in torch", preset.name)
                backend = "torch"
        if backend == "onnxruntime":
            try:
                onnx_file = cached_export(model, preset, pose_weights.sha256, hub.cache_dir() / "onnx")
                model = OnnxPoseNetwork(onnx_file, device, threads)
            except (OutputError, RuntimeError) as exc:  # an unwritable cache, an op the exporter lacks
                if config.backend != "auto":
                    if isinstance(exc, OutputError):
                        raise
                    raise WeightsError(f"cannot export {preset.name} to ONNX ({str(exc).splitlines()[0][:160]}): "
                                       f"run it with --backend torch") from None
                log.warning("running %s in torch: no ONNX Runtime copy (%s)", preset.name, exc)
                backend = "torch"
    estimator = TopDownPoseEstimator(model, preset, config, "cpu" if backend == "onnxruntime" else device)
    return estimator, {**pose_weights.describe(), "model": preset.name, "layout": preset.layout.name,
                       "input_size": list(preset.input_size), "backend": backend}


def build_pipeline(config: PipelineConfig, device: str = "cpu", det_every: int | str = 1,
                   streams: int | str = 1):
    """Load the models named by ``config`` and compose a :class:`Pipeline`.

    ``streams`` > 1 (or ``auto``, :func:`resolve_streams`) loads that many copies of the detector
    and pose networks, each with its share of the CPU cores (intra-op threads; torch's too), for
    a run to measure several frames at once (:attr:`Pipeline.streams`): on a 2-core CPU two
    one-thread streams get more from the cores than one two-thread one. They apply when every
    frame is detected by YOLO (``det_every`` 1); otherwise one stream is loaded.

    Returns
    -------
    pipeline : Pipeline
    models : dict
        ``{"detector": {...}, "pose": {...} or None}`` with file, sha256 and source.
    """
    device = resolve_device(device)
    streams = resolve_streams(streams, device)
    if streams > 1 and (det_every != 1 or config.detector.kind != "yolo"):
        log.info("one stream: several apply when YOLO detects every frame (--det-every 1)")
        streams = 1
    threads = max(1, available_cores() // streams) if streams > 1 else None
    detector, det_info = build_detector(config.detector, device, config.background, config.tracker.max_animals,
                                        threads)
    models = {"detector": det_info, "pose": None}
    pose, layout = None, None
    if config.pose.weights:
        pose, models["pose"] = build_pose(config.pose, device, threads)
        layout = pose.layout
    else:
        log.warning("no pose weights are available: running detection + tracking only (--pose none)")
    tracker = PoseTracker(config.tracker, sigmas=None if layout is None else layout.sigmas)
    embedder = None
    if config.appearance.kind != "none":
        from aptrack.track.appearance import AppearanceEmbedder

        embedder = AppearanceEmbedder(config.appearance)
    pipeline = Pipeline(detector, tracker, pose, layout, det_every, config.propagation, embedder=embedder,
                        interpolation=config.interpolation, cadence=config.cadence)
    for _ in range(streams - 1):
        copy, _ = build_detector(config.detector, device, config.background, config.tracker.max_animals, threads)
        pipeline.more_streams.append((copy, None if pose is None else pose.for_stream(threads)))
    if threads is not None:
        import torch

        torch.set_num_threads(threads)  # a torch pose network is shared by the streams: each its share
        log.info("%d streams of %d thread(s) each", streams, threads)
    pipeline.models = models
    return pipeline, models
