"""Settings of the top-down pose estimator."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PoseConfig:
    """Top-down pose estimator settings.

    ``weights`` is a model name (``aptrack models``), a registry name, a
    checkpoint path, or ``None`` for no pose stage. The network, input size,
    normalisation, codec and keypoint layout come from the checkpoint's preset.
    ``model`` names the preset (``aptrack models``, or a preset YAML file) of a
    checkpoint that does not describe its own architecture, as mmpose's do; it
    is implied when ``weights`` is a model name. ``flip_test`` ``None``
    follows the model preset.
    """

    weights: str | None = None
    model: str | None = None
    box_padding: float = 1.25
    flip_test: bool | None = None
    min_box_score: float = 0.1
    batch_size: int = 32
