"""Rename the ViTPose repository's checkpoints into mmpose 1.x's ViTPose layout.

The ViTPose repository (github ViTAE-Transformer/ViTPose, built on mmpose 0.x)
saves its models as ``{"state_dict": {...}, "meta": ...}`` with its own ViT
(``mmpose/models/backbones/vit.py``) and mmpose 0.x's ``keypoint_head``. aptrack's
:class:`~aptrack.models.vitpose.ViTPose` uses mmpose 1.x's names (mmpretrain's
``VisionTransformer``), so these rules turn one into the other:

================================================  ==============================================
ViTPose repository                                mmpose 1.x / aptrack
================================================  ==============================================
``backbone.patch_embed.proj.*``                   ``backbone.patch_embed.projection.*``
``backbone.blocks.N.norm1.*``                     ``backbone.layers.N.ln1.*``
``backbone.blocks.N.attn.{qkv,proj}.*``           ``backbone.layers.N.attn.{qkv,proj}.*``
``backbone.blocks.N.norm2.*``                     ``backbone.layers.N.ln2.*``
``backbone.blocks.N.mlp.fc1.*``                   ``backbone.layers.N.ffn.layers.0.0.*``
``backbone.blocks.N.mlp.fc2.*``                   ``backbone.layers.N.ffn.layers.1.*``
``backbone.last_norm.*``                          ``backbone.ln1.*``
``backbone.pos_embed`` (1, 1 + N, C)              ``backbone.pos_embed`` (1, N, C), see below
``keypoint_head.*``                               unchanged here (``head.*`` by the mmpose rules)
================================================  ==============================================

Its position embedding has a class token's row first, and its forward pass
adds that row to every patch (``x + pos_embed[:, 1:] + pos_embed[:, :1]``),
so the renamed embedding is ``pos_embed[:, 1:] + pos_embed[:, :1]``: the same
sums, one tensor. (mmpretrain instead *drops* an extra row when it loads a 1.x
file; :meth:`aptrack.models.vitpose.ViTPose.adapt_state_dict` does that for
1.x files. The two rules differ, which is why the layout is told apart by its
key names and not by the embedding's length.)

ViTPose+ files (``ViTMoE`` backbone, one model for six datasets) hold, in every
block, a shared ``mlp.fc2`` with ``C - P`` outputs plus one ``mlp.experts.E``
linear layer of ``P`` outputs per dataset, whose outputs are concatenated
(shared first); and besides the COCO ``keypoint_head`` one
``associate_keypoint_heads.H`` per other dataset. :func:`vitpose_plus_split`
keeps one dataset's part as the ViTPose repository's ``tools/model_split.py``
does: ``fc2`` becomes the row-wise concatenation of the shared and the expert
weights and biases, the dataset's associate head becomes ``keypoint_head``
(its output layer cut to the dataset's keypoints), and the other experts and
heads are dropped. The result is a plain ViTPose-repository state dict.
"""

from __future__ import annotations

import re

import torch

from aptrack.core.errors import WeightsError

VITPOSE_PLUS_PARTS: dict[str, tuple[int, int | None, int]] = {
    "coco": (0, None, 17),
    "aic": (1, 0, 14),
    "mpii": (2, 1, 16),
    "ap10k": (3, 2, 17),
    "apt36k": (4, 3, 17),
    "wholebody": (5, 4, 133),
}
"""ViTPose+ dataset part: ``(expert index, associate head index or None for keypoint_head,
number of keypoints)``, in the order of the ViTPose repository's ``tools/model_split.py``."""

DEFAULT_PART = "ap10k"
"""The ViTPose+ part loaded when none is named: aptrack's presets predict AP-10K's keypoints."""

_DATA_PARALLEL_PREFIX = "module."
_MAIN_HEAD = "keypoint_head."
_ASSOCIATE_HEAD = re.compile(r"^associate_keypoint_heads\.(\d+)\.(.*)$")
_EXPERT = re.compile(r"^(backbone\.blocks\.\d+\.mlp\.)experts\.(\d+)\.(weight|bias)$")
_POS_EMBED = "backbone.pos_embed"
_ORIGINAL_MARKERS = ("backbone.blocks.", "backbone.last_norm.", "backbone.patch_embed.proj.")

_RENAMES: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(p), r) for p, r in (
    (r"^backbone\.patch_embed\.proj\.", "backbone.patch_embed.projection."),
    (r"^backbone\.blocks\.(\d+)\.norm1\.", r"backbone.layers.\1.ln1."),
    (r"^backbone\.blocks\.(\d+)\.norm2\.", r"backbone.layers.\1.ln2."),
    (r"^backbone\.blocks\.(\d+)\.attn\.(qkv|proj)\.", r"backbone.layers.\1.attn.\2."),
    (r"^backbone\.blocks\.(\d+)\.mlp\.fc1\.", r"backbone.layers.\1.ffn.layers.0.0."),
    (r"^backbone\.blocks\.(\d+)\.mlp\.fc2\.", r"backbone.layers.\1.ffn.layers.1."),
    (r"^backbone\.last_norm\.", "backbone.ln1."),
))
"""The ViTPose repository's backbone names -> mmpose 1.x's, first match wins (table above)."""


def _strip_data_parallel(state: dict) -> dict:
    return {(k[len(_DATA_PARALLEL_PREFIX):] if k.startswith(_DATA_PARALLEL_PREFIX) else k): v
            for k, v in state.items()}


def is_vitpose_repository_layout(state: dict) -> bool:
    """Whether a state dict (keys maybe with ``module.``) has the ViTPose repository's backbone names."""
    return any(k.startswith(_ORIGINAL_MARKERS) for k in _strip_data_parallel(state))


def is_vitpose_plus(state: dict) -> bool:
    """Whether a state dict is a ViTPose+ (mixture-of-experts) one: ``mlp.experts.`` keys."""
    return any(_EXPERT.match(k) for k in _strip_data_parallel(state))


def vitpose_plus_split(state: dict[str, torch.Tensor], dataset: str = DEFAULT_PART) -> dict[str, torch.Tensor]:
    """One dataset's network out of a ViTPose+ state dict, as a plain ViTPose-repository state dict.

    Parameters
    ----------
    state : dict of str to torch.Tensor
        A ViTPose+ ``state_dict`` (keys maybe with ``module.``).
    dataset : str
        A key of :data:`VITPOSE_PLUS_PARTS` (``"ap10k"``: expert 3 and associate
        head 2; ``"apt36k"``: expert 4 and head 3).

    Returns
    -------
    dict of str to torch.Tensor
        ``backbone.*`` (``mlp.fc2`` of shape (C, F) and (C,): shared rows first,
        then the expert's) and ``keypoint_head.*`` (the dataset's head, its
        output layer cut to the dataset's keypoints); other keys kept as they are.

    Raises
    ------
    WeightsError
        If ``dataset`` is unknown, or the file lacks its expert or head.
    """
    if dataset not in VITPOSE_PLUS_PARTS:
        raise WeightsError(f"unknown ViTPose+ part '{dataset}'; choose one of {', '.join(VITPOSE_PLUS_PARTS)}")
    expert, head, num_keypoints = VITPOSE_PLUS_PARTS[dataset]
    state = _strip_data_parallel(state)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if _EXPERT.match(key) or _ASSOCIATE_HEAD.match(key) or key.startswith(_MAIN_HEAD):
            continue
        if ".mlp.fc2." in key and key.startswith("backbone.blocks."):
            prefix, leaf = key.rsplit(".fc2.", 1)
            part_key = f"{prefix}.experts.{expert}.{leaf}"
            if part_key not in state:
                raise WeightsError(f"ViTPose+ checkpoint has no '{part_key}' (the {dataset} expert) for '{key}'")
            value = torch.cat([value, state[part_key]], dim=0)
        out[key] = value
    source = _MAIN_HEAD if head is None else f"associate_keypoint_heads.{head}."
    head_keys = [k for k in state if k.startswith(source)]
    if not head_keys:
        raise WeightsError(f"ViTPose+ checkpoint has no '{source}*' weights (the {dataset} head)")
    for key in head_keys:
        value = state[key]
        if key.startswith(source + "final_layer."):
            value = value[:num_keypoints]
        out[_MAIN_HEAD + key[len(source):]] = value
    return out


def vitpose_repository_to_mmpose1x(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ViTPose-repository state dict with mmpose 1.x's backbone names (the module's table).

    ``backbone.pos_embed`` of shape (1, 1 + N, C) becomes ``pos[:, 1:] + pos[:, :1]``
    (1, N, C); keys no rule matches (the head, or tensors aptrack has no place
    for, which the loader then names) are kept as they are.

    Raises
    ------
    WeightsError
        If the position embedding is not a (1, 1 + N, C) tensor.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in _strip_data_parallel(state).items():
        if key == _POS_EMBED:
            if value.dim() != 3 or value.shape[0] != 1 or value.shape[1] < 2:
                raise WeightsError(f"ViTPose checkpoint's '{key}' has shape {tuple(value.shape)}, expected "
                                   f"(1, 1 + patches, channels)")
            value = value[:, 1:] + value[:, :1]
        else:
            for pattern, replacement in _RENAMES:
                new, count = pattern.subn(replacement, key, count=1)
                if count:
                    key = new
                    break
        out[key] = value
    return out


def from_vitpose_repository(state: dict[str, torch.Tensor], part: str | None = None) -> dict[str, torch.Tensor]:
    """``state`` in mmpose's layout if it is a ViTPose-repository or ViTPose+ one, else ``state`` itself.

    Parameters
    ----------
    state : dict of str to torch.Tensor
        A checkpoint's tensors.
    part : str, optional
        The ViTPose+ dataset part to keep (:data:`VITPOSE_PLUS_PARTS`; default
        :data:`DEFAULT_PART`); ignored for other files.

    Raises
    ------
    WeightsError
        From :func:`vitpose_plus_split` and :func:`vitpose_repository_to_mmpose1x`.
    """
    if is_vitpose_plus(state):
        state = vitpose_plus_split(state, part or DEFAULT_PART)
    if not is_vitpose_repository_layout(state):
        return state
    return vitpose_repository_to_mmpose1x(state)
