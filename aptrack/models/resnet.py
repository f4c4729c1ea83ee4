"""SimpleBaseline on a ResNet backbone, laid out as mmpose's ``TopdownPoseEstimator``.

The module tree mirrors mmpose 1.x's ``ResNet`` backbone plus ``HeatmapHead``,
so mmpose's published checkpoints (e.g. ``td-hm_res50_8xb64-210e_ap10k-256x256``)
load with ``load_state_dict(strict=True)`` once their keys have gone through
:func:`aptrack.models.mmpose_keys.mmpose_state_dict`. State dict keys::

    backbone.conv1.weight                      7x7 stride-2 stem, no bias
    backbone.bn1.{weight,bias,running_mean,running_var,num_batches_tracked}
    backbone.layer{1..4}.{i}.conv{1,2[,3]}.weight
    backbone.layer{1..4}.{i}.bn{1,2[,3]}.*
    backbone.layer{1..4}.0.downsample.{0,1}.*  1x1 conv + BN on the shortcut
    head.deconv_layers.{0,3,6}.weight          transposed convs, no bias
    head.deconv_layers.{1,4,7}.*               their batch norms (2, 5, 8 are ReLUs)
    head.final_layer.{weight,bias}             1x1 conv to K heatmaps

The residual blocks are torchvision's ``BasicBlock`` and ``Bottleneck``: their
parameter names (``conv1``, ``bn1``, ..., ``downsample.0/1``) and behaviour
(stride on the first 3x3 conv of a basic block and on the 3x3 conv of a
bottleneck, mmpose's default ``style='pytorch'``) are mmpose's.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from aptrack.models.simplebaseline import deconv_stack, init_head

RESNET_DEPTHS: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
"""Residual block type and number of blocks of each stage, by depth (as mmpose's ``ResNet``)."""

class ResNetBackbone(nn.Module):
    """ResNet without its pooling and classifier: (B, 3, H, W) -> (B, C, H/32, W/32).

    ``C`` is 512 for depths 18 and 34, 2048 otherwise (:attr:`out_channels`).

    Parameters
    ----------
    depth : int
        One of 18, 34, 50, 101, 152.
    """

    def __init__(self, depth: int = 50):
        super().__init__()
        if depth not in RESNET_DEPTHS:
            raise ValueError(f"unknown ResNet depth {depth}; known: {', '.join(map(str, RESNET_DEPTHS))}")
        block, stage_blocks = RESNET_DEPTHS[depth]
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = 64
        for stage, num_blocks in enumerate(stage_blocks):
            planes = 64 * 2 ** stage
            stride = 1 if stage == 0 else 2
            out_channels = planes * block.expansion
            downsample = None
            if stride != 1 or channels != out_channels:
                downsample = nn.Sequential(
                    nn.Conv2d(channels, out_channels, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm2d(out_channels))
            blocks = [block(channels, planes, stride=stride, downsample=downsample)]
            blocks += [block(out_channels, planes) for _ in range(1, num_blocks)]
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
            channels = out_channels
        self.out_channels = channels
        self._init_weights()

    def _init_weights(self) -> None:
        """mmpose's initialisation: Kaiming-normal convs (fan-out, ReLU gain), batch norms
        at identity, and the last batch norm of every residual block at zero so each
        block starts as its shortcut (``zero_init_residual``)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C, ceil(H/32), ceil(W/32)) features of the last stage."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class HeatmapHead(nn.Module):
    """N x [stride-2 transposed conv, BN, ReLU] -> 1x1 conv: (B, C, h, w) -> (B, K, h*2^N, w*2^N).

    Parameters
    ----------
    in_channels : int
    num_keypoints : int
    deconv_channels : sequence of int
        Output channels of each transposed convolution.
    deconv_kernel : int
        Their kernel size: 4, 3 or 2.
    """

    def __init__(self, in_channels: int, num_keypoints: int, deconv_channels=(256, 256, 256),
                 deconv_kernel: int = 4):
        super().__init__()
        layers, channels = deconv_stack(in_channels, deconv_channels, deconv_kernel)
        self.deconv_layers = nn.Sequential(*layers) if layers else nn.Identity()
        self.final_layer = nn.Conv2d(channels, num_keypoints, kernel_size=1)
        init_head(self.modules())  # mmpose's head initialisation is SimpleBaseline's

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, K, h * 2^N, w * 2^N) heatmaps."""
        return self.final_layer(self.deconv_layers(features))


class ResNetSimpleBaseline(nn.Module):
    """SimpleBaseline (Xiao et al. 2018) with a ResNet backbone, key-compatible with mmpose.

    Parameters
    ----------
    num_keypoints : int
    depth : int
        ResNet depth: 18, 34, 50, 101 or 152.
    deconv_channels : sequence of int
        Output channels of each stride-2 transposed convolution of the head;
        three of them turn the stride-32 features into stride-4 heatmaps.
    deconv_kernel : int
        Kernel size of the transposed convolutions (4, 3 or 2).

    Raises
    ------
    ValueError
        If ``depth`` or ``deconv_kernel`` is not one of the values above.
    """

    def __init__(self, num_keypoints: int, depth: int = 50, deconv_channels=(256, 256, 256),
                 deconv_kernel: int = 4):
        super().__init__()
        self.backbone = ResNetBackbone(depth)
        self.head = HeatmapHead(self.backbone.out_channels, num_keypoints, deconv_channels, deconv_kernel)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised RGB -> (B, K, H/4, W/4) heatmaps with three deconvolutions.

        H and W should be multiples of 32: other sizes are rounded up at stride 32
        (a 64 x 48 crop gives 16 x 16 heatmaps), as in mmpose.
        """
        return self.head(self.backbone(images))
