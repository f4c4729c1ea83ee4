"""Model families: the network class of each, built from a preset; parameter and FLOP counts."""

from __future__ import annotations

import torch
from torch import nn

from aptrack.core.errors import ConfigError
from aptrack.models.cspnext import CSPNeXtHeatmap
from aptrack.models.hrformer import HRFormerPose
from aptrack.models.hrnet import HRNetPose
from aptrack.models.presets import Preset
from aptrack.models.resnet import ResNetSimpleBaseline
from aptrack.models.rtmpose import RTMPose
from aptrack.models.simplebaseline import SimpleBaseline
from aptrack.models.vitpose import ViTPose

FAMILIES: dict[str, type[nn.Module]] = {
    "simplebaseline": SimpleBaseline,  # aptrack's own: torchvision MobileNetV2 + deconvolutions
    "resnet": ResNetSimpleBaseline,    # mmpose's SimpleBaseline: ResNet-18..152 + HeatmapHead, mmpose's keys
    "hrnet": HRNetPose,                # mmpose's top-down HRNet-W32/W48 + 1x1 head, mmpose's keys
    "hrformer": HRFormerPose,          # mmpose's HRFormer-S/B: HRNet with window-attention blocks + 1x1 head
    "cspnext": CSPNeXtHeatmap,         # mmpose's CSPNeXt + HeatmapHead (UDP), mmpose's keys
    "rtmpose": RTMPose,                # mmpose's RTMPose: CSPNeXt + RTMCC head (SimCC vectors), mmpose's keys
    "vitpose": ViTPose,                # mmpose's ViTPose-S/B/L/H: plain ViT + 2-deconv HeatmapHead, mmpose's keys
}
"""Network class of each model family; a family's constructor takes ``num_keypoints``
and the preset's ``architecture`` as keyword arguments."""


def build_network(preset: Preset) -> nn.Module:
    """The untrained network of ``preset``'s family and architecture, in eval mode on the CPU.

    Raises
    ------
    ConfigError
        If the family is unknown or the architecture arguments are wrong.
    """
    if preset.family not in FAMILIES:
        raise ConfigError(f"model {preset.name}: unknown family '{preset.family}'; "
                          f"known: {', '.join(sorted(FAMILIES))}")
    try:
        model = FAMILIES[preset.family](num_keypoints=preset.layout.num_keypoints, **preset.architecture)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {preset.name}: bad architecture {preset.architecture} ({exc})") from None
    return model.eval()


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not, buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


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
