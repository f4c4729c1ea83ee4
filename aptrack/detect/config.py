"""Settings of the YOLO animal detector."""

from __future__ import annotations

from dataclasses import dataclass

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
