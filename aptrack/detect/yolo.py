"""Animal detector: Ultralytics YOLO with the animal classes merged into one."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from aptrack.core.errors import WeightsError
from aptrack.core.instances import Instances
from aptrack.detect.config import DetectorConfig

log = logging.getLogger(__name__)

ANIMAL_LABEL = 0
"""Label of the merged "animal" class in :class:`Instances`."""


def _import_yolo():
    # Never let Ultralytics install packages or reach its hub from inside aptrack.
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    from ultralytics import YOLO
    return YOLO


class YoloAnimalDetector:
    """Detect animals in BGR frames with any Ultralytics detection weights (.pt, .onnx, ...).

    Detections of the configured classes become label 0 ("animal"); the model's
    class name (e.g. "dog") is kept in ``Instances.categories``. NMS is
    class-agnostic, so one animal seen as both "dog" and "cat" gives one box.

    Parameters
    ----------
    weights : str or Path
        A weights file Ultralytics can load.
    config : DetectorConfig
    device : str
        ``"cpu"`` or ``"cuda"``.
    fast : bool
        After the first frame, call the set-up predictor's steps directly
        instead of ``predict`` (same boxes, less per-frame overhead).
    threads : int, optional
        Intra-op threads of an ONNX Runtime model on the CPU (one stream of
        several, ``aptrack run --streams``); by default ONNX Runtime's own
        choice (one per core), as Ultralytics makes it.
    """

    def __init__(self, weights: str | Path, config: DetectorConfig = DetectorConfig(),
                 device: str = "cpu", fast: bool = True, threads: int | None = None):
        self.config = config
        self.device = device
        self.weights = Path(weights)
        self.threads = threads
        YOLO = _import_yolo()
        try:
            self.model = YOLO(str(weights), task="detect")
            names = dict(self.model.names)
        except Exception as exc:  # any loader failure means the file is not usable weights
            raise WeightsError(f"cannot load detector weights {weights}: "
                               f"{exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                               ) from None
        if config.classes is None:
            self.class_ids = None
        else:
            missing = [c for c in config.classes if c not in names]
            if missing:
                raise WeightsError(f"detector weights {weights} have no class id(s) {missing}; "
                                   f"they are not COCO weights (set detector.classes in the pipeline)")
            self.class_ids = list(config.classes)
        self.names = names
        self.fast = fast
        self._fast_ready = False

    def _predict(self, frame: np.ndarray):
        """Ultralytics' full ``predict``: (xyxy, scores, class ids) as numpy arrays."""
        cfg = self.config
        result = self.model.predict(
            frame, conf=cfg.score_threshold, iou=cfg.nms_iou_threshold, imgsz=cfg.image_size,
            classes=self.class_ids, agnostic_nms=True, max_det=cfg.max_detections,
            device=self.device, verbose=False)[0]
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return np.zeros((0, 4)), np.zeros(0), np.zeros(0, int)
        return (boxes.xyxy.cpu().numpy(), boxes.conf.cpu().numpy(),
                boxes.cls.cpu().numpy().astype(int))

    def _predict_fast(self, frame: np.ndarray):
        """The same steps as ``predict`` on a predictor that is already set up:
        letterbox, network, NMS, boxes back to frame pixels. It skips the
        per-call source and dataset set-up and the Results objects, which cost
        several milliseconds a frame on a CPU."""
        return self._predict_batch([frame])[0]

    def _predict_batch(self, frames: list[np.ndarray]) -> list[tuple]:
        """:meth:`_predict_fast` of several frames in one forward pass (frames of one size)."""
        from ultralytics.utils import nms, ops

        cfg = self.config
        predictor = self.model.predictor
        im = predictor.preprocess(list(frames))
        preds = predictor.inference(im)
        dets = nms.non_max_suppression(
            preds, cfg.score_threshold, cfg.nms_iou_threshold, self.class_ids, True,
            max_det=cfg.max_detections, nc=0, end2end=getattr(predictor.model, "end2end", False))
        out = []
        for det, frame in zip(dets, frames):
            if len(det) == 0:
                out.append((np.zeros((0, 4)), np.zeros(0), np.zeros(0, int)))
                continue
            xyxy = ops.scale_boxes(im.shape[2:], det[:, :4].clone(), frame.shape[:2])
            out.append((xyxy.cpu().numpy(), det[:, 4].cpu().numpy(), det[:, 5].cpu().numpy().astype(int)))
        return out

    @property
    def takes_batches(self) -> bool:
        """Whether several frames can go through the network in one pass: a PyTorch model (an ONNX
        or TensorRT export usually has its batch size fixed at 1), once the predictor is set up."""
        predictor = getattr(self.model, "predictor", None)
        return self._fast_ready and getattr(getattr(predictor, "model", None), "format", None) == "pt"

    def detect_many(self, frames: list[tuple[int, np.ndarray]]) -> list[Instances]:
        """Detect animals in several frames ``(frame_index, frame)``: in one forward pass where the
        model :attr:`takes_batches`, else one frame after another. Same results as calling it per frame."""
        if not frames or not self.takes_batches or len({f.shape for _, f in frames}) > 1:
            return [self(frame, index) for index, frame in frames]
        return [self._instances(found, index)
                for found, (index, _) in zip(self._predict_batch([f for _, f in frames]), frames)]

    def __call__(self, frame: np.ndarray, frame_index: int = 0) -> Instances:
        """Detect animals in one frame.

        Parameters
        ----------
        frame : (H, W, 3) uint8, BGR
        frame_index : int

        Returns
        -------
        Instances with boxes, scores, label 0 and species names; no keypoints.
        """
        if self._fast_ready:
            found = self._predict_fast(frame)
        else:
            found = self._predict(frame)  # also sets the predictor up
            self._fast_ready = self.fast and self._fast_path_available()
            if self.threads is not None:
                self._set_session_threads(self.threads)
        return self._instances(found, frame_index)

    def _set_session_threads(self, threads: int) -> bool:
        """Rebuild the predictor's ONNX Runtime CPU session with ``threads`` intra-op threads, its
        workers sleeping between runs (several streams share the cores). Returns whether it did:
        other model formats, GPU sessions and Ultralytics versions that keep the session
        elsewhere are left as they are."""
        backend = getattr(getattr(self.model, "predictor", None), "model", None)
        holder = getattr(backend, "backend", backend)  # Ultralytics >= 8.4 keeps it on a backend object
        session = getattr(holder, "session", None)
        try:
            import onnxruntime as ort
        except ImportError:
            return False
        if not isinstance(session, ort.InferenceSession) or session.get_providers() != ["CPUExecutionProvider"]:
            log.debug("detector %s: no ONNX Runtime CPU session to give %d threads", self.weights.name, threads)
            return False
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        holder.session = ort.InferenceSession(str(self.weights), options, providers=["CPUExecutionProvider"])
        return True

    def _instances(self, found: tuple, frame_index: int) -> Instances:
        """Instances of one frame's ``(xyxy, scores, classes)``."""
        xyxy, scores, cls = found
        if len(xyxy) == 0:
            return Instances.empty(frame_index=frame_index)
        return Instances(
            boxes_xyxy=xyxy,
            scores=scores,
            labels=np.full(len(xyxy), ANIMAL_LABEL),
            categories=[self.names.get(c, str(c)) for c in cls],
            frame_index=frame_index,
        )

    def _fast_path_available(self) -> bool:
        predictor = getattr(self.model, "predictor", None)
        try:
            from ultralytics.utils import nms, ops  # noqa: F401
        except ImportError:
            return False
        ok = predictor is not None and all(hasattr(predictor, a) for a in ("preprocess", "inference"))
        if not ok:
            log.info("this Ultralytics version has no reusable predictor; using predict() per frame")
        return ok
