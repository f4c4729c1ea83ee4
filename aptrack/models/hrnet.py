"""Top-down HRNet (Sun et al. 2019), laid out as mmpose's ``TopdownPoseEstimator``.

The module tree mirrors mmpose 1.x's ``HRNet`` backbone
(``mmpose/models/backbones/hrnet.py``) with the ``extra`` of the AP-10K / COCO
configs (``td-hm_hrnet-w32_8xb64-210e_ap10k-256x256.py`` and its W48 twin),
followed by a ``HeatmapHead`` without transposed convolutions
(``deconv_out_channels=None``), so mmpose's checkpoints load with
``load_state_dict(strict=True)`` once their keys have gone through
:func:`aptrack.models.mmpose_keys.mmpose_state_dict`. With ``W`` the width, the
four branches run at strides 4, 8, 16, 32 with ``W, 2W, 4W, 8W`` channels.
State dict keys::

    backbone.conv1.weight, backbone.bn1.*        3x3 stride-2 stem conv, 3 -> 64
    backbone.conv2.weight, backbone.bn2.*        3x3 stride-2 stem conv, 64 -> 64
    backbone.layer1.{0..3}.conv{1,2,3}/bn{1,2,3} stage 1: four bottlenecks, 64 -> 256
    backbone.layer1.0.downsample.{0,1}.*         its 1x1 shortcut projection
    backbone.transition1.0.{0,1}.*               3x3 conv 256 -> W (+ BN, ReLU at .2)
    backbone.transition{1,2,3}.{b}.0.{0,1}.*     3x3 stride-2 conv opening branch b
    backbone.stage{2,3,4}.{m}.branches.{b}.{0..3}.conv{1,2}/bn{1,2}
                                                 module m, branch b: four basic blocks
    backbone.stage{s}.{m}.fuse_layers.{i}.{j}.{0,1}.*
                                                 j > i: 1x1 conv + BN, then nearest upsampling
    backbone.stage{s}.{m}.fuse_layers.{i}.{j}.{k}.{0,1}.*
                                                 j < i: i - j 3x3 stride-2 conv + BN steps
    head.final_layer.{weight,bias}               1x1 conv W -> K heatmaps

Branches that go on unchanged have no transition entry (``transition2.{0,1}``,
``transition3.{0,1,2}``: identity), and the diagonal ``fuse_layers.i.i`` holds none.
Every module fuses into all its branches except the last one of stage 4, which
fuses into branch 0 only (mmpose's ``multiscale_output=False``): the head reads
that stride-4 map. The residual blocks are torchvision's ``BasicBlock`` and
``Bottleneck``, whose parameter names (``conv1``, ``bn1``, ..., ``downsample.0/1``)
are those of mmpose's blocks; all HRNet blocks have stride 1.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from aptrack.models.resnet import HeatmapHead

HRNET_STAGES: tuple[tuple[int, int], ...] = ((1, 2), (4, 3), (3, 4))
"""``(number of modules, number of branches)`` of stages 2, 3 and 4, as in mmpose's configs."""

BLOCKS_PER_BRANCH = 4
"""Residual blocks in stage 1 and in every branch of every module (``num_blocks=(4, ...)``)."""

STEM_CHANNELS = 64
"""Channels of the two stem convolutions and the bottleneck width of stage 1."""


def _conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
             relu: bool = False) -> nn.Sequential:
    """Bias-free ``kernel_size`` convolution ('same' padding) + batch norm (+ ReLU)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HRModule(nn.Module):
    """Parallel branches of basic blocks, then an exchange between resolutions.

    Branch ``b`` has ``channels[b]`` channels at stride ``2**b`` relative to
    branch 0. Output ``i`` is ``ReLU(sum_j f_ij(x_j))``, with ``f_ii`` the
    identity, ``f_ij`` for a lower-resolution ``j > i`` a 1x1 conv + BN followed
    by nearest-neighbour upsampling by ``2**(j-i)``, and for ``j < i`` a chain of
    ``i - j`` stride-2 3x3 conv + BN steps (ReLU between steps, not after the last).

    Subclasses change the blocks (``block``), the upsampling (:meth:`_upsample`)
    and the downward chains (:meth:`_downsample`); the keys and the forward
    (sum in branch order, then ReLU) stay.

    Parameters
    ----------
    channels : sequence of int
        Channels of each branch.
    num_blocks : int
        Blocks per branch.
    multiscale_output : bool
        Produce every branch's fused output; if False, only branch 0's.
    block : callable, optional
        ``block(branch_index, channels) -> nn.Module``, one channel-preserving
        block of a branch, called ``num_blocks`` times per branch; default a
        torchvision ``BasicBlock(channels, channels)``.
    """

    def __init__(self, channels, num_blocks: int = BLOCKS_PER_BRANCH, multiscale_output: bool = True,
                 block: Callable[[int, int], nn.Module] | None = None):
        super().__init__()
        channels = [int(c) for c in channels]
        if len(channels) < 2:
            raise ValueError(f"an HRModule needs at least 2 branches, got {len(channels)}")
        self.channels = channels
        if block is None:
            def block(_, c):
                return BasicBlock(c, c)
        self.branches = nn.ModuleList(
            nn.Sequential(*(block(b, c) for _ in range(num_blocks))) for b, c in enumerate(channels))
        num_outputs = len(channels) if multiscale_output else 1
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(self._fuse(j, i) for j in range(len(channels))) for i in range(num_outputs))
        self.relu = nn.ReLU(inplace=True)

    def _fuse(self, source: int, target: int) -> nn.Module | None:
        """Map from branch ``source`` to branch ``target``'s resolution and channels; None on the diagonal."""
        c_in, c_out = self.channels[source], self.channels[target]
        if source == target:
            return None
        if source > target:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out),
                                 self._upsample(2 ** (source - target)))
        return self._downsample(c_in, c_out, target - source)

    def _upsample(self, scale: int) -> nn.Module:
        """The upsampling after a 1x1 fuse conv: nearest neighbour (HRNet's)."""
        return nn.Upsample(scale_factor=scale, mode="nearest")

    def _downsample(self, c_in: int, c_out: int, steps: int) -> nn.Sequential:
        """``steps`` stride-2 3x3 conv + BN steps, ReLU between them (keys ``{k}.0``, ``{k}.1``)."""
        return nn.Sequential(*(_conv_bn(c_in, c_out if k == steps - 1 else c_in, 3, stride=2, relu=k < steps - 1)
                               for k in range(steps)))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """One tensor per branch in, one per fused output (all branches, or branch 0) out."""
        features = [branch(x) for branch, x in zip(self.branches, features)]
        outputs = []
        for fuse in self.fuse_layers:
            total = 0
            for x, layer in zip(features, fuse):
                total = total + (x if layer is None else layer(x))
            outputs.append(self.relu(total))
        return outputs


class HRNetBackbone(nn.Module):
    """HRNet: (B, 3, H, W) -> (B, width, H/4, W/4), mmpose's module tree and forward.

    Parameters
    ----------
    width : int
        Channels of the highest-resolution branch (32 for HRNet-W32, 48 for
        HRNet-W48); branch ``b`` has ``width * 2**b``.
    stage1_blocks : int
        Bottlenecks of stage 1 (``layer1``).
    stages : sequence of (int, int)
        ``(number of modules, number of branches)`` of stages 2, 3, ...
    module : callable, optional
        ``module(stage, channels, multiscale_output) -> nn.Module`` builds one
        module of stage ``stage`` (2, 3, ...); default an :class:`HRModule` of
        basic blocks. HRNet-like backbones (HRFormer) pass their own.
    """

    def __init__(self, width: int = 32, stage1_blocks: int = BLOCKS_PER_BRANCH,
                 stages: tuple[tuple[int, int], ...] = HRNET_STAGES,
                 module: Callable[[int, list[int], bool], nn.Module] | None = None):
        super().__init__()
        width = int(width)
        if width < 1:
            raise ValueError(f"width must be a positive integer, not {width}")
        if module is None:
            def module(_, channels, multiscale_output):
                return HRModule(channels, multiscale_output=multiscale_output)
        self.width = width
        self.num_stages = 1 + len(stages)
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        self.conv2 = nn.Conv2d(STEM_CHANNELS, STEM_CHANNELS, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(STEM_CHANNELS)
        self.relu = nn.ReLU(inplace=True)
        stage1_channels = STEM_CHANNELS * Bottleneck.expansion
        shortcut = nn.Sequential(nn.Conv2d(STEM_CHANNELS, stage1_channels, 1, bias=False),
                                 nn.BatchNorm2d(stage1_channels))
        self.layer1 = nn.Sequential(
            Bottleneck(STEM_CHANNELS, STEM_CHANNELS, downsample=shortcut),
            *(Bottleneck(stage1_channels, STEM_CHANNELS) for _ in range(1, stage1_blocks)))
        previous = [stage1_channels]
        for stage, (num_modules, num_branches) in enumerate(stages, start=2):
            channels = [width * 2 ** b for b in range(num_branches)]
            self.add_module(f"transition{stage - 1}", self._transition(previous, channels))
            last_stage = stage == self.num_stages
            self.add_module(f"stage{stage}", nn.Sequential(*(
                module(stage, channels, not (last_stage and m == num_modules - 1))
                for m in range(num_modules))))
            previous = channels
        self.out_channels = width
        self._init_weights()

    @staticmethod
    def _transition(previous, channels) -> nn.ModuleList:
        """Entry ``b``: None if branch ``b`` goes on unchanged, a 3x3 conv + BN + ReLU if
        its channels change, or for a new branch a chain of stride-2 steps from the
        lowest-resolution previous branch."""
        layers: list[nn.Module | None] = []
        for b, c_out in enumerate(channels):
            if b < len(previous):
                layers.append(None if previous[b] == c_out else _conv_bn(previous[b], c_out, 3, relu=True))
            else:
                c_in = previous[-1]
                steps = b + 1 - len(previous)
                layers.append(nn.Sequential(*(
                    _conv_bn(c_in, c_out if k == steps - 1 else c_in, 3, stride=2, relu=True)
                    for k in range(steps))))
        return nn.ModuleList(layers)

    def _init_weights(self) -> None:
        """mmpose's HRNet initialisation: convolutions normal with std 0.001, batch
        norms at identity."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, width, H/4, W/4) fused highest-resolution features.

        H and W must be multiples of 32 (the fuse layers add upsampled maps).
        """
        x = self.relu(self.bn1(self.conv1(images)))
        x = self.relu(self.bn2(self.conv2(x)))
        features = [self.layer1(x)]
        for stage in range(2, 1 + self.num_stages):
            transition = getattr(self, f"transition{stage - 1}")
            inputs = []
            for b, layer in enumerate(transition):
                if layer is None:
                    inputs.append(features[b])
                else:
                    inputs.append(layer(features[b] if b < len(features) else features[-1]))
            features = getattr(self, f"stage{stage}")(inputs)
        return features[0]


class HRNetPose(nn.Module):
    """Top-down HRNet heatmap model (mmpose's ``td-hm_hrnet-w*``), key-compatible with mmpose.

    Parameters
    ----------
    num_keypoints : int
    width : int
        HRNet width: 32 (HRNet-W32) or 48 (HRNet-W48) for mmpose's checkpoints;
        any positive integer builds.

    Raises
    ------
    ValueError
        If ``width`` is not positive.
    """

    def __init__(self, num_keypoints: int, width: int = 32):
        super().__init__()
        self.backbone = HRNetBackbone(width)
        self.head = HeatmapHead(self.backbone.out_channels, num_keypoints, deconv_channels=())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised RGB -> (B, K, H/4, W/4) heatmaps; H, W multiples of 32."""
        return self.head(self.backbone(images))
