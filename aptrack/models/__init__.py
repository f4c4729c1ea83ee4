"""Pose networks by name: presets as data, model families, checkpoints.

>>> from aptrack.models import create_model, list_models
>>> list_models()                                    # doctest: +SKIP
['aptrack-pose-mnv2-256-ft4']
>>> model = create_model("aptrack-pose-mnv2-256-ft4", pretrained=True)  # doctest: +SKIP
"""

from aptrack.models.checkpoint import build_checkpoint, load_checkpoint
from aptrack.models.factory import create_model, model_card_rows, preset_for_weights, preset_name_for
from aptrack.models.presets import Preset, get_preset, list_presets
from aptrack.models.registry import FAMILIES, build_network, count_flops, count_parameters

list_models = list_presets

__all__ = ["FAMILIES", "Preset", "build_checkpoint", "build_network", "count_flops", "count_parameters", "create_model",
           "get_preset", "list_models", "list_presets", "load_checkpoint", "model_card_rows",
           "preset_for_weights", "preset_name_for"]
