"""Settings of the top-down pose estimator."""

from __future__ import annotations

from dataclasses import dataclass

from aptrack.core.errors import ConfigError

BACKENDS = ("auto", "torch", "onnxruntime")
"""What runs the pose network (``auto``: ONNX Runtime on the CPU, torch on a GPU)."""
PRECISIONS = ("auto", "fp32", "fp16")
"""How a torch pose network computes (``auto``: fp16 autocast on a GPU, fp32 on the CPU)."""


@dataclass(frozen=True)
class PoseConfig:
    """Top-down pose estimator settings.

    ``weights`` is a model name (``aptrack models``), a registry name, a
    checkpoint path, or ``None`` for no pose stage. The network, input size,
    normalisation, codec and keypoint layout come from the checkpoint's preset.
    ``model`` names the preset (``aptrack models``, or a preset YAML file) of a
    checkpoint that does not describe its own architecture, as mmpose's do; it
    is implied when ``weights`` is a model name. ``flip_test`` ``None``
    follows the model preset. ``backend``: ``torch``, ``onnxruntime`` (the
    network exported to ONNX once, cached, and run by ONNX Runtime: the same
    keypoints, the network about twice as fast on a CPU), or ``auto``, ONNX
    Runtime on the CPU and torch on a GPU. An ``.onnx`` file from ``aptrack
    export`` always runs in ONNX Runtime. ``precision``: ``fp16`` runs a torch
    network under CUDA autocast (half-precision matrix products and convolutions,
    fp32 outputs), ``fp32`` as it is, ``auto`` fp16 on a GPU and fp32 on the CPU
    (where autocast would only slow it). With ``flip_test``, the crops and their
    mirror images go through the network as one batch.
    """

    weights: str | None = None
    model: str | None = None
    box_padding: float = 1.25
    flip_test: bool | None = None
    min_box_score: float = 0.1
    batch_size: int = 32
    backend: str = "auto"
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"pose.precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'")
        if self.backend not in BACKENDS:
            raise ConfigError(f"pose.backend must be one of {', '.join(BACKENDS)}, got '{self.backend}'")
        if not self.box_padding > 0:
            raise ConfigError(f"pose.box_padding must be > 0, got {self.box_padding}")
        if not 0.0 <= self.min_box_score <= 1.0:
            raise ConfigError(f"pose.min_box_score must be in [0, 1], got {self.min_box_score}")
        if self.batch_size < 1:
            raise ConfigError(f"pose.batch_size must be >= 1, got {self.batch_size}")
