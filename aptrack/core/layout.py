"""Keypoint layouts: names, flip pairs, skeleton and OKS sigmas, as data.

Layouts live as YAML files (``configs/layouts/NAME.yaml`` in a checkout, the
same files inside an installed package); :func:`load_layout` reads one by name
or path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aptrack.core import resources
from aptrack.core.config import read_yaml
from aptrack.core.errors import ConfigError


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
    path = resources.find("layouts", name_or_path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a layout must be a mapping")
    return KeypointLayout.from_dict(data)
