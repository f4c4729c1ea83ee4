"""Top-down HRFormer (Yuan et al. 2021), laid out as mmpose's ``TopdownPoseEstimator``.

HRFormer is HRNet with its residual branches replaced by transformer blocks:
the stem, stage 1 (bottlenecks), the transitions and the multi-resolution
modules come from :mod:`aptrack.models.hrnet`, with the changes mmpose 1.3.2's
``HRFormer`` backbone (``mmpose/models/backbones/hrformer.py``) makes:

- every branch is a chain of :class:`HRFormerBlock` (local-window multi-head
  self-attention, then a feed-forward network with a depthwise 3x3 conv);
- the fuse layers upsample bilinearly (``align_corners=False``), and a step
  down is a depthwise-separable conv: depthwise 3x3 stride-2 + BN, then
  1x1 + BN (ReLU between steps, not after the last);
- stage 1 has two bottlenecks, not four.

The head is mmpose's ``HeatmapHead`` without transposed convolutions
(``deconv_out_channels=None``): a 1x1 conv on the stride-4 branch. The
defaults are mmpose's ``td-hm_hrformer-small_8xb32-210e_coco-256x192.py``
(HRFormer-S: width 32, heads 1, 2, 4, 8); HRFormer-B is width 78 with heads
2, 4, 8, 16. State dict keys (``m`` a module, ``b`` a branch, ``n`` a block),
besides HRNet's stem, ``layer1.{0,1}``, ``transition{1,2,3}`` and
``fuse_layers.{i}.{j}`` upsampling entries (see :mod:`aptrack.models.hrnet`)::

    backbone.stage{s}.{m}.branches.{b}.{n}.norm1.{weight,bias}       LayerNorm before attention
    backbone.stage{s}.{m}.branches.{b}.{n}.attn.attn.qkv.{weight,bias}
                                                                     Linear C -> 3C
    backbone.stage{s}.{m}.branches.{b}.{n}.attn.attn.proj.{weight,bias}
                                                                     Linear C -> C
    backbone.stage{s}.{m}.branches.{b}.{n}.attn.attn.relative_position_bias_table
                                                                     ((2w-1)^2, heads), with_rpe only
    backbone.stage{s}.{m}.branches.{b}.{n}.attn.attn.relative_position_index
                                                                     (w^2, w^2) int64 buffer, with_rpe only
    backbone.stage{s}.{m}.branches.{b}.{n}.norm2.{weight,bias}       LayerNorm before the FFN
    backbone.stage{s}.{m}.branches.{b}.{n}.ffn.fc1.{weight,bias}     1x1 conv C -> rC, then norm1 (BN)
    backbone.stage{s}.{m}.branches.{b}.{n}.ffn.dw3x3.{weight,bias}   depthwise 3x3 rC, then norm2 (BN)
    backbone.stage{s}.{m}.branches.{b}.{n}.ffn.fc2.{weight,bias}     1x1 conv rC -> C, then norm3 (BN)
    backbone.stage{s}.{m}.fuse_layers.{i}.{j}.{k}.{0,1,2,3}.*        j < i: step k, depthwise 3x3 stride 2
                                                                     + BN, 1x1 + BN (no bias)
    head.final_layer.{weight,bias}                                   1x1 conv width -> K heatmaps

At inference mmpose's SyncBN is a plain batch norm and drop path is the
identity (neither has parameters), so neither appears here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aptrack.models.hrnet import HRModule, HRNetBackbone
from aptrack.models.resnet import HeatmapHead

HRFORMER_MODULES = (1, 4, 2)
"""Modules of stages 2, 3 and 4 in mmpose's HRFormer-S and -B configs (stage ``s`` has ``s`` branches)."""

HRFORMER_BLOCKS = (2, 2, 2)
"""HRFormer blocks per branch in stages 2, 3 and 4 (``num_blocks=(2, ...)``)."""

STAGE1_BOTTLENECKS = 2
"""Bottlenecks of HRFormer's stage 1 (HRNet has four)."""

HRFORMER_S_HEADS = (1, 2, 4, 8)
"""Attention heads of branches 0..3 in HRFormer-S (HRFormer-B: 2, 4, 8, 16)."""

WINDOW_SIZE = 7
"""Side of the square attention windows, every branch (``window_sizes=[7, ...]``)."""

MLP_RATIO = 4
"""Hidden channels of the feed-forward network per input channel (``mlp_ratios=[4, ...]``)."""

LAYER_NORM_EPS = 1e-6
"""Epsilon of the transformer layer norms (mmpose's ``transformer_norm_cfg``)."""

BIAS_TABLE_INIT_STD = 0.02
"""Standard deviation of the truncated-normal initial relative position biases."""

CONV_INIT_STD = 0.001
"""Standard deviation of mmpose's initial convolution weights (HRNet's)."""


def relative_position_index(window: int) -> torch.Tensor:
    """Row of the bias table for each (query, key) pair of a ``window`` x ``window`` window.

    Token ``p = row * window + col``. The entry for query ``p`` and key ``q``
    is ``(dy + window - 1) * (2 * window - 1) + (dx + window - 1)`` with
    ``dy, dx`` the row and column offsets of ``p`` from ``q``: an index in
    ``[0, (2 * window - 1) ** 2)``, the same for every pair at the same offset.

    Returns
    -------
    torch.Tensor
        ``(window**2, window**2)`` int64.
    """
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    rows, cols = rows.reshape(-1), cols.reshape(-1)
    dy = rows[:, None] - rows[None, :] + window - 1
    dx = cols[:, None] - cols[None, :] + window - 1
    return dy * (2 * window - 1) + dx


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learnt bias per relative offset.

    Parameters
    ----------
    channels : int
        Token channels ``C``; must be a multiple of ``num_heads``.
    num_heads : int
    window : int
        Window side ``w``: each attention sees ``w * w`` tokens.
    with_rpe : bool
        Add the relative position bias (mmpose's ``with_rpe``).

    Raises
    ------
    ValueError
        If ``channels`` is not a positive multiple of ``num_heads``.
    """

    def __init__(self, channels: int, num_heads: int, window: int, with_rpe: bool = True):
        super().__init__()
        if num_heads < 1 or channels < 1 or channels % num_heads:
            raise ValueError(f"{channels} channels do not split into {num_heads} attention heads")
        self.num_heads = num_heads
        self.window = window
        self.scale = (channels // num_heads) ** -0.5
        self.with_rpe = with_rpe
        if with_rpe:
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
            self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(windows, w*w, C) -> (windows, w*w, C)."""
        n, length, c = tokens.shape
        qkv = self.qkv(tokens).reshape(n, length, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (windows, heads, w*w, C/heads)
        scores = (q * self.scale) @ k.transpose(-2, -1)
        if self.with_rpe:
            bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
            scores = scores + bias.view(length, length, -1).permute(2, 0, 1).contiguous().unsqueeze(0)
        out = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(n, length, c)
        return self.proj(out)


class LocalWindowAttention(nn.Module):
    """Self-attention in non-overlapping ``w`` x ``w`` windows of a (B, H*W, C) token map.

    The map is zero-padded to multiples of ``w``, the padding split evenly
    between the two sides (one more row / column after than before when odd);
    the padded tokens take part in the attention (mmpose's
    ``with_pad_mask=False``) and are cut off afterwards.

    Parameters
    ----------
    channels, num_heads, window, with_rpe
        As for :class:`WindowAttention` (held as ``attn``).
    """

    def __init__(self, channels: int, num_heads: int, window: int, with_rpe: bool = True):
        super().__init__()
        self.window = window
        self.attn = WindowAttention(channels, num_heads, window, with_rpe)

    def forward(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, H*W, C) tokens of an H x W map, row-major -> (B, H*W, C)."""
        b, length, c = tokens.shape
        w = self.window
        pad_h, pad_w = -height % w, -width % w
        top, left = pad_h // 2, pad_w // 2
        x = F.pad(tokens.reshape(b, height, width, c), (0, 0, left, pad_w - left, top, pad_h - top))
        rows, cols = (height + pad_h) // w, (width + pad_w) // w
        windows = x.view(b, rows, w, cols, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, c)
        out = self.attn(windows)
        out = out.reshape(b, rows, cols, w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, height + pad_h,
                                                                                     width + pad_w, c)
        return out[:, top:top + height, left:left + width].reshape(b, length, c)


class CrossFFN(nn.Module):
    """HRFormer's feed-forward network on (B, H*W, C) tokens: 1x1 conv, depthwise 3x3, 1x1 conv.

    Each conv (with bias) is followed by a batch norm and a GELU; the depthwise
    conv lets information cross window borders.

    Parameters
    ----------
    channels : int
        Input and output channels ``C``.
    hidden : int
        Channels of the middle layers.
    """

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act1 = nn.GELU()
        self.norm1 = nn.BatchNorm2d(hidden)
        self.dw3x3 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act2 = nn.GELU()
        self.norm2 = nn.BatchNorm2d(hidden)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.act3 = nn.GELU()
        self.norm3 = nn.BatchNorm2d(channels)

    def forward(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(B, H*W, C) -> (B, H*W, C)."""
        b, _, c = tokens.shape
        x = tokens.transpose(1, 2).reshape(b, c, height, width)
        x = self.act1(self.norm1(self.fc1(x)))
        x = self.act2(self.norm2(self.dw3x3(x)))
        x = self.act3(self.norm3(self.fc2(x)))
        return x.flatten(2).transpose(1, 2).contiguous()


class HRFormerBlock(nn.Module):
    """Pre-norm transformer block on a (B, C, H, W) map: window attention, then :class:`CrossFFN`.

    ``x + attn(LN(x))``, then ``x + ffn(LN(x))``, on the map's tokens; the
    output has the input's shape.

    Parameters
    ----------
    channels : int
    num_heads : int
    window : int
        Attention window side.
    mlp_ratio : float
        FFN hidden channels are ``int(channels * mlp_ratio)``.
    with_rpe : bool
        Relative position bias in the attention.
    """

    def __init__(self, channels: int, num_heads: int, window: int = WINDOW_SIZE, mlp_ratio: float = MLP_RATIO,
                 with_rpe: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(channels, eps=LAYER_NORM_EPS)
        self.attn = LocalWindowAttention(channels, num_heads, window, with_rpe)
        self.norm2 = nn.LayerNorm(channels, eps=LAYER_NORM_EPS)
        self.ffn = CrossFFN(channels, int(channels * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        b, c, h, w = x.shape
        tokens = x.reshape(b, c, -1).permute(0, 2, 1)
        tokens = tokens + self.attn(self.norm1(tokens), h, w)
        tokens = tokens + self.ffn(self.norm2(tokens), h, w)
        return tokens.permute(0, 2, 1).reshape(b, c, h, w)


class HRFormerModule(HRModule):
    """An :class:`~aptrack.models.hrnet.HRModule` of :class:`HRFormerBlock` branches.

    Lower-resolution branches are upsampled bilinearly (``align_corners=False``);
    a step down is a depthwise 3x3 stride-2 conv + BN followed by a 1x1 conv
    + BN (all bias-free), with a ReLU between steps but not after the last.

    Parameters
    ----------
    channels : sequence of int
        Channels of each branch.
    num_heads : sequence of int
        Attention heads of each branch.
    num_blocks : int
        Blocks per branch.
    window : int
    mlp_ratio : float
    with_rpe : bool
    multiscale_output : bool
        Fuse into every branch; if False into branch 0 only.
    """

    def __init__(self, channels, num_heads, num_blocks: int = HRFORMER_BLOCKS[0], window: int = WINDOW_SIZE,
                 mlp_ratio: float = MLP_RATIO, with_rpe: bool = True, multiscale_output: bool = True):
        heads = [int(h) for h in num_heads]

        def block(branch: int, c: int) -> HRFormerBlock:
            return HRFormerBlock(c, heads[branch], window, mlp_ratio, with_rpe)

        super().__init__(channels, num_blocks, multiscale_output, block=block)

    def _upsample(self, scale: int) -> nn.Module:
        return nn.Upsample(scale_factor=scale, mode="bilinear", align_corners=False)

    def _downsample(self, c_in: int, c_out: int, steps: int) -> nn.Sequential:
        chain = []
        for k in range(steps):
            last = k == steps - 1
            out = c_out if last else c_in
            layers = [nn.Conv2d(c_in, c_in, 3, stride=2, padding=1, groups=c_in, bias=False), nn.BatchNorm2d(c_in),
                      nn.Conv2d(c_in, out, 1, bias=False), nn.BatchNorm2d(out)]
            if not last:
                layers.append(nn.ReLU())
            chain.append(nn.Sequential(*layers))
        return nn.Sequential(*chain)


class HRFormerBackbone(HRNetBackbone):
    """HRFormer: (B, 3, H, W) -> (B, width, H/4, W/4), mmpose's module tree and forward.

    Parameters
    ----------
    width : int
        Channels of branch 0; branch ``b`` has ``width * 2**b``.
    num_heads : sequence of 4 int
        Attention heads of branches 0..3 (the same in every stage).
    window_size : int
        Attention window side of every branch.
    mlp_ratio : float
        FFN expansion of every branch.
    num_modules : sequence of 3 int
        Modules of stages 2, 3, 4.
    num_blocks : sequence of 3 int
        HRFormer blocks per branch in stages 2, 3, 4.
    stage1_blocks : int
        Bottlenecks of stage 1.
    with_rpe : bool
        Relative position biases in the attention.

    Raises
    ------
    ValueError
        If a count is not positive, ``num_heads`` does not give 4 values, or a
        branch's channels are not a multiple of its heads.
    """

    def __init__(self, width: int = 32, num_heads=HRFORMER_S_HEADS, window_size: int = WINDOW_SIZE,
                 mlp_ratio: float = MLP_RATIO, num_modules=HRFORMER_MODULES, num_blocks=HRFORMER_BLOCKS,
                 stage1_blocks: int = STAGE1_BOTTLENECKS, with_rpe: bool = True):
        num_heads = tuple(int(h) for h in num_heads)
        num_modules = tuple(int(m) for m in num_modules)
        num_blocks = tuple(int(n) for n in num_blocks)
        num_stages = len(HRFORMER_MODULES)
        if len(num_heads) != num_stages + 1 or len(num_modules) != num_stages or len(num_blocks) != num_stages:
            raise ValueError(f"HRFormer needs 4 head counts and 3 module and block counts (stages 2-4), got "
                             f"{len(num_heads)}, {len(num_modules)} and {len(num_blocks)}")
        counts = (*num_modules, *num_blocks, int(stage1_blocks), int(window_size))
        if min(counts) < 1 or mlp_ratio <= 0:
            raise ValueError(f"HRFormer counts, window size and mlp_ratio must be positive, got modules "
                             f"{num_modules}, blocks {num_blocks}, stage 1 {stage1_blocks}, window {window_size}, "
                             f"mlp_ratio {mlp_ratio}")
        if int(width) >= 1:
            for b, heads in enumerate(num_heads):
                if heads < 1 or (int(width) * 2 ** b) % heads:
                    raise ValueError(f"branch {b} has {int(width) * 2 ** b} channels, not a multiple of its "
                                     f"{heads} attention heads")

        def module(stage: int, channels: list[int], multiscale_output: bool) -> HRFormerModule:
            return HRFormerModule(channels, num_heads[:len(channels)], num_blocks[stage - 2], int(window_size),
                                  mlp_ratio, with_rpe, multiscale_output)

        super().__init__(width, stage1_blocks=int(stage1_blocks),
                         stages=tuple((m, s + 2) for s, m in enumerate(num_modules)), module=module)
        self.window_size = int(window_size)
        self.num_heads = num_heads

    def _init_weights(self) -> None:
        """mmpose's initialisation: convolutions normal (std 0.001, zero bias), batch norms at
        identity, relative position biases truncated normal (std 0.02); linear and layer
        norm layers keep PyTorch's defaults."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=CONV_INIT_STD)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, WindowAttention) and m.with_rpe:
                nn.init.trunc_normal_(m.relative_position_bias_table, std=BIAS_TABLE_INIT_STD)


class HRFormerPose(nn.Module):
    """Top-down HRFormer heatmap model (mmpose's ``td-hm_hrformer-*``), key-compatible with mmpose.

    Parameters
    ----------
    num_keypoints : int
    width, num_heads, window_size, mlp_ratio, num_modules, num_blocks, stage1_blocks, with_rpe
        As for :class:`HRFormerBackbone`. HRFormer-S: width 32, heads
        ``(1, 2, 4, 8)``; HRFormer-B: width 78, heads ``(2, 4, 8, 16)``; both
        window 7, ratio 4, modules ``(1, 4, 2)``, blocks ``(2, 2, 2)``, two
        stage-1 bottlenecks, relative position biases.

    Raises
    ------
    ValueError
        If the architecture arguments are inconsistent (see :class:`HRFormerBackbone`).
    """

    def __init__(self, num_keypoints: int, width: int = 32, num_heads=HRFORMER_S_HEADS,
                 window_size: int = WINDOW_SIZE, mlp_ratio: float = MLP_RATIO, num_modules=HRFORMER_MODULES,
                 num_blocks=HRFORMER_BLOCKS, stage1_blocks: int = STAGE1_BOTTLENECKS, with_rpe: bool = True):
        super().__init__()
        self.backbone = HRFormerBackbone(width, num_heads, window_size, mlp_ratio, num_modules, num_blocks,
                                         stage1_blocks, with_rpe)
        self.head = HeatmapHead(self.backbone.out_channels, num_keypoints, deconv_channels=())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised RGB -> (B, K, H/4, W/4) heatmaps; H, W multiples of 32."""
        return self.head(self.backbone(images))
