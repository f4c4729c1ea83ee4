"""Settings of the animal detectors: Ultralytics YOLO, and background subtraction for fixed cameras."""

from __future__ import annotations

from dataclasses import dataclass

from aptrack.core.errors import ConfigError

COCO_ANIMAL_CLASSES = tuple(range(14, 24))
"""COCO class ids 14-23: bird, cat, dog, horse, sheep, cow, elephant, bear, zebra, giraffe."""


DETECTOR_KINDS = ("yolo", "background")


@dataclass(frozen=True)
class DetectorConfig:
    """Ultralytics YOLO detector settings.

    ``kind``: ``yolo``, or ``background`` for a fixed camera (:class:`BackgroundConfig`,
    ``--detector background``). ``arena``: where animals are looked for, for
    either kind: null (the whole frame), ``auto`` (the arena found in the
    background, background detector only), ``x,y,w,h`` in pixels, or a mask
    image (non-zero inside) of the frame's size; YOLO boxes whose centre lies
    outside are dropped.
    ``weights`` is a registry name (see ``weights/registry.yaml``) or a path.
    ``classes`` are the model's class ids merged into one "animal" class
    (``None`` keeps every class). ``score_threshold`` is low on purpose: the
    tracker's second stage uses low-score boxes.
    """

    kind: str = "yolo"
    arena: str | None = None
    weights: str = "yolov8n"
    classes: tuple[int, ...] | None = COCO_ANIMAL_CLASSES
    score_threshold: float = 0.1
    nms_iou_threshold: float = 0.6
    image_size: int = 640
    max_detections: int = 100

    def __post_init__(self) -> None:
        if self.kind not in DETECTOR_KINDS:
            raise ConfigError(f"detector.kind must be one of {', '.join(DETECTOR_KINDS)}, got {self.kind!r}")
        if self.arena is not None and not isinstance(self.arena, str):
            raise ConfigError(f"detector.arena must be auto, x,y,w,h or a mask image, got {self.arena!r}")
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


POLARITIES = ("auto", "dark", "bright")


@dataclass(frozen=True)
class BackgroundConfig:
    """The background-subtraction detector for a fixed camera (the ``background`` section).

    The background is the per-pixel median of ``sample_frames`` frames spread
    over the whole video (grey levels, smoothed by a ``blur`` px Gaussian).
    ``normalise_light``: every frame (samples too) is first scaled so that its
    median grey level is the samples' median, as light drifts over hours.
    ``polarity``: the animals are ``dark`` or ``bright`` against it, or
    ``auto`` (told from the samples). A pixel is foreground when it differs
    from the background, in that direction, by at least ``threshold`` grey
    levels, or by ``noise_sigmas`` times the samples' noise (robust standard
    deviation) when that is more. Foreground is opened (``open_px``) and
    closed (``close_px``), then split into connected blobs (a blob's box holds
    its pixels that differ by at least ``box_level`` of its strong difference,
    the 95th percentile over the blob: the blurred edge left out); blobs under
    ``min_area`` px^2 are dropped, at most ``max_detections`` kept (largest
    first).

    A blob's score is the geometric mean of its contrast (mean difference
    over ``full_contrast`` times the threshold, at most 1) and its size
    (area over the typical animal area measured on the samples, at most 1).
    A blob of at least ``split_area_ratio`` typical animals, or holding two or
    more of the tracker's predicted centres and at least
    ``seeded_split_area_ratio`` typical animals, is split by k-means on its
    pixels (seeded by those centres; at most ``max_split`` parts).

    Still animals: when the median background finds an animal in fewer than
    ``min_found_fraction`` of the samples, or fewer than ``--animals`` in a
    typical sample, the missing animals may sit still in the background. The
    arena floor is the background's morphological closing (opening for
    bright animals) over ``still_kernel_fraction`` of the arena's shorter
    side; blobs of the background against it, within ``still_area_range``
    times the typical moving animal's area (either way), are taken for still
    animals, and the frames are compared with the floor there.

    Bad input: a median residual over ``moving_camera_fraction`` of the
    arena's pixels (a camera that moves, or light that changes) and samples
    with no animal at all even against the floor end the run with one line.
    """

    sample_frames: int = 60
    blur: int = 5
    normalise_light: bool = True
    polarity: str = "auto"
    threshold: float = 25.0
    noise_sigmas: float = 6.0
    open_px: int = 3
    close_px: int = 7
    min_area: float = 80.0
    box_level: float = 0.35
    max_detections: int = 50
    full_contrast: float = 2.5
    split_area_ratio: float = 1.6
    seeded_split_area_ratio: float = 1.25
    max_split: int = 4
    min_found_fraction: float = 0.5
    still_kernel_fraction: float = 0.3
    still_area_range: float = 3.0
    moving_camera_fraction: float = 0.25

    def __post_init__(self) -> None:
        if self.polarity not in POLARITIES:
            raise ConfigError(f"background.polarity must be one of {', '.join(POLARITIES)}, got {self.polarity!r}")
        if not 3 <= self.sample_frames <= 1000:
            raise ConfigError(f"background.sample_frames must be in [3, 1000], got {self.sample_frames}")
        for name in ("blur", "open_px", "close_px"):
            value = getattr(self, name)
            if not 0 <= value <= 51:
                raise ConfigError(f"background.{name} must be in [0, 51] pixels, got {value}")
        if not 1.0 <= self.threshold <= 255.0:
            raise ConfigError(f"background.threshold must be in [1, 255] grey levels, got {self.threshold}")
        for name in ("noise_sigmas", "min_area", "full_contrast"):
            if getattr(self, name) < 0:
                raise ConfigError(f"background.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("split_area_ratio", "seeded_split_area_ratio", "still_area_range"):
            if getattr(self, name) < 1.0:
                raise ConfigError(f"background.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_detections", "max_split"):
            if getattr(self, name) < 1:
                raise ConfigError(f"background.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("min_found_fraction", "still_kernel_fraction", "moving_camera_fraction", "box_level"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"background.{name} must be in [0, 1], got {getattr(self, name)}")
