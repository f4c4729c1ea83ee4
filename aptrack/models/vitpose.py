"""ViTPose (Xu et al. 2022): a plain vision transformer and a deconvolution heatmap head.

The module tree mirrors mmpose 1.x's ``TopdownPoseEstimator`` with mmpretrain's
``VisionTransformer`` backbone (``out_type='featmap'``, ``with_cls_token=False``)
and a ``HeatmapHead`` with two transposed convolutions, as in mmpose's
``td-hm_ViTPose-{small,base,large,huge}_8xb64-210e_coco-256x192.py``. mmpose
1.x checkpoints load with ``load_state_dict(strict=True)`` once their keys have
gone through :func:`aptrack.models.mmpose_keys.mmpose_state_dict`; the ViTPose
repository's own files (and ViTPose+ files, one dataset part of them) are
renamed into this layout by :mod:`aptrack.models.vitpose_keys`. With ``C`` the
embedding width, ``L`` the number of layers and ``N = h * w`` the patches of
the input size, the state dict keys are::

    backbone.patch_embed.projection.{weight,bias}  patch conv 3 -> C, kernel = stride = patch size
    backbone.pos_embed                             (1, N, C) position embedding, no class token
    backbone.layers.{0..L-1}.ln1.{weight,bias}     layer norm before attention
    backbone.layers.{i}.attn.qkv.{weight,bias}     C -> 3C (query, key, value; heads interleaved)
    backbone.layers.{i}.attn.proj.{weight,bias}    C -> C
    backbone.layers.{i}.ln2.{weight,bias}          layer norm before the MLP
    backbone.layers.{i}.ffn.layers.0.0.{weight,bias}   C -> F, then GELU
    backbone.layers.{i}.ffn.layers.1.{weight,bias}     F -> C
    backbone.ln1.{weight,bias}                     final layer norm (``final_norm``)
    head.deconv_layers.{0,3}.weight                transposed convs, no bias
    head.deconv_layers.{1,4}.*                     their batch norms (2, 5 are ReLUs)
    head.final_layer.{weight,bias}                 1x1 conv to K heatmaps

The forward pass is mmpretrain's: patch embedding, plus the position
embedding (resized bicubically when the input's patch grid differs from the
one it was built for), pre-norm transformer layers (``x + attn(ln1(x))``, then
``x + ffn(ln2(x))``), the final norm, and the patch tokens as a (B, C, h, w)
map, which the head upsamples 4x. Dropout and stochastic depth are training
only; in eval mode they are the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aptrack.models.resnet import HeatmapHead

VITPOSE_ARCHS: dict[str, dict[str, int]] = {
    "small": {"embed_dims": 384, "num_layers": 12, "num_heads": 12, "feedforward_channels": 384 * 4},
    "base": {"embed_dims": 768, "num_layers": 12, "num_heads": 12, "feedforward_channels": 768 * 4},
    "large": {"embed_dims": 1024, "num_layers": 24, "num_heads": 16, "feedforward_channels": 1024 * 4},
    "huge": {"embed_dims": 1280, "num_layers": 32, "num_heads": 16, "feedforward_channels": 1280 * 4},
}
"""Backbone sizes of ViTPose-S/B/L/H, as mmpose's ViTPose configs give them (``small`` is
ViTPose's own, not mmpretrain's ``arch='small'``)."""

IMG_SIZE = (256, 192)
"""Input ``(height, width)`` the position embedding is built for, as mmpose's configs."""
PATCH_SIZE = 16
PATCH_PADDING = 2
"""Zero padding of the patch convolution (``patch_cfg=dict(padding=2)``); 256 x 192 gives 16 x 12 patches."""
LAYER_NORM_EPS = 1e-6
"""Epsilon of every layer norm (mmpretrain's ``norm_cfg=dict(type='LN', eps=1e-6)``)."""
TRUNC_NORMAL_STD = 0.02
"""Standard deviation of the truncated-normal initialisation of the position embedding and linear layers."""
HEAD_DECONV_CHANNELS = (256, 256)
"""Output channels of the head's two transposed convolutions (``deconv_out_channels``)."""


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a sample's residual branch with probability ``p``
    and scale the kept ones by ``1 / (1 - p)``; the identity in eval mode or when ``p`` is 0."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, ...) -> (B, ...), same shape."""
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class PatchEmbed(nn.Module):
    """Non-overlapping patches to tokens: (B, 3, H, W) -> (B, h*w, C) and ``(h, w)``.

    Parameters
    ----------
    embed_dims : int
    patch_size : int
        Kernel size and stride of the patch convolution.
    padding : int
        Zero padding on every side, so ``h = (H + 2 * padding - patch_size) // patch_size + 1``.
    """

    def __init__(self, embed_dims: int, patch_size: int = PATCH_SIZE, padding: int = PATCH_PADDING):
        super().__init__()
        self.patch_size = int(patch_size)
        self.padding = int(padding)
        self.projection = nn.Conv2d(3, embed_dims, kernel_size=self.patch_size, stride=self.patch_size,
                                    padding=self.padding)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid ``(h, w)`` of an input of ``height`` x ``width`` pixels."""
        return tuple((size + 2 * self.padding - self.patch_size) // self.patch_size + 1 for size in (height, width))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, 3, H, W) -> tokens (B, h*w, C) in row-major patch order, and the grid ``(h, w)``."""
        x = self.projection(images)
        return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])


class Attention(nn.Module):
    """Multi-head self-attention: (B, N, C) -> (B, N, C).

    ``qkv`` maps to ``3C`` features laid out as (3, heads, C / heads): queries,
    keys and values of every head; the scale is ``(C / heads) ** -0.5``.

    Parameters
    ----------
    embed_dims : int
    num_heads : int
        Must divide ``embed_dims``.
    qkv_bias : bool
    attn_drop, proj_drop : float
        Dropout on the attention weights and after the output projection (training only).
    """

    def __init__(self, embed_dims: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f"num_heads {num_heads} does not divide embed_dims {embed_dims}")
        self.num_heads = int(num_heads)
        self.head_dims = embed_dims // num_heads
        self.attn_drop = float(attn_drop)
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dims).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, c)))


class FeedForward(nn.Module):
    """The MLP of a transformer layer: C -> F, GELU, C, plus its input (``ffn.layers.0.0`` / ``ffn.layers.1``).

    Parameters
    ----------
    embed_dims, feedforward_channels : int
    drop : float
        Dropout after the activation and after the second linear layer (training only).
    drop_path : float
        Stochastic depth of the branch (training only).
    """

    def __init__(self, embed_dims: int, feedforward_channels: int, drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(embed_dims, feedforward_channels), nn.GELU(), nn.Dropout(drop)),
            nn.Linear(feedforward_channels, embed_dims), nn.Dropout(drop))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """(B, N, C) normalised tokens and the (B, N, C) residual -> ``identity + mlp(x)``."""
        return identity + self.drop_path(self.layers(x))


class EncoderLayer(nn.Module):
    """Pre-norm transformer layer: ``x + attn(ln1(x))``, then ``x + ffn(ln2(x))``; (B, N, C) -> (B, N, C).

    Parameters
    ----------
    embed_dims, num_heads, feedforward_channels : int
    qkv_bias : bool
    drop_rate, drop_path : float
        Dropout and stochastic depth (training only).
    """

    def __init__(self, embed_dims: int, num_heads: int, feedforward_channels: int, qkv_bias: bool = True,
                 drop_rate: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.ln1 = nn.LayerNorm(embed_dims, eps=LAYER_NORM_EPS)
        self.attn = Attention(embed_dims, num_heads, qkv_bias=qkv_bias, proj_drop=drop_rate)
        self.attn_drop_path = DropPath(drop_path)
        self.ln2 = nn.LayerNorm(embed_dims, eps=LAYER_NORM_EPS)
        self.ffn = FeedForward(embed_dims, feedforward_channels, drop=drop_rate, drop_path=drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        x = x + self.attn_drop_path(self.attn(self.ln1(x)))
        return self.ffn(self.ln2(x), identity=x)


def resize_pos_embed(pos_embed: torch.Tensor, src_grid, dst_grid) -> torch.Tensor:
    """A (1, h*w, C) position embedding on another patch grid, bicubic (mmpretrain's, no extra tokens).

    Parameters
    ----------
    pos_embed : (1, h_src * w_src, C) tensor
    src_grid, dst_grid : (int, int)
        ``(h, w)`` patch grids.

    Returns
    -------
    (1, h_dst * w_dst, C) tensor; ``pos_embed`` itself if the grids are equal.
    """
    src_grid, dst_grid = tuple(src_grid), tuple(dst_grid)
    if src_grid == dst_grid:
        return pos_embed
    c = pos_embed.shape[-1]
    grid = pos_embed.reshape(1, *src_grid, c).permute(0, 3, 1, 2)
    resized = F.interpolate(grid.float(), size=dst_grid, mode="bicubic", align_corners=False)
    return resized.flatten(2).transpose(1, 2).to(pos_embed.dtype)


class VisionTransformer(nn.Module):
    """ViT backbone without class token: (B, 3, H, W) -> (B, C, h, w) patch features.

    Parameters
    ----------
    embed_dims, num_layers, num_heads, feedforward_channels : int
        Width, depth, attention heads and MLP width (see :data:`VITPOSE_ARCHS`).
    img_size : (int, int)
        Input ``(height, width)`` the position embedding is built for.
    patch_size, patch_padding : int
    qkv_bias : bool
    final_norm : bool
        Whether a layer norm (``ln1``) follows the last layer.
    drop_rate, drop_path_rate : float
        Dropout after the position embedding and in every layer, and the stochastic
        depth of the last layer (rising linearly from 0 at the first); training only.
    """

    def __init__(self, embed_dims: int = 768, num_layers: int = 12, num_heads: int = 12,
                 feedforward_channels: int = 3072, img_size=IMG_SIZE, patch_size: int = PATCH_SIZE,
                 patch_padding: int = PATCH_PADDING, qkv_bias: bool = True, final_norm: bool = True,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        embed_dims, num_layers = int(embed_dims), int(num_layers)
        if embed_dims < 1 or num_layers < 1 or int(feedforward_channels) < 1:
            raise ValueError("embed_dims, num_layers and feedforward_channels must be positive")
        self.embed_dims = embed_dims
        self.patch_embed = PatchEmbed(embed_dims, patch_size, patch_padding)
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.patch_grid = self.patch_embed.grid(*self.img_size)
        if min(self.patch_grid) < 1:
            raise ValueError(f"img_size {self.img_size} is smaller than one patch of {patch_size}")
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_grid[0] * self.patch_grid[1], embed_dims))
        self.drop_after_pos = nn.Dropout(drop_rate)
        rates = [float(drop_path_rate) * i / max(num_layers - 1, 1) for i in range(num_layers)]
        self.layers = nn.ModuleList(
            EncoderLayer(embed_dims, int(num_heads), int(feedforward_channels), qkv_bias=bool(qkv_bias),
                         drop_rate=drop_rate, drop_path=rate) for rate in rates)
        self.final_norm = bool(final_norm)
        if self.final_norm:
            self.ln1 = nn.LayerNorm(embed_dims, eps=LAYER_NORM_EPS)
        self._init_weights()

    def _init_weights(self) -> None:
        """Truncated-normal (std 0.02) position embedding and linear weights, zero linear biases."""
        nn.init.trunc_normal_(self.pos_embed, std=TRUNC_NORMAL_STD)
        for m in self.layers.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=TRUNC_NORMAL_STD)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C, h, w), ``(h, w)`` the patch grid of ``(H, W)``."""
        x, grid = self.patch_embed(images)
        x = self.drop_after_pos(x + resize_pos_embed(self.pos_embed, self.patch_grid, grid))
        for layer in self.layers:
            x = layer(x)
        if self.final_norm:
            x = self.ln1(x)
        return x.reshape(x.shape[0], *grid, self.embed_dims).permute(0, 3, 1, 2)


class ViTPose(nn.Module):
    """ViTPose with the classic decoder (mmpose's ``td-hm_ViTPose-*``), key-compatible with mmpose 1.x.

    Parameters
    ----------
    num_keypoints : int
    embed_dims, num_layers, num_heads, feedforward_channels : int
        The backbone's size (:data:`VITPOSE_ARCHS`: ViTPose-B by default).
    img_size : (int, int)
        Input ``(height, width)`` the position embedding is built for (256, 192).
    patch_size, patch_padding : int
    qkv_bias, final_norm : bool
    deconv_channels : sequence of int
        Output channels of the head's stride-2 transposed convolutions (two of 256).
    deconv_kernel : int
        Their kernel size (4, 3 or 2).
    drop_rate, drop_path_rate : float
        Training-only regularisation (mmpose's configs use drop_path_rate 0.1 to 0.55).

    Raises
    ------
    ValueError
        If a size is not positive, ``num_heads`` does not divide ``embed_dims``
        or ``deconv_kernel`` is not 4, 3 or 2.
    """

    def __init__(self, num_keypoints: int, embed_dims: int = 768, num_layers: int = 12, num_heads: int = 12,
                 feedforward_channels: int = 3072, img_size=IMG_SIZE, patch_size: int = PATCH_SIZE,
                 patch_padding: int = PATCH_PADDING, qkv_bias: bool = True, final_norm: bool = True,
                 deconv_channels=HEAD_DECONV_CHANNELS, deconv_kernel: int = 4, drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0):
        super().__init__()
        self.backbone = VisionTransformer(embed_dims, num_layers, num_heads, feedforward_channels, img_size,
                                          patch_size, patch_padding, qkv_bias, final_norm, drop_rate,
                                          drop_path_rate)
        self.head = HeatmapHead(self.backbone.embed_dims, num_keypoints, deconv_channels, deconv_kernel)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised RGB -> (B, K, 4h, 4w) heatmaps; 256 x 192 gives 64 x 48."""
        return self.head(self.backbone(images))

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """mmpretrain's load-time rule for a foreign position embedding, applied to ``state``.

        A ``backbone.pos_embed`` with exactly one token more than this network's
        carries a class token's embedding first; mmpretrain's ``VisionTransformer``
        (``with_cls_token=False``) drops it when loading, and so does this.
        Anything else is returned unchanged (a mis-sized embedding is then
        reported by the loader as a shape mismatch).

        Parameters
        ----------
        state : dict of str to torch.Tensor
            mmpose 1.x key names (:func:`aptrack.models.mmpose_keys.mmpose_state_dict`).

        Returns
        -------
        dict of str to torch.Tensor
            ``state``, or a shallow copy with the class token's row removed.
        """
        key = "backbone.pos_embed"
        pos = state.get(key)
        tokens = self.backbone.pos_embed.shape[1]
        if pos is None or pos.dim() != 3 or pos.shape[1] != tokens + 1:
            return state
        return {**state, key: pos[:, 1:]}
