"""RTMPose (Jiang et al. 2023): CSPNeXt + RTMCC head, 1-D SimCC coordinate classification.

The head mirrors mmpose 1.x's ``RTMCCHead``
(``mmpose/models/heads/coord_cls_heads/rtmcc_head.py``) with the gated
attention unit of ``mmpose/models/utils/rtmcc_block.py`` in the configuration
every RTMPose config uses (self-attention, no relative position bias, no
rotary encoding, no dropout). From the backbone's stride-32 map of ``C``
channels and ``h x w`` cells the head makes, per keypoint, one token:

1. ``final_layer``: a ``k x k`` convolution (bias, 'same' padding) ``C -> K``,
   flattened to ``(B, K, h w)``;
2. ``mlp``: ScaleNorm over the ``h w`` cells, then a bias-free linear map to ``D``;
3. ``gau``: one gated attention unit across the ``K`` tokens (residual, scaled);
4. ``cls_x`` / ``cls_y``: bias-free linear maps to ``int(W r)`` and ``int(H r)``
   bins, ``r`` the SimCC split ratio (two bins per input pixel).

State dict keys (the backbone's are those of :mod:`aptrack.models.cspnext`)::

    head.final_layer.{weight,bias}      (K, C, k, k), (K,)
    head.mlp.0.g                        ScaleNorm gain (1,)
    head.mlp.1.weight                   (D, h w)
    head.gau.uv.weight                  (2 E + S, D): u, v and the shared q/k base
    head.gau.gamma, head.gau.beta       (2, S): per-head scale and offset of q and k
    head.gau.o.weight                   (D, E)
    head.gau.ln.g                       ScaleNorm gain (1,)
    head.gau.res_scale.scale            (D,) scale of the residual
    head.cls_x.weight, head.cls_y.weight
                                        (int(W r), D), (int(H r), D)

with ``E = expansion_factor * D`` and ``S`` the attention dimension (mmpose's ``s``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aptrack.models.cspnext import CSPNeXtBackbone

BACKBONE_STRIDE = 32
"""Stride of the CSPNeXt feature map the head reads (``in_featuremap_size = input_size // 32``)."""

SCALE_NORM_EPS = 1e-5
"""Floor of a ScaleNorm's scaled norm (mmpose's default ``eps``)."""

HEAD_CONV_STD = 0.001
"""Standard deviation of the head convolution's initial weights (mmpose's ``Normal`` init)."""

HEAD_LINEAR_STD = 0.01
"""Standard deviation of the head's linear layers' initial weights."""


class ScaleNorm(nn.Module):
    """``x / max(||x|| / sqrt(n), eps) * g`` over the last axis of length ``n``; key ``g`` (1,).

    Parameters
    ----------
    dim : int
        Length ``n`` of the normalised axis.
    eps : float
    """

    def __init__(self, dim: int, eps: float = SCALE_NORM_EPS):
        super().__init__()
        self.scale = dim ** -0.5
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., n) -> (..., n)."""
        norm = torch.norm(x, dim=-1, keepdim=True) * self.scale
        return x / norm.clamp(min=self.eps) * self.g


class Scale(nn.Module):
    """Element-wise learnt scale ``x * scale`` over the last axis; key ``scale``."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> (..., dim)."""
        return x * self.scale


class GatedAttentionUnit(nn.Module):
    """A gated attention unit (Hua et al. 2022) across tokens, mmpose's ``RTMCCBlock`` ('self-attn').

    For tokens ``x`` (B, N, D): ``y = SiLU(uv(ScaleNorm(x)))`` split into ``u``,
    ``v`` (E each) and a base (S) giving ``q = base * gamma[0] + beta[0]`` and
    ``k = base * gamma[1] + beta[1]``; attention ``A = relu(q k^T / sqrt(S))^2``
    (B, N, N); output ``res_scale(x) + o(u * (A v))`` (the residual because the
    input and output dimensions agree).

    Parameters
    ----------
    num_tokens : int
        ``N`` (the keypoints); kept for reference, the unit works for any ``N``.
    dims : int
        Token dimension ``D`` in and out.
    attention_dims : int
        ``S``, mmpose's ``s``.
    expansion_factor : int
        ``E = expansion_factor * D``.
    """

    def __init__(self, num_tokens: int, dims: int, attention_dims: int = 128, expansion_factor: int = 2):
        super().__init__()
        self.num_tokens = int(num_tokens)
        self.e = int(dims * expansion_factor)
        self.s = int(attention_dims)
        self.o = nn.Linear(self.e, dims, bias=False)
        self.uv = nn.Linear(dims, 2 * self.e + self.s, bias=False)
        self.gamma = nn.Parameter(torch.rand((2, self.s)))
        self.beta = nn.Parameter(torch.rand((2, self.s)))
        self.ln = ScaleNorm(dims)
        self.act_fn = nn.SiLU(inplace=True)
        self.res_scale = Scale(dims)
        self.sqrt_s = math.sqrt(self.s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> (B, N, D)."""
        uv = self.act_fn(self.uv(self.ln(x)))
        u, v, base = torch.split(uv, [self.e, self.e, self.s], dim=2)
        base = base.unsqueeze(2) * self.gamma[None, None, :] + self.beta  # (B, N, 2, S)
        q, k = torch.unbind(base, dim=2)
        kernel = torch.square(F.relu(torch.bmm(q, k.permute(0, 2, 1)) / self.sqrt_s))
        return self.res_scale(x) + self.o(u * torch.bmm(kernel, v))


class RTMCCHead(nn.Module):
    """(B, C, h, w) stride-32 features -> SimCC vectors ``(B, K, int(W r))``, ``(B, K, int(H r))``.

    Parameters
    ----------
    in_channels : int
    num_keypoints : int
    input_size : (int, int)
        Crop ``width, height`` the model is built for; the feature map is
        ``input_size // 32`` and the bins ``int(input_size * simcc_split_ratio)``.
    simcc_split_ratio : float
        Bins per input pixel.
    final_layer_kernel_size : int
        Odd kernel of the first convolution.
    hidden_dims : int
        Token dimension ``D``.
    attention_dims : int
        The unit's ``S``.
    expansion_factor : int
    """

    def __init__(self, in_channels: int, num_keypoints: int, input_size=(256, 256), simcc_split_ratio: float = 2.0,
                 final_layer_kernel_size: int = 7, hidden_dims: int = 256, attention_dims: int = 128,
                 expansion_factor: int = 2):
        super().__init__()
        w, h = (int(v) for v in input_size)
        cells = (w // BACKBONE_STRIDE) * (h // BACKBONE_STRIDE)
        if cells < 1:
            raise ValueError(f"input_size {input_size} is smaller than the backbone stride {BACKBONE_STRIDE}")
        self.input_size = (w, h)
        self.simcc_split_ratio = float(simcc_split_ratio)
        self.final_layer = nn.Conv2d(in_channels, num_keypoints, final_layer_kernel_size,
                                     padding=final_layer_kernel_size // 2)
        self.mlp = nn.Sequential(ScaleNorm(cells), nn.Linear(cells, hidden_dims, bias=False))
        self.gau = GatedAttentionUnit(num_keypoints, hidden_dims, attention_dims, expansion_factor)
        self.cls_x = nn.Linear(hidden_dims, int(w * self.simcc_split_ratio), bias=False)
        self.cls_y = nn.Linear(hidden_dims, int(h * self.simcc_split_ratio), bias=False)
        self._init_weights()

    def _init_weights(self) -> None:
        """mmpose's head initialisation: the convolution and every linear layer normal
        (std 0.001 and 0.01), zero biases; the unit's gamma and beta stay uniform in [0, 1)."""
        nn.init.normal_(self.final_layer.weight, std=HEAD_CONV_STD)
        nn.init.zeros_(self.final_layer.bias)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=HEAD_LINEAR_STD)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, h, w) -> ``(simcc_x, simcc_y)``, (B, K, Wx) and (B, K, Wy)."""
        tokens = self.mlp(torch.flatten(self.final_layer(features), 2))
        tokens = self.gau(tokens)
        return self.cls_x(tokens), self.cls_y(tokens)


class RTMPose(nn.Module):
    """Top-down RTMPose: CSPNeXt + RTMCC head, key-compatible with mmpose.

    Parameters
    ----------
    num_keypoints : int
    deepen_factor, widen_factor : float
        CSPNeXt's size: (0.167, 0.375), (0.33, 0.5), (0.67, 0.75), (1.0, 1.0) for
        RTMPose-t / s / m / l.
    input_size : (int, int)
        Crop ``width, height``; the head's shapes depend on it (the preset's
        ``input_size``).
    simcc_split_ratio : float
        Bins per pixel (the preset codec's).
    final_layer_kernel_size, hidden_dims, attention_dims, expansion_factor
        The head's (mmpose's ``final_layer_kernel_size`` and ``gau_cfg``:
        7, 256, 128 (``s``), 2 in every RTMPose config).

    Raises
    ------
    ValueError
        On factors that leave no channels or an input smaller than 32 pixels.
    """

    def __init__(self, num_keypoints: int, deepen_factor: float = 0.67, widen_factor: float = 0.75,
                 input_size=(256, 256), simcc_split_ratio: float = 2.0, final_layer_kernel_size: int = 7,
                 hidden_dims: int = 256, attention_dims: int = 128, expansion_factor: int = 2):
        super().__init__()
        self.backbone = CSPNeXtBackbone(deepen_factor, widen_factor)
        self.head = RTMCCHead(self.backbone.out_channels, num_keypoints, input_size, simcc_split_ratio,
                              final_layer_kernel_size, hidden_dims, attention_dims, expansion_factor)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) normalised RGB at the built ``input_size`` -> ``(simcc_x, simcc_y)``,
        (B, K, int(W r)) and (B, K, int(H r)) logits over bins of ``1 / r`` pixels."""
        return self.head(self.backbone(images))
