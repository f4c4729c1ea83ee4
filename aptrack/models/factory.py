"""``create_model``: a pose network by model name, with its weights if asked (as timm's
``create_model``), and the rows of ``aptrack models``."""

from __future__ import annotations

import functools
import json

import torch
from torch import nn

from aptrack.core import hub
from aptrack.core.errors import ConfigError, WeightsError
from aptrack.models.checkpoint import load_checkpoint
from aptrack.models.presets import Preset, get_preset, list_presets
from aptrack.models.registry import build_network, count_flops, count_parameters


def create_model(preset: str | Preset, pretrained: bool = False, device: str = "cpu") -> nn.Module:
    """The network of a model preset, in eval mode.

    Parameters
    ----------
    preset : str or Preset
        A preset name (``aptrack models`` lists them), a preset YAML path, or a Preset.
    pretrained : bool
        Load the preset's weights (found through the weight registry: committed
        file, cache, offline mirror, or download, sha256-checked).
    device : str

    Raises
    ------
    ConfigError
        If the preset or its family is unknown, or its architecture arguments are wrong.
    WeightsError
        If ``pretrained`` and the weights cannot be found or do not fit.
    """
    preset = preset if isinstance(preset, Preset) else get_preset(preset)
    if not pretrained:
        return build_network(preset).to(device)
    if not preset.weights:
        raise ConfigError(f"model {preset.name} has no published weights")
    model, _, _ = load_checkpoint(hub.resolve(preset.weights).path, device, preset.name)
    return model


def network_size(preset: Preset) -> tuple[int, float]:
    """Parameters and multiply-adds (G) per crop of ``preset``'s network.

    Counted on the meta device (shapes only: no memory, no initialisation
    maths) and remembered per preset for the life of the process.
    """
    return _network_size(json.dumps(preset.to_dict(), sort_keys=True))


@functools.lru_cache(maxsize=None)
def _network_size(preset_json: str) -> tuple[int, float]:
    preset = Preset.from_dict(json.loads(preset_json))
    with torch.device("meta"):
        model = build_network(preset)
    return count_parameters(model), count_flops(model, preset.input_size)["gmacs"]


def preset_name_for(ref: str, sha256: str, model: str | None = None) -> str | None:
    """The preset to load pose weights ``ref`` (resolved, digest ``sha256``) with, or None.

    ``model`` (``--pose-config``) when given; else ``ref`` itself when it is a
    zoo name; else the model whose published weights these are
    (:func:`preset_for_weights`). None leaves it to the file (an aptrack
    checkpoint describes its own).
    """
    return model or (ref if ref in list_presets() else None) or preset_for_weights(sha256)


def preset_for_weights(sha256: str) -> str | None:
    """The model whose published weights have this sha256, or None.

    A downloaded mmpose checkpoint does not describe its architecture, but its
    digest starts with the prefix its model preset registers (mmpose puts the
    first 8 hex digits in the file name), so ``--pose FILE`` needs no
    ``--pose-config`` for a published file. With several matches (never the
    case for the shipped presets) the first name in sorted order is taken.
    """
    registry = hub.load_registry()
    digest = sha256.lower()
    for name in list_presets():
        entry = registry.get(name)
        if entry is not None and entry.url and digest.startswith(entry.sha256.lower()):
            return name
    return None


def model_card_rows() -> list[dict]:
    """One row per model preset for ``aptrack models``.

    Each row: ``name``, ``family``, ``input_size`` (w, h), ``params_m``
    (millions), ``gflops`` (multiply-adds per crop, in G, as mmpose's tables
    count them), ``reported_ap`` and ``reported_dataset`` (None when not
    reported), and ``weights``: where the weights are (``project``, ``cache``,
    ``mirror``), or ``download`` (a URL is known), ``missing`` or ``corrupt``; ``none`` when
    no weights are published for the preset (an architecture to load one's own checkpoint into).
    """
    registry = hub.load_registry()
    rows = []
    for name in list_presets():
        preset = get_preset(name)
        params, gmacs = network_size(preset)
        entry = registry.get(preset.weights) if preset.weights else None
        where = "missing" if preset.weights else "none"
        if entry is not None:
            try:
                found = hub.local_copy(entry)
            except WeightsError:
                found, where = None, "corrupt"
            if found is not None:
                where = found.source
            elif where != "corrupt" and entry.url:
                where = "download"
        rows.append({"name": name, "family": preset.family, "input_size": list(preset.input_size),
                     "params_m": params / 1e6, "gflops": gmacs,
                     "reported_ap": preset.reported.get("AP"), "reported_dataset": preset.reported.get("dataset"),
                     "weights": where})
    return rows
