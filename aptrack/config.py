"""Configuration: YAML files loaded into frozen dataclasses.

Every threshold of the pipeline is a field here with its default; the presets
in ``pipelines/`` override them. Unknown keys are an error, so a typo in a
preset never passes silently.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PIPELINES_DIR = PROJECT_ROOT / "pipelines"
LAYOUTS_DIR = PROJECT_ROOT / "configs" / "layouts"
MAPPINGS_DIR = PROJECT_ROOT / "configs" / "mappings"
TRAIN_DIR = PROJECT_ROOT / "configs" / "train"

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


@dataclass(frozen=True)
class PoseConfig:
    """Top-down pose estimator settings.

    ``weights`` is a registry name, a path, or ``None`` for no pose stage. The
    network, input size and keypoint layout are read from the checkpoint.
    """

    weights: str | None = None
    box_padding: float = 1.25
    flip_test: bool = True
    min_box_score: float = 0.1
    batch_size: int = 32


@dataclass(frozen=True)
class TrackerConfig:
    """ByteTrack-style tracker settings (scores in [0, 1], costs are ``1 - similarity``).

    ``track_buffer`` is how many frames a lost track waits for its animal.
    ``min_hits`` is how many consecutive matched frames a new track needs
    before it gets an id (the first frame of a video is exempt).
    ``oks_weight`` mixes OKS into the similarity when both sides have at least
    ``min_common_keypoints`` keypoints scoring ``keypoint_score_threshold``.
    ``lost_motion_frames``: after this many frames lost, a track stops moving.
    ``new_track_threshold``: detections left over after matching that score at
    least this may start a track or recover a lost one, even below
    ``high_score_threshold``. ``lost_box_buffer``: lost tracks are looked for
    with boxes widened by this fraction of their size on each side (0 turns it
    off), accepting pairs up to ``lost_match_cost_threshold``.
    """

    high_score_threshold: float = 0.5
    low_score_threshold: float = 0.1
    new_track_threshold: float = 0.3
    match_cost_threshold: float = 0.8
    low_match_cost_threshold: float = 0.5
    unconfirmed_match_cost_threshold: float = 0.7
    track_buffer: int = 30
    min_hits: int = 3
    oks_weight: float = 0.1
    keypoint_score_threshold: float = 0.3
    min_common_keypoints: int = 3
    lost_motion_frames: int = 5
    lost_box_buffer: float = 0.3
    lost_match_cost_threshold: float = 0.7
    min_box_area: float = 10.0


@dataclass(frozen=True)
class DrawConfig:
    """What the annotated video shows."""

    keypoint_score_threshold: float = 0.3
    trail_length: int = 30
    line_thickness: int = 2
    keypoint_radius: int = 3


@dataclass(frozen=True)
class PipelineConfig:
    name: str = "default"
    layout: str = "ap10k"
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    pose: PoseConfig = field(default_factory=PoseConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    draw: DrawConfig = field(default_factory=DrawConfig)


def _build(cls, data: dict[str, Any], where: str, sections: dict | None = None):
    """Build the frozen dataclass ``cls`` from a mapping; nested sections by ``sections``."""
    sections = _SECTIONS if sections is None else sections
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(fields))}")
    values = {}
    for key, value in data.items():
        sub = sections.get((cls, key))
        if sub is not None:
            value = _build(sub, value, f"{where}.{key}", sections)
        elif isinstance(value, list):
            value = tuple(value)
        values[key] = value
    return cls(**values)


_SECTIONS = {
    (PipelineConfig, "detector"): DetectorConfig,
    (PipelineConfig, "pose"): PoseConfig,
    (PipelineConfig, "tracker"): TrackerConfig,
    (PipelineConfig, "draw"): DrawConfig,
}


def read_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None


def available_pipelines() -> list[str]:
    return sorted(p.stem for p in PIPELINES_DIR.glob("*.yaml"))


def load_pipeline(name_or_path: str | Path = "default") -> PipelineConfig:
    """Load a pipeline preset by name (``pipelines/NAME.yaml``) or by file path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PIPELINES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown pipeline preset '{name_or_path}'; "
                              f"available: {', '.join(available_pipelines())}")
    return _build(PipelineConfig, read_yaml(path), str(path))


@dataclass(frozen=True)
class KeypointLayout:
    """Names, flip pairs, skeleton and OKS sigmas of a keypoint set (0-based indices).

    ``upper_body`` lists the keypoints of the front half of the body (head and
    front legs); training's half-body augmentation crops either these or the
    rest. Empty disables half-body crops.
    """

    name: str
    keypoints: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    upper_body: tuple[int, ...] = ()

    def __post_init__(self):
        k = len(self.keypoints)
        if len(self.sigmas) != k:
            raise ConfigError(f"layout {self.name}: {len(self.sigmas)} sigmas for {k} keypoints")
        for a, b in (*self.flip_pairs, *self.skeleton):
            if not (0 <= a < k and 0 <= b < k):
                raise ConfigError(f"layout {self.name}: index pair ({a}, {b}) out of range 0..{k - 1}")
        if any(not 0 <= i < k for i in self.upper_body):
            raise ConfigError(f"layout {self.name}: upper_body index out of range 0..{k - 1}")

    @property
    def lower_body(self) -> tuple[int, ...]:
        """Keypoints not in ``upper_body`` (empty when ``upper_body`` is)."""
        if not self.upper_body:
            return ()
        return tuple(i for i in range(self.num_keypoints) if i not in self.upper_body)

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    def to_dict(self) -> dict:
        return {"name": self.name, "keypoints": list(self.keypoints),
                "flip_pairs": [list(p) for p in self.flip_pairs],
                "skeleton": [list(p) for p in self.skeleton], "sigmas": list(self.sigmas),
                "upper_body": list(self.upper_body)}

    @classmethod
    def from_dict(cls, data: dict) -> "KeypointLayout":
        try:
            return cls(name=str(data["name"]), keypoints=tuple(data["keypoints"]),
                       flip_pairs=tuple(tuple(int(i) for i in p) for p in data["flip_pairs"]),
                       skeleton=tuple(tuple(int(i) for i in p) for p in data["skeleton"]),
                       sigmas=tuple(float(s) for s in data["sigmas"]),
                       upper_body=tuple(int(i) for i in data.get("upper_body", ())))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed keypoint layout: {exc}") from None


def load_layout(name_or_path: str | Path = "ap10k") -> KeypointLayout:
    """Load a keypoint layout by name (``configs/layouts/NAME.yaml``) or path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = LAYOUTS_DIR / f"{name_or_path}.yaml"
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a layout must be a mapping")
    return KeypointLayout.from_dict(data)
