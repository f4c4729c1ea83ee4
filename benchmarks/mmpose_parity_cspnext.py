"""``--family cspnext``: parity of ``cspnext-m-udp-ap10k`` with mmpose 1.3.2 (CSPNeXt + UDP heatmaps).

Builds mmpose's own config
(``configs/animal_2d_keypoint/topdown_heatmap/ap10k/cspnext-m_udp_8xb64-210e_ap10k-256x256.py``)
at a reduced size (``--csp-deepen``, ``--csp-widen``, ``--csp-deconv``; the head's
``in_channels`` follows the widen factor), gives it seeded random weights, runs
``mmpose.apis.inference_topdown`` (the config's flip test, UDP warp and decoding) on
the shared fixture image and boxes of :mod:`mmpose_parity`, and writes
``cspnext_*`` fixture files next to them; ``--full`` builds CSPNeXt-m as published
and prints the largest differences only. Run through the main script::

    .venv/bin/python benchmarks/mmpose_parity.py --mmref /tmp/mmref --family cspnext
    .venv/bin/python benchmarks/mmpose_parity.py --mmref /tmp/mmref --family cspnext --full

This module also holds what ``--family rtmpose`` (:mod:`mmpose_parity_rtmpose`)
shares with it: the size options, the seeded weights and the fixture writer.

Seeded weights (:func:`seeded_state`): every large weight tensor (a convolution
above ``small`` values, the RTMPose head's 7x7 convolution included) is a view
into one shared seeded random pool, stored once by ``torch.save``; smaller
weights, linear layers among them, get their own values scaled by
``1 / sqrt(fan_in)``. The batch norms' affine parameters and the remaining
vectors (ScaleNorm gains, the attention unit's ``gamma``, ``beta`` and residual
scale, biases) are randomised, so that a tensor loaded into the wrong place
changes the keypoints; then the batch-norm statistics are calibrated (train-mode
cumulative averages) on seeded random crops of the fixture image
(:func:`calibration_crops`), which keeps the activations O(1) on that image.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mmpose_parity import (BOXES, _strided_view, aptrack_keypoints, assert_model_holds, calibrate_batch_norms,
                           checkpoint_folder, config_path, fixture_image, mmpose_keypoints, pack_by_dtype,
                           print_differences, randomise_batch_norms, save_checkpoints, write_fixture)

CONFIG = "configs/animal_2d_keypoint/topdown_heatmap/ap10k/cspnext-m_udp_8xb64-210e_ap10k-256x256.py"
PRESET = "cspnext-m-udp-ap10k"
FULL_SIZE = {"deepen": 0.67, "widen": 0.75, "deconv": 256}
"""CSPNeXt-m and its HeatmapHead as published (``--full``)."""
FIXTURE_SIZE = {"deepen": 0.33, "widen": 0.125, "deconv": 32}
"""The fixture: 1, 2, 2, 1 blocks; 16..128 channels; 32-channel deconvolutions."""
FIXTURE_POOL_SIZE = 1 << 15  # shared random pool of the fixture checkpoints: 128 KiB of float32
FULL_POOL_SIZE = 1 << 18
SMALL = 512  # weight tensors up to this many values get their own values
HEATMAP_GAIN = 0.3  # the heatmap head's output layer: peaks of a few units, not tens
BACKBONE_CHANNELS = 1024  # stage 4's channels before the widen factor
CALIBRATION_CROPS = 8
CALIBRATION_SIZE = 256
CALIBRATION_SIDES = (0.3, 0.9)  # calibration squares, as fractions of the image's shorter side
MEAN_RGB = (123.675, 116.28, 103.53)  # the configs' data preprocessor
STD_RGB = (58.395, 57.12, 57.375)


def add_arguments(parser) -> None:
    """Size options of the CSPNeXt families (cspnext and rtmpose)."""
    parser.add_argument("--csp-deepen", type=float, default=FIXTURE_SIZE["deepen"],
                        help="cspnext / rtmpose fixture: CSPNeXt deepen_factor")
    parser.add_argument("--csp-widen", type=float, default=FIXTURE_SIZE["widen"],
                        help="cspnext / rtmpose fixture: CSPNeXt widen_factor")
    parser.add_argument("--csp-deconv", type=int, default=FIXTURE_SIZE["deconv"],
                        help="cspnext fixture: channels of the head's three deconvolutions")


def size_of(args, full: dict, fixture: dict) -> dict:
    """The model size: ``full`` with ``--full``, else the command line's (defaults: ``fixture``)."""
    if args.full:
        return dict(full)
    given = {"deepen": getattr(args, "csp_deepen", None), "widen": getattr(args, "csp_widen", None),
             "deconv": getattr(args, "csp_deconv", None)}
    return {k: (given[k] if given.get(k) is not None else v) for k, v in fixture.items()}


def build_mmpose(config: str, overrides: dict):
    """mmpose's ``config`` with dotted-key ``overrides``, built on the CPU without weights."""
    from mmengine.config import Config
    from mmpose.apis import init_model

    cfg = Config.fromfile(str(config_path(config)))
    cfg.merge_from_dict(overrides)
    return init_model(cfg, checkpoint=None, device="cpu")


def _is_pooled(value: torch.Tensor, small: int) -> bool:
    return value.dim() == 4 and value.numel() > small


def calibration_crops(image: np.ndarray, seed: int, count: int = CALIBRATION_CROPS,
                      size: int = CALIBRATION_SIZE) -> torch.Tensor:
    """(count, 3, size, size) normalised RGB crops of ``image`` at seeded random squares.

    The batch norms are calibrated on crops of the fixture image itself, so that
    the activations on the crops mmpose and aptrack are compared on stay O(1)
    through CSPNeXt's many layers, and the outputs are no more sensitive to float
    rounding than a trained network's.
    """
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    crops = []
    for _ in range(count):
        side = rng.uniform(CALIBRATION_SIDES[0], CALIBRATION_SIDES[1]) * min(h, w)
        x0, y0 = rng.uniform(-side / 4, w - side * 3 / 4), rng.uniform(-side / 4, h - side * 3 / 4)
        zoom = size / side
        matrix = np.array([[zoom, 0.0, -x0 * zoom], [0.0, zoom, -y0 * zoom]])
        crops.append(cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR))
    rgb = np.stack(crops)[..., ::-1].astype(np.float32)
    normalised = (rgb - np.float32(MEAN_RGB)) / np.float32(STD_RGB)
    return torch.from_numpy(np.ascontiguousarray(normalised.transpose(0, 3, 1, 2)))


def seeded_state(model, seed: int, pool_size: int, calibration: torch.Tensor, small: int = SMALL,
                 gains: dict[str, float] | None = None) -> dict[str, torch.Tensor]:
    """Seeded random weights for an mmpose CSPNeXt model, loaded into it; returns a compact state dict.

    ``calibration`` (B, 3, H, W) are the normalised crops the batch-norm
    statistics are computed on (:func:`calibration_crops`). ``gains`` maps
    module names (e.g. ``"head.final_layer"``) to a factor on their weight and
    bias, which are then never pool views (a heatmap head's output scale sets
    the scores'). See the module docstring. Tensors that are not pool views are
    packed into one buffer per dtype, so ``torch.save`` writes a few records.
    """
    gains = dict(gains or {})
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    pool = torch.randn(pool_size, generator=gen)
    new: dict[str, torch.Tensor] = {}
    pooled: set[str] = set()
    for key, value in model.state_dict().items():
        if not key.startswith(("backbone.", "head.")):
            continue
        if _is_pooled(value, small) and key.rsplit(".", 1)[0] not in gains:
            new[key] = _strided_view(pool, value.shape, gen)
            pooled.add(key)
        elif key.endswith(".weight") and value.dim() >= 2:  # small convs, linear layers: unit-variance outputs
            gain = gains.get(key.rsplit(".", 1)[0], 1.0)
            new[key] = torch.randn(value.shape, generator=gen) * (gain / np.sqrt(value[0].numel()))
        else:
            new[key] = value.clone()
    model.load_state_dict(new, strict=False)

    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]  # the config's SyncBN, reverted by mmpose
    bn_keys = {f"{name}.{p}" for name, m in model.named_modules() if isinstance(m, _BatchNorm)
               for p in ("weight", "bias")}
    # random affine parameters and vectors first, so that the calibration sees them
    randomise_batch_norms(bns, gen, statistics=False)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in bn_keys or not name.startswith(("backbone.", "head.")) or name in pooled:
                continue
            if name.endswith(".bias"):
                param.copy_(0.1 * gains.get(name.rsplit(".", 1)[0], 1.0) * torch.randn(param.shape, generator=gen))
            elif name.endswith((".g", ".scale")):  # ScaleNorm gains, the residual scale
                param.copy_(0.5 + torch.rand(param.shape, generator=gen))
            elif name.endswith((".gamma", ".beta")):
                param.copy_(torch.rand(param.shape, generator=gen))
    calibrate_batch_norms(model, bns, calibration, whole_model=True)
    state = model.state_dict()
    own = [k for k in new if k not in pooled]
    for k in own:
        new[k] = state[k].clone()
    pack_by_dtype(new, own)
    assert_model_holds(model, new)
    return new


def run_family(args, version: str, family: str, config: str, preset: str, overrides: dict,
               architecture: dict, stem: str, extra: dict, label: str, gains: dict | None = None) -> int:
    """Make (or with ``--full`` only compare) one family's fixture; print the differences.

    ``extra`` goes into the fixture description (``flip_test``, ``shift_heatmap``, ...),
    ``gains`` to :func:`seeded_state`.
    """
    model = build_mmpose(config, overrides)
    image = fixture_image(args.out, args.seed, args.full)
    state = seeded_state(model, args.seed, FULL_POOL_SIZE if args.full else FIXTURE_POOL_SIZE,
                         calibration_crops(image, args.seed), gains=gains)
    keypoints, scores = mmpose_keypoints(model, image, BOXES)
    meta = {"mmpose_version": version, "config": config, "family": family, "overrides": overrides,
            "seed": args.seed}
    with checkpoint_folder(args) as folder:
        paths = save_checkpoints(state, meta, folder, stem)
        results = [aptrack_keypoints(p, preset, architecture, image, BOXES) for p in paths]
    if not args.full:
        write_fixture(args.out, family, meta, paths, preset, architecture, keypoints, scores, **extra)
    print_differences(version, label, keypoints, scores, results)
    return 0


def run(args, mmpose_version: str) -> int:
    """``--family cspnext``: the reduced CSPNeXt UDP fixture, or with ``--full`` CSPNeXt-m, printing only."""
    size = size_of(args, FULL_SIZE, FIXTURE_SIZE)
    widen, deepen, deconv = size["widen"], size["deepen"], int(size["deconv"])
    overrides = {"model.backbone.deepen_factor": deepen, "model.backbone.widen_factor": widen,
                 "model.backbone.init_cfg": None, "model.head.in_channels": int(BACKBONE_CHANNELS * widen),
                 "model.head.deconv_out_channels": [deconv] * 3}
    architecture = {"deepen_factor": deepen, "widen_factor": widen, "deconv_channels": [deconv] * 3}
    tag = f"d{deepen:g}_w{widen:g}".replace(".", "")
    return run_family(args, mmpose_version, "cspnext", CONFIG, PRESET, overrides, architecture,
                      f"cspnext_{tag}_udp_ap10k", {"flip_test": True, "shift_heatmap": False},
                      f"CSPNeXt deepen {deepen:g} widen {widen:g}, deconv {deconv}, UDP",
                      gains={"head.final_layer": HEATMAP_GAIN})
