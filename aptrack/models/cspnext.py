"""CSPNeXt (RTMDet's backbone, Lyu et al. 2022) and the top-down heatmap model on it.

The module tree is mmpose 1.x's ``CSPNeXt`` (``mmpose/models/backbones/cspnext.py``
with the CSP layers of ``mmpose/models/utils/csp_layer.py``), ``arch='P5'``,
as built by the AP-10K configs ``cspnext-m_udp_8xb64-210e_ap10k-256x256.py``
and ``rtmpose-m_8xb64-210e_ap10k-256x256.py`` (``out_indices=(4,)``: only the
stride-32 output of stage 4 is used). mmpose's checkpoints load with
``load_state_dict(strict=True)`` once their keys have gone through
:func:`aptrack.models.mmpose_keys.mmpose_state_dict`.

Every convolution is a "conv module": a bias-free convolution ``conv``, a batch
norm ``bn`` and SiLU. With ``w`` the widen factor, ``d`` the deepen factor, the
stem has ``int(64 w // 2)`` and ``int(64 w)`` channels and stage ``i`` turns
``int(c_in w)`` into ``int(c_out w)`` channels with ``max(round(n d), 1)``
blocks, ``(c_in, c_out, n)`` from :data:`CSPNEXT_P5_STAGES`. State dict keys::

    backbone.stem.{0,1,2}.conv.weight, .bn.*     3x3 convs: stride 2 to 64w/2, 64w/2, then to 64w
    backbone.stage{1..4}.0.conv.weight, .bn.*    3x3 stride-2 conv opening each stage
    backbone.stage4.1.conv{1,2}.conv/bn          stage 4 only: spatial pyramid pooling, 1x1
                                                 convs around max pools of 5, 9, 13
    backbone.stage{s}.{j}.main_conv.conv/bn      CSP layer (j = 1, or 2 in stage 4):
    backbone.stage{s}.{j}.short_conv.conv/bn     two 1x1 convs halving the channels,
    backbone.stage{s}.{j}.blocks.{b}.conv1.conv/bn
                                                 block b on the main path: 3x3 conv,
    backbone.stage{s}.{j}.blocks.{b}.conv2.depthwise_conv.conv/bn
    backbone.stage{s}.{j}.blocks.{b}.conv2.pointwise_conv.conv/bn
                                                 then 5x5 depthwise + 1x1 pointwise
    backbone.stage{s}.{j}.attention.fc.{weight,bias}
                                                 channel attention on the concatenation
    backbone.stage{s}.{j}.final_conv.conv/bn     1x1 conv back to the stage's channels
    head.deconv_layers.{0,3,6}.weight, .{1,4,7}.*
    head.final_layer.{weight,bias}               the heatmap model's ``HeatmapHead``

(``.bn.*`` is ``weight, bias, running_mean, running_var, num_batches_tracked``.)
The blocks of stages 1-3 add their input to their output; stage 4's do not.
Batch norms have mmpose's ``eps`` of the AP-10K configs (:data:`BN_EPS`).
"""

from __future__ import annotations

import torch
from torch import nn

from aptrack.models.resnet import HeatmapHead

CSPNEXT_P5_STAGES: tuple[tuple[int, int, int, bool, bool], ...] = (
    (64, 128, 3, True, False),
    (128, 256, 6, True, False),
    (256, 512, 6, True, False),
    (512, 1024, 3, False, True),
)
"""``(in channels, out channels, blocks, blocks add their input, spatial pyramid pooling)``
of each stage before the widen / deepen factors (mmpose's ``arch_settings['P5']``)."""

STEM_CHANNELS = 64
"""Output channels of the stem before the widen factor; its first two convs have half."""

BN_EPS = 1e-5
"""Batch-norm epsilon. mmpose's CSPNeXt defaults to 1e-3, but the AP-10K (and body)
RTMPose / CSPNeXt configs pass ``norm_cfg=dict(type='SyncBN')``, whose epsilon is torch's 1e-5."""

SPP_KERNELS = (5, 9, 13)
"""Max-pool sizes of stage 4's spatial pyramid pooling (``spp_kernel_sizes``)."""

BLOCK_DEPTHWISE_KERNEL = 5
"""Kernel of the depthwise convolution in each CSPNeXt block."""

EXPAND_RATIO = 0.5
"""Channels of a CSP layer's two paths relative to its output (``expand_ratio``)."""


class ConvModule(nn.Sequential):
    """Bias-free convolution, batch norm, SiLU (mmcv's ``ConvModule``): keys ``conv``, ``bn``.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int
        Odd kernel, 'same' padding.
    stride : int
    groups : int
        ``in_channels`` for a depthwise convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)
        self.activate = nn.SiLU(inplace=True)


class DepthwiseSeparableConv(nn.Sequential):
    """Depthwise ``k x k`` conv module then pointwise 1x1 conv module, each with BN and SiLU.

    Keys ``depthwise_conv.{conv,bn}``, ``pointwise_conv.{conv,bn}`` (mmcv's
    ``DepthwiseSeparableConvModule``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.depthwise_conv = ConvModule(in_channels, in_channels, kernel_size, groups=in_channels)
        self.pointwise_conv = ConvModule(in_channels, out_channels, 1)


class CSPNeXtBlock(nn.Module):
    """3x3 conv module, then a depthwise-separable 5x5 one; plus the input if asked.

    Parameters
    ----------
    channels : int
        Input, hidden and output channels (the CSP layers use expansion 1).
    add_identity : bool
        Residual connection.
    """

    def __init__(self, channels: int, add_identity: bool = True):
        super().__init__()
        self.conv1 = ConvModule(channels, channels, 3)
        self.conv2 = DepthwiseSeparableConv(channels, channels, BLOCK_DEPTHWISE_KERNEL)
        self.add_identity = bool(add_identity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C, h, w)."""
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class ChannelAttention(nn.Module):
    """Squeeze-and-excite without reduction: ``x * hardsigmoid(fc(mean over h, w of x))``; key ``fc``."""

    def __init__(self, channels: int):
        super().__init__()
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(channels, channels, 1, bias=True)
        self.act = nn.Hardsigmoid(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C, h, w), each channel scaled by a weight in [0, 1]."""
        return x * self.act(self.fc(self.global_avgpool(x)))


class CSPLayer(nn.Module):
    """Cross-stage partial layer: a block path and a shortcut path, concatenated, attended, fused.

    ``final_conv(attention(cat(blocks(main_conv(x)), short_conv(x))))``, the two
    paths with ``int(out_channels * expand_ratio)`` channels.

    Parameters
    ----------
    in_channels, out_channels : int
    num_blocks : int
    add_identity : bool
        Whether the blocks are residual.
    expand_ratio : float
    """

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int, add_identity: bool = True,
                 expand_ratio: float = EXPAND_RATIO):
        super().__init__()
        mid = int(out_channels * expand_ratio)
        self.main_conv = ConvModule(in_channels, mid, 1)
        self.short_conv = ConvModule(in_channels, mid, 1)
        self.final_conv = ConvModule(2 * mid, out_channels, 1)
        self.blocks = nn.Sequential(*(CSPNeXtBlock(mid, add_identity) for _ in range(num_blocks)))
        self.attention = ChannelAttention(2 * mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, h, w) -> (B, C_out, h, w)."""
        short = self.short_conv(x)
        main = self.blocks(self.main_conv(x))
        return self.final_conv(self.attention(torch.cat((main, short), dim=1)))


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling: 1x1 conv module to half the channels, concatenation with its
    stride-1 max pools (:data:`SPP_KERNELS`), 1x1 conv module to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes=SPP_KERNELS):
        super().__init__()
        mid = in_channels // 2
        self.conv1 = ConvModule(in_channels, mid, 1)
        self.poolings = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)
        self.conv2 = ConvModule(mid * (len(kernel_sizes) + 1), out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, h, w) -> (B, C_out, h, w)."""
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.poolings], dim=1))


class CSPNeXtBackbone(nn.Module):
    """CSPNeXt P5: (B, 3, H, W) -> (B, int(1024 w), ceil(H/32), ceil(W/32)), stage 4's output.

    Parameters
    ----------
    deepen_factor : float
        Block-count multiplier ``d`` (0.167 / 0.33 / 0.67 / 1.0 for the t / s / m / l models).
    widen_factor : float
        Channel multiplier ``w`` (0.375 / 0.5 / 0.75 / 1.0).
    expand_ratio : float
        Width of the CSP layers' two paths relative to their output.

    Raises
    ------
    ValueError
        If a factor is not positive or leaves a layer without channels.
    """

    def __init__(self, deepen_factor: float = 1.0, widen_factor: float = 1.0, expand_ratio: float = EXPAND_RATIO):
        super().__init__()
        if deepen_factor <= 0 or widen_factor <= 0 or expand_ratio <= 0:
            raise ValueError(f"deepen_factor, widen_factor and expand_ratio must be positive, got "
                             f"{deepen_factor}, {widen_factor}, {expand_ratio}")
        stem_half = int(STEM_CHANNELS * widen_factor // 2)
        if stem_half < 1 or int(CSPNEXT_P5_STAGES[0][1] * widen_factor * expand_ratio) < 1:
            raise ValueError(f"widen_factor {widen_factor} leaves a layer without channels")
        self.deepen_factor, self.widen_factor = float(deepen_factor), float(widen_factor)
        self.stem = nn.Sequential(ConvModule(3, stem_half, 3, stride=2), ConvModule(stem_half, stem_half, 3),
                                  ConvModule(stem_half, int(STEM_CHANNELS * widen_factor), 3))
        for index, (c_in, c_out, blocks, add_identity, spp) in enumerate(CSPNEXT_P5_STAGES, start=1):
            c_in, c_out = int(c_in * widen_factor), int(c_out * widen_factor)
            layers: list[nn.Module] = [ConvModule(c_in, c_out, 3, stride=2)]
            if spp:
                layers.append(SPPBottleneck(c_out, c_out))
            layers.append(CSPLayer(c_out, c_out, max(round(blocks * deepen_factor), 1), add_identity, expand_ratio))
            self.add_module(f"stage{index}", nn.Sequential(*layers))
        self.out_channels = c_out
        self._init_weights()

    def _init_weights(self) -> None:
        """mmpose's initialisation of the backbone: convolutions Kaiming-uniform (torch's
        default, mmpose's ``a=sqrt(5)`` fan-in config), biases zero, batch norms at identity."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                m.reset_parameters()
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C, ceil(H/32), ceil(W/32)) features of stage 4."""
        x = self.stem(images)
        for index in range(1, len(CSPNEXT_P5_STAGES) + 1):
            x = getattr(self, f"stage{index}")(x)
        return x


class CSPNeXtHeatmap(nn.Module):
    """Top-down CSPNeXt + ``HeatmapHead`` (mmpose's ``cspnext-m_udp`` AP-10K model), mmpose's keys.

    Parameters
    ----------
    num_keypoints : int
    deepen_factor, widen_factor : float
        CSPNeXt's size (0.67 and 0.75 for CSPNeXt-m).
    deconv_channels : sequence of int
        Output channels of the head's stride-2 transposed convolutions; three turn
        the stride-32 features into stride-4 heatmaps.
    deconv_kernel : int
        Their kernel size (4, 3 or 2).

    Raises
    ------
    ValueError
        On factors that leave no channels, or another deconvolution kernel.
    """

    def __init__(self, num_keypoints: int, deepen_factor: float = 0.67, widen_factor: float = 0.75,
                 deconv_channels=(256, 256, 256), deconv_kernel: int = 4):
        super().__init__()
        self.backbone = CSPNeXtBackbone(deepen_factor, widen_factor)
        self.head = HeatmapHead(self.backbone.out_channels, num_keypoints, deconv_channels, deconv_kernel)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised RGB -> (B, K, H/4, W/4) heatmaps (H, W multiples of 32)."""
        return self.head(self.backbone(images))
