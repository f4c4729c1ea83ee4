"""Settings of the YOLO animal detector."""

from __future__ import annotations

from dataclasses import dataclass

from aptrack.core.errors import ConfigError

COCO_ANIMAL_CLASSES = tuple(range(14, 24))
"""COCO class ids 14-23: bird, cat, dog, horse, sheep, cow, elephant, bear, zebra, giraffe."""


@dataclass(frozen=True)
class DetectorConfig:
    """Ultralytics YOLO detector settings.

    ``weights`` is a registry name (see ``weights/registry.yaml``) or a path.
    ``classes`` are the model's class ids merged into one "animal" class
    (``None`` keeps every class). ``score_threshold`` is low on purpose: the
    tracker's second stage uses low-score boxes.
    """

    weights: str = "yolov8n"
    classes: tuple[int, ...] | None = COCO_ANIMAL_CLASSES
    score_threshold: float = 0.1
    nms_iou_threshold: float = 0.6
    image_size: int = 640
    max_detections: int = 100

    def __post_init__(self) -> None:
        for name in ("score_threshold", "nms_iou_threshold"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"detector.{name} must be in [0, 1], got {value}")
        if self.image_size < 32 or self.image_size % 32:
            raise ConfigError(f"detector.image_size must be a multiple of 32 from 32 up, got {self.image_size}")
        if self.max_detections < 1:
            raise ConfigError(f"detector.max_detections must be >= 1, got {self.max_detections}")
        if self.classes is not None and any(int(c) < 0 for c in self.classes):
            raise ConfigError(f"detector.classes must be class ids >= 0, got {list(self.classes)}")


@dataclass(frozen=True)
class CadenceConfig:
    """When ``--det-every auto`` runs the detector (the ``cadence`` section of a pipeline).

    The detector runs on the first frame, then again when ``max_interval``
    frames have passed since it last ran, or on the frame after one where the
    tracker's predicted animals look unsure: fewer animals than the detector
    last gave, or an animal whose pose (estimated in its predicted box) has a
    mean keypoint score below ``min_keypoint_score``.
    """

    max_interval: int = 5
    min_keypoint_score: float = 0.5

    def __post_init__(self) -> None:
        if self.max_interval < 1:
            raise ConfigError(f"cadence.max_interval must be >= 1, got {self.max_interval}")
        if not 0.0 <= self.min_keypoint_score <= 1.0:
            raise ConfigError(f"cadence.min_keypoint_score must be in [0, 1], got {self.min_keypoint_score}")
