"""Rename the tensors of an mmpose top-down heatmap checkpoint into aptrack's layout.

mmpose saves a ``TopdownPoseEstimator`` as ``{"state_dict": {...}, "meta": {...}, ...}``
(plus optimizer state in training checkpoints). aptrack's
:class:`~aptrack.models.resnet.ResNetSimpleBaseline` uses mmpose 1.x's module
tree, so the mapping is a matter of prefixes. The rules, applied key by key:

1. The tensors are ``checkpoint["state_dict"]`` when present, else the
   checkpoint itself (a bare state dict).
2. A leading ``module.`` (left by ``DataParallel`` / ``DistributedDataParallel``)
   is removed.
3. mmpose 0.x's ``keypoint_head.`` becomes ``head.`` (mmpose 1.x's name); the
   rest of the key is unchanged: the deconvolution stack is
   ``deconv_layers.{0,1,3,4,6,7}`` and the 1x1 output conv ``final_layer`` in
   both versions.
4. Keys outside ``backbone.`` and ``head.`` are dropped: they are not network
   weights (``data_preprocessor.mean`` / ``.std``, a ``neck`` SimpleBaseline
   does not have, loss buffers).

Tensors are returned as they are (no copy, no dtype change). A 0.x head with
extra convolutions before its output layer (``final_layer.N.*``) keeps those
keys; no aptrack network has such layers, so it will not load.
"""

from __future__ import annotations

from typing import Any

import torch

from aptrack.core.errors import WeightsError
from aptrack.models.vitpose_keys import from_vitpose_repository

APTRACK_FORMAT = "aptrack-pose"
"""``format`` of aptrack's own checkpoints (:mod:`aptrack.models.checkpoint`)."""

_RENAMED_PREFIXES = {"keypoint_head.": "head."}
_KEPT_PREFIXES = ("backbone.", "head.")
_DATA_PARALLEL_PREFIX = "module."


def _tensors(checkpoint: Any) -> dict | None:
    """The tensor dict of an mmpose checkpoint or bare state dict, else None."""
    if not isinstance(checkpoint, dict):
        return None
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, dict) or not state:
        return None
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return None
    return state


def _rename(key: str) -> str:
    """``key`` without a ``module.`` prefix and with 0.x head names made 1.x's."""
    if key.startswith(_DATA_PARALLEL_PREFIX):
        key = key[len(_DATA_PARALLEL_PREFIX):]
    for old, new in _RENAMED_PREFIXES.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key


def is_mmpose_checkpoint(checkpoint: Any) -> bool:
    """Whether ``checkpoint`` (a loaded torch file) is an mmpose top-down model's weights.

    True for a dict of tensors, or a dict whose ``state_dict`` is one, with at
    least one ``backbone.`` key and one ``head.`` or ``keypoint_head.`` key
    (after removing a ``module.`` prefix). False for aptrack's own checkpoints
    (``format`` is ``"aptrack-pose"``) and for anything else.
    """
    if not isinstance(checkpoint, dict) or checkpoint.get("format") == APTRACK_FORMAT:
        return False
    state = _tensors(checkpoint)
    if state is None:
        return False
    keys = [_rename(k) for k in state]
    return any(k.startswith("backbone.") for k in keys) and any(k.startswith("head.") for k in keys)


def mmpose_state_dict(checkpoint: dict, part: str | None = None) -> dict[str, torch.Tensor]:
    """The network tensors of an mmpose checkpoint under aptrack's key names.

    Parameters
    ----------
    checkpoint : dict
        A loaded mmpose checkpoint: 1.x (``state_dict`` keys ``backbone.*`` /
        ``head.*``, maybe ``data_preprocessor.*``), 0.x (``backbone.*`` /
        ``keypoint_head.*``), or a bare state dict; keys may carry a
        ``module.`` prefix. See the module docstring for the rules. The ViTPose
        repository's files (and ViTPose+ ones) are first renamed into mmpose
        1.x's ViTPose layout (:mod:`aptrack.models.vitpose_keys`).
    part : str, optional
        The dataset part of a ViTPose+ file
        (:data:`aptrack.models.vitpose_keys.VITPOSE_PLUS_PARTS`, default AP-10K's);
        ignored for other files.

    Returns
    -------
    dict of str to torch.Tensor
        ``backbone.*`` and ``head.*`` tensors, in the checkpoint's order,
        ready for ``load_state_dict`` of a
        :class:`~aptrack.models.resnet.ResNetSimpleBaseline` of the same shape.

    Raises
    ------
    WeightsError
        If ``checkpoint`` is an aptrack checkpoint, holds no tensor dict, or
        has no backbone or head weights.
    """
    if isinstance(checkpoint, dict) and checkpoint.get("format") == APTRACK_FORMAT:
        raise WeightsError("this is an aptrack pose checkpoint, not an mmpose one; load it with load_checkpoint")
    state = _tensors(checkpoint)
    if state is None:
        raise WeightsError("not an mmpose checkpoint: expected a dict of tensors or a dict with a 'state_dict' "
                           "of tensors")
    state = from_vitpose_repository(state, part)  # ViTPose repository / ViTPose+ layouts; others unchanged
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = _rename(key)
        if not new.startswith(_KEPT_PREFIXES):
            continue
        if new in renamed:
            raise WeightsError(f"mmpose checkpoint has two tensors for '{new}' (keys with and without "
                               f"'{_DATA_PARALLEL_PREFIX}' or under both 'head.' and 'keypoint_head.')")
        renamed[new] = value
    for prefix in _KEPT_PREFIXES:
        if not any(k.startswith(prefix) for k in renamed):
            raise WeightsError(f"mmpose checkpoint has no '{prefix}*' weights (keys such as "
                               f"'{next(iter(state))}'); is it a top-down heatmap model?")
    return renamed


def simplebaseline_architecture(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """ResNet SimpleBaseline arguments that fit an already renamed state dict.

    Returns ``{"num_keypoints", "depth", "deconv_channels", "deconv_kernel"}``,
    read from tensor shapes and block counts: the keyword arguments of
    :class:`~aptrack.models.resnet.ResNetSimpleBaseline`.

    Raises
    ------
    WeightsError
        If the tensors are not a ResNet backbone with a deconvolution head.
    """
    from aptrack.models.resnet import RESNET_DEPTHS

    try:
        blocks = tuple(len({k.split(".")[2] for k in state if k.startswith(f"backbone.layer{stage}.")})
                       for stage in range(1, 5))
        bottleneck = any(".conv3." in k for k in state if k.startswith("backbone.layer"))
        depth = next(d for d, (block, counts) in RESNET_DEPTHS.items()
                     if counts == blocks and (block.__name__ == "Bottleneck") == bottleneck)
        deconvs = sorted((int(k.split(".")[2]), v) for k, v in state.items()
                         if k.startswith("head.deconv_layers.") and k.endswith(".weight") and v.dim() == 4)
        final = state["head.final_layer.weight"]
    except (StopIteration, KeyError, ValueError, IndexError):
        raise WeightsError("mmpose weights are not a ResNet SimpleBaseline (ResNet backbone, deconvolution "
                           "head, 1x1 final layer)") from None
    kernels = {int(w.shape[-1]) for _, w in deconvs}
    if len(kernels) > 1:
        raise WeightsError(f"mmpose head mixes deconvolution kernel sizes {sorted(kernels)}; aptrack uses one")
    return {"num_keypoints": int(final.shape[0]), "depth": depth,
            "deconv_channels": [int(w.shape[1]) for _, w in deconvs],
            "deconv_kernel": kernels.pop() if kernels else 4}
