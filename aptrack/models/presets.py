"""Model presets: everything needed to build and run a pose model by name, as data.

A preset is a YAML file in ``configs/models/`` (packaged inside an installed
aptrack), one per model name, like a pretrained config in timm. It holds the
architecture and its arguments, the input size, the pixel normalisation and
channel order, the heatmap codec and its parameters, test-time flip and
heatmap shift, the keypoint layout (names, flip pairs, skeleton, OKS sigmas),
the weights (URL or committed file, sha256, licence) and the AP its authors
report.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aptrack.core import resources
from aptrack.core.config import read_yaml
from aptrack.core.errors import ConfigError
from aptrack.core.layout import KeypointLayout, load_layout

IMAGENET_MEAN_RGB_255 = (123.675, 116.28, 103.53)
"""ImageNet channel means, RGB, in 0-255 pixel units (mmpose's data preprocessor values)."""
IMAGENET_STD_RGB_255 = (58.395, 57.12, 57.375)
"""ImageNet channel standard deviations, RGB, in 0-255 pixel units."""

COLOR_ORDERS = ("rgb", "bgr")
WARPS = ("aptrack", "msra", "udp")
"""How a crop is cut: aptrack's pixel-centre warp, or mmpose's MSRA (``get_warp_matrix``) or UDP one."""


@dataclass(frozen=True)
class Preset:
    """How to build and run one pose model.

    Parameters
    ----------
    name : str
        The model name (``aptrack models`` lists them).
    family : str
        A key of :data:`aptrack.models.FAMILIES`.
    architecture : dict
        Keyword arguments of the family's constructor (besides ``num_keypoints``).
    layout : KeypointLayout
        The keypoints the model predicts, in its own order.
    input_size : (int, int)
        Crop ``width, height`` in pixels.
    codec : dict
        ``type`` (a codec name of :mod:`aptrack.pose.codecs`) and its parameters.
    mean, std : (3,) floats
        Per-channel normalisation in 0-255 pixel units, in ``color`` order.
    color : {"rgb", "bgr"}
        Channel order the network takes (frames arrive as BGR).
    flip_test : bool
        Whether test time averages with the horizontally flipped crop by default.
    flip_shift : bool
        Whether the flipped heatmaps are shifted one cell right before
        averaging (mmpose's ``shift_heatmap``).
    warp : {"aptrack", "msra", "udp"}
        How crops are cut from boxes and keypoints mapped back (see :data:`WARPS`).
    weights : str or None
        Registry name of the weights (``aptrack.core.hub``); a preset with its own
        ``weights`` section registers them under its name.
    license : str
    reported : dict
        The accuracy its authors report, e.g. ``{"AP": 0.722, "dataset": ...}``.
    description : str
    """

    name: str
    family: str
    architecture: dict
    layout: KeypointLayout
    input_size: tuple[int, int]
    codec: dict
    mean: tuple[float, float, float] = IMAGENET_MEAN_RGB_255
    std: tuple[float, float, float] = IMAGENET_STD_RGB_255
    color: str = "rgb"
    flip_test: bool = True
    flip_shift: bool = False
    warp: str = "aptrack"
    weights: str | None = None
    license: str = ""
    reported: dict = field(default_factory=dict)
    description: str = ""

    def __post_init__(self):
        if self.color not in COLOR_ORDERS:
            raise ConfigError(f"model {self.name}: color must be one of {', '.join(COLOR_ORDERS)}, "
                              f"got '{self.color}'")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"model {self.name}: mean and std need 3 values each, std > 0")
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise ConfigError(f"model {self.name}: input_size must be [width, height], got {self.input_size}")
        if self.warp not in WARPS:
            raise ConfigError(f"model {self.name}: warp must be one of {', '.join(WARPS)}, got '{self.warp}'")
        if "type" not in self.codec:
            raise ConfigError(f"model {self.name}: codec needs a type")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the layout in full), as stored in a checkpoint."""
        return {"name": self.name, "family": self.family, "architecture": dict(self.architecture),
                "layout": self.layout.to_dict(), "input_size": list(self.input_size),
                "codec": dict(self.codec), "mean": list(self.mean), "std": list(self.std),
                "color": self.color, "flip_test": self.flip_test, "flip_shift": self.flip_shift, "warp": self.warp,
                "weights": self.weights, "license": self.license, "reported": dict(self.reported),
                "description": self.description}

    @classmethod
    def from_dict(cls, data: dict, where: str = "preset") -> "Preset":
        """A preset from plain data; ``layout`` is a layout name or a full layout mapping."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: a model preset must be a mapping")
        known = {"name", "family", "architecture", "layout", "input_size", "codec", "mean", "std", "color",
                 "flip_test", "flip_shift", "warp", "weights", "license", "reported", "description"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        missing = sorted({"name", "family", "architecture", "layout", "input_size", "codec"} - set(data))
        if missing:
            raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
        layout = data["layout"]
        layout = KeypointLayout.from_dict(layout) if isinstance(layout, dict) else load_layout(str(layout))
        weights = data.get("weights")
        if isinstance(weights, dict):  # a weights section of its own: registered under the model's name
            weights = str(data["name"])
        try:
            return cls(name=str(data["name"]), family=str(data["family"]),
                       architecture=dict(data["architecture"] or {}), layout=layout,
                       input_size=tuple(int(v) for v in data["input_size"]), codec=dict(data["codec"]),
                       mean=tuple(float(v) for v in data.get("mean", IMAGENET_MEAN_RGB_255)),
                       std=tuple(float(v) for v in data.get("std", IMAGENET_STD_RGB_255)),
                       color=str(data.get("color", "rgb")), flip_test=bool(data.get("flip_test", True)),
                       flip_shift=bool(data.get("flip_shift", False)), warp=str(data.get("warp", "aptrack")),
                       weights=weights,
                       license=str(data.get("license", "")), reported=dict(data.get("reported") or {}),
                       description=str(data.get("description", "")))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: malformed model preset ({exc})") from None

    def with_(self, **changes) -> "Preset":
        return replace(self, **changes)


def list_presets() -> list[str]:
    """Names of the model presets, sorted."""
    return resources.names("models")


def get_preset(name_or_path: str | Path) -> Preset:
    """A model preset by name (``configs/models/NAME.yaml``) or YAML path.

    Raises
    ------
    ConfigError
        If the name is unknown or the file malformed.
    """
    path = resources.find("models", name_or_path)
    return Preset.from_dict(read_yaml(path), str(path))
