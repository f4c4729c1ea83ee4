"""Self-describing pose checkpoints.

A checkpoint is one ``torch.save`` dict that carries everything needed to
rebuild and run the network, so weights never depend on a config file:

``format``      ``"aptrack-pose"``
``version``     2
``model``       the model name (its preset's name)
``preset``      the whole preset as data (:meth:`Preset.to_dict`): architecture,
                input size, normalisation, codec, flip, keypoint layout
``state_dict``  the network's parameters (floating-point tensors may be fp16)
``meta``        free-form provenance (data, command, metrics)

Version 1 files (aptrack 0.1's, every stage of the first default model) have
``arch``, ``codec`` and ``layout`` instead of ``model`` and ``preset``; they
load as a SimpleBaseline preset with ImageNet normalisation.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aptrack.core.errors import ConfigError, WeightsError
from aptrack.core.layout import KeypointLayout
from aptrack.models.presets import Preset
from aptrack.models.registry import build_network

CHECKPOINT_FORMAT = "aptrack-pose"
CHECKPOINT_VERSION = 2
READABLE_VERSIONS = (1, 2)


def build_checkpoint(model: nn.Module, preset: Preset, meta: dict | None = None,
                     half: bool = False) -> dict[str, Any]:
    """The checkpoint dict of ``model`` built from ``preset``.

    ``half`` stores floating-point tensors as fp16 (inference weights: half the
    file; they load back into the fp32 network).
    """
    state = model.state_dict()
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": preset.name,
            "preset": preset.to_dict(), "state_dict": state, "meta": dict(meta or {})}


def preset_from_v1(ckpt: dict, name: str) -> Preset:
    """The preset a version 1 checkpoint describes (SimpleBaseline, ImageNet normalisation, RGB)."""
    codec = ckpt["codec"]
    return Preset(name=name, family="simplebaseline", architecture=dict(ckpt["arch"]),
                  layout=KeypointLayout.from_dict(ckpt["layout"]),
                  input_size=tuple(int(v) for v in codec["input_size"]),
                  codec={"type": "aptrack-heatmap", "heatmap_size": list(codec["heatmap_size"]),
                         "sigma": float(codec["sigma"]), "blur_kernel": int(codec.get("blur_kernel", 11))})


UNREADABLE_TORCH_FILE = (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError,
                         IndexError, KeyError)
"""What ``torch.load(weights_only=True)`` raises on a file that is not a torch file (the
weights-only unpickler raises the last two on some garbage)."""


def _torch_load(path: str | Path):
    """A torch file's content, tensors and plain data only (``weights_only``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except UNREADABLE_TORCH_FILE as exc:
        raise WeightsError(f"cannot read pose weights {path}: not a torch checkpoint "
                           f"({exc.__class__.__name__})") from None


def _check_aptrack(ckpt, path) -> dict:
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"pose weights {path} are not an aptrack pose checkpoint "
                           f"(expected format '{CHECKPOINT_FORMAT}'); for mmpose's checkpoints name their "
                           f"model with --pose-config NAME (aptrack models lists them)")
    if ckpt.get("version") not in READABLE_VERSIONS:
        raise WeightsError(f"pose weights {path} have checkpoint version {ckpt.get('version')}, "
                           f"this aptrack reads versions {', '.join(map(str, READABLE_VERSIONS))}")
    return ckpt


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict of ``path`` (tensors only: ``weights_only``), checked for format and version.

    Raises
    ------
    WeightsError
        If it is not a torch file or not an aptrack pose checkpoint this version reads.
    """
    return _check_aptrack(_torch_load(path), path)


def first_mismatch(expected: dict, given: dict) -> str | None:
    """The first difference between a network's state dict and a checkpoint's, in words, or None.

    Names the first missing key, else the first unexpected one, else the first
    tensor whose shape differs (and how many more of the same kind there are).
    """
    def first(keys, what):
        more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
        return f"{what} '{keys[0]}'{more}"

    missing = [k for k in expected if k not in given]
    if missing:
        return first(missing, "missing key")
    unexpected = [k for k in given if k not in expected]
    if unexpected:
        return first(unexpected, "unexpected key")
    shapes = [k for k in expected if tuple(expected[k].shape) != tuple(given[k].shape)]
    if shapes:
        k = shapes[0]
        return first(shapes, "shape mismatch at") + (f": {tuple(given[k].shape)} in the file, "
                                                      f"{tuple(expected[k].shape)} in the network")
    return None


def load_checkpoint(path: str | Path, device: str = "cpu", name: str | None = None,
                    preset: Preset | None = None, part: str | None = None):
    """Rebuild a pose network from a checkpoint file.

    Parameters
    ----------
    path : str or Path
        An aptrack checkpoint (it describes its model), or an mmpose one
        (1.x ``backbone.``/``head.`` keys, 0.x ``keypoint_head.`` keys, with or
        without a ``state_dict`` wrapper), which needs ``preset``.
    device : str
    name : str, optional
        Model name for a version 1 file (default: the file's stem).
    preset : Preset, optional
        The architecture of a file that does not describe its own (mmpose's).
        An aptrack file keeps its own preset.
    part : str, optional
        The dataset part of a ViTPose+ file (``"ap10k"``, the default, or
        ``"apt36k"``, ...: :data:`aptrack.models.vitpose_keys.VITPOSE_PLUS_PARTS`).

    Returns
    -------
    model : torch.nn.Module (eval mode, fp32, on ``device``)
    preset : Preset
    meta : dict

    Raises
    ------
    WeightsError
        If the file is not a pose checkpoint aptrack reads, or its tensors do not
        fit (the message names the first missing, unexpected or mis-shaped key).
    """
    raw = _torch_load(path)
    if preset is not None and not (isinstance(raw, dict) and raw.get("format") == CHECKPOINT_FORMAT):
        from aptrack.models.mmpose_keys import mmpose_state_dict

        state, meta = mmpose_state_dict(raw, part=part), {"source": "mmpose checkpoint", "file": str(path)}
    else:
        ckpt = _check_aptrack(raw, path)
        try:
            if ckpt["version"] == 1:
                preset = preset_from_v1(ckpt, name or Path(path).stem)
            else:
                preset = Preset.from_dict(ckpt["preset"], f"pose weights {path}")
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise WeightsError(f"pose weights {path} do not describe their model ({exc})") from None
        state, meta = ckpt["state_dict"], ckpt.get("meta", {})
    try:
        model = build_network(preset)
    except ConfigError as exc:
        raise WeightsError(f"pose weights {path}: {exc}") from None
    if raw.get("format") != CHECKPOINT_FORMAT and hasattr(model, "adapt_state_dict"):
        state = model.adapt_state_dict(state)  # a family's own rules for foreign files (ViTPose's class token)
    mismatch = first_mismatch(model.state_dict(), state)
    if mismatch:
        raise WeightsError(f"pose weights {path} do not match the architecture of {preset.name} "
                           f"{preset.architecture}: {mismatch}")
    model.load_state_dict(state)
    model.float().eval().to(device)
    return model, preset, meta


def convert_checkpoint(src: str | Path, dest: str | Path, name: str | None = None, half: bool = True,
                       preset: Preset | None = None) -> dict:
    """Rewrite a pose checkpoint (any readable version) as a version 2 inference file.

    Keeps the weights and ``meta``; ``half`` stores them as fp16. ``preset``
    replaces the one the file describes (e.g. to give a version 1 file its
    published name and normalisation); ``name`` renames it. The file is
    written under a temporary name and renamed into place.

    Returns the new checkpoint dict.
    """
    from aptrack.core.errors import write_atomic

    model, described, meta = load_checkpoint(src)
    preset = preset or described
    if name:
        preset = preset.with_(name=name)
    ckpt = build_checkpoint(model, preset, meta, half=half)
    write_atomic(Path(dest), lambda tmp: torch.save(ckpt, tmp))
    return ckpt
