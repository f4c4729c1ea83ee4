"""``--family vitpose`` of ``benchmarks/mmpose_parity.py``: aptrack's ViTPose presets vs mmpose 1.3.2.

mmpose is a reference only, never a dependency of aptrack. This builds mmpose's
own ViTPose-B config
(``configs/body_2d_keypoint/topdown_heatmap/coco/td-hm_ViTPose-base_8xb64-210e_coco-256x192.py``,
mmpretrain's ``VisionTransformer`` + ``HeatmapHead``) with these overrides, so that
it is the ``vitpose-*-ap10k`` presets' recipe:

- ``model.backbone.arch``: ``--vit-dims`` channels, ``--vit-layers`` layers,
  ``--vit-heads`` heads, MLP ``4 x dims`` (32 / 2 / 2 for the fixture; ViTPose-B's
  768 / 12 / 12 with ``--full``); ``init_cfg=None``, ``drop_path_rate=0``;
- ``model.head``: ``in_channels`` = dims, ``deconv_out_channels`` = two of
  ``--vit-deconv`` (16 for the fixture; 256 with ``--full``);
- the codec: ``MSRAHeatmap`` 192x256 -> 48x64, sigma 2 (the config has UDP),
  ``test_cfg.shift_heatmap=True`` and a ``TopdownAffine`` without UDP in the
  test pipeline (the ViTPose repository's AP-10K configs);
- ``train_dataloader.dataset.type='AP10KDataset'``, so that ``init_model`` gives
  the model AP-10K's keypoints and flip pairs.

Weights are seeded random values (unit-scale activations: fan-in scaled linear
layers, layer norms near identity, the head's batch norms calibrated on seeded
random crops and then perturbed). mmpose's ``inference_topdown`` (flip test)
runs on the shared ``tests/fixtures/mmpose/image.png`` with the shared boxes.
The weights are written twice: as an mmpose 1.x checkpoint and in the ViTPose
repository's layout (``backbone.blocks.*``, ``keypoint_head.*``, a position
embedding with a class-token row that its forward adds to every patch; chosen so
that ``pos[:, 1:] + pos[:, :1]`` is the 1.x embedding exactly). Then aptrack
loads both with ``vitpose-b-ap10k`` at the reduced size and the largest
differences are printed. Without ``--full`` the files, mmpose's keypoints and
``vitpose_fixture.json`` go to ``tests/fixtures/mmpose/``::

    .venv/bin/python benchmarks/mmpose_parity.py --mmref /tmp/mmref --family vitpose
    .venv/bin/python benchmarks/mmpose_parity.py --mmref /tmp/mmref --family vitpose --full
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmpose_parity import (BOXES, aptrack_keypoints, assert_model_holds, calibrate_batch_norms, checkpoint_folder,
                           config_path, fixture_image, mmpose_keypoints, noise_batch, pack_by_dtype,
                           print_differences, randomise_batch_norms, write_fixture)

CONFIG = "configs/body_2d_keypoint/topdown_heatmap/coco/td-hm_ViTPose-base_8xb64-210e_coco-256x192.py"
PRESET = "vitpose-b-ap10k"
INPUT_SIZE = (192, 256)  # width, height
HEATMAP_SIZE = (48, 64)
SIGMA = 2.0
MLP_RATIO = 4
FIXTURE_SIZE = {"dims": 32, "layers": 2, "heads": 2, "deconv": 16}
FULL_SIZE = {"dims": 768, "layers": 12, "heads": 12, "deconv": 256}  # ViTPose-B
POS_EMBED_QUANTUM = 2.0 ** -10  # the 1.x embedding's values are multiples of this ...
CLS_ROW_QUANTUM = 2.0 ** -4     # ... and the class-token row's of this: pos - row + row is exact
CALIBRATION_CROPS = 8
STEM = "vitpose_ap10k"


def add_arguments(parser) -> None:
    """The reduced size of the fixture's ViT (``--full`` replaces it by ViTPose-B's)."""
    group = parser.add_argument_group("--family vitpose")
    group.add_argument("--vit-dims", type=int, default=FIXTURE_SIZE["dims"], help="ViT embedding channels")
    group.add_argument("--vit-layers", type=int, default=FIXTURE_SIZE["layers"], help="ViT layers")
    group.add_argument("--vit-heads", type=int, default=FIXTURE_SIZE["heads"], help="ViT attention heads")
    group.add_argument("--vit-deconv", type=int, default=FIXTURE_SIZE["deconv"],
                       help="channels of the head's two transposed convolutions")


def overrides(size: dict) -> dict:
    """The config overrides, by dotted path (also written into the fixture description)."""
    w, h = INPUT_SIZE
    return {
        "model.backbone.arch": {"embed_dims": size["dims"], "num_layers": size["layers"],
                                "num_heads": size["heads"], "feedforward_channels": MLP_RATIO * size["dims"]},
        "model.backbone.init_cfg": None,
        "model.backbone.drop_path_rate": 0.0,
        "model.head.in_channels": size["dims"],
        "model.head.deconv_out_channels": [size["deconv"]] * 2,
        "model.head.decoder": {"type": "MSRAHeatmap", "input_size": [w, h], "heatmap_size": list(HEATMAP_SIZE),
                               "sigma": SIGMA},
        "model.test_cfg.shift_heatmap": True,
        "test pipeline TopdownAffine": {"input_size": [w, h], "use_udp": False},
        "train_dataloader.dataset.type": "AP10KDataset",
    }


def build_mmpose_vitpose(size: dict):
    """mmpose's ViTPose-B config with :func:`overrides`, on the CPU, no weights."""
    from mmengine.config import Config
    from mmpose.apis import init_model

    cfg = Config.fromfile(str(config_path(CONFIG)))
    o = overrides(size)
    cfg.model.backbone.arch = o["model.backbone.arch"]
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.drop_path_rate = 0.0
    cfg.model.head.in_channels = size["dims"]
    cfg.model.head.deconv_out_channels = tuple(o["model.head.deconv_out_channels"])
    cfg.model.head.decoder = dict(type="MSRAHeatmap", input_size=INPUT_SIZE, heatmap_size=HEATMAP_SIZE,
                                  sigma=SIGMA)
    cfg.model.test_cfg.shift_heatmap = True
    pipeline = [dict(type="LoadImage"), dict(type="GetBBoxCenterScale"),
                dict(type="TopdownAffine", input_size=INPUT_SIZE, use_udp=False), dict(type="PackPoseInputs")]
    cfg.val_dataloader.dataset.pipeline = pipeline
    cfg.test_dataloader.dataset.pipeline = pipeline
    cfg.train_dataloader.dataset.type = "AP10KDataset"
    return init_model(cfg, checkpoint=None, device="cpu")


def _quantised(x: torch.Tensor, quantum: float) -> torch.Tensor:
    return torch.round(x / quantum) * quantum


def seeded_vit_state(model, seed: int) -> dict[str, torch.Tensor]:
    """Seeded random weights for mmpose's ViTPose ``model``, loaded into it and returned.

    All tensors are views into one flat float32 buffer (``torch.save`` writes it
    as one record). The position embedding's values are multiples of
    ``POS_EMBED_QUANTUM``.
    """
    gen = torch.Generator().manual_seed(seed)
    state = {k: v for k, v in model.state_dict().items() if k.startswith(("backbone.", "head."))}
    new: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        shape = value.shape
        if not value.is_floating_point():
            new[key] = value.clone()
        elif key.endswith("pos_embed"):
            new[key] = _quantised(0.5 * torch.randn(shape, generator=gen), POS_EMBED_QUANTUM)
        elif ".ln" in key or key.startswith("backbone.ln"):  # layer norms near identity
            base = 1.0 if key.endswith("weight") else 0.0
            new[key] = base + 0.2 * torch.randn(shape, generator=gen)
        elif value.dim() >= 2:  # linear and conv weights: fan-in scaled
            fan_in = value[0].numel() if "deconv" not in key else value.shape[0] * value[0, 0].numel()
            new[key] = torch.randn(shape, generator=gen) / np.sqrt(fan_in)
        else:
            new[key] = 0.1 * torch.randn(shape, generator=gen)
    model.load_state_dict(new, strict=False)

    # the head's batch norms: statistics of seeded random crops, then perturbed
    bns = [m for m in model.head.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    w, h = INPUT_SIZE
    calibrate_batch_norms(model, bns, noise_batch(gen, h, w, CALIBRATION_CROPS))
    randomise_batch_norms(bns, gen)
    with torch.no_grad():
        final = model.head.final_layer
        final.bias.copy_(0.1 * torch.randn(final.bias.shape, generator=gen))
    state = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("backbone.", "head."))}
    pack_by_dtype(state, [k for k, v in state.items() if v.dtype == torch.float32])
    model.load_state_dict(state, strict=False)
    assert_model_holds(model, state)
    return state


_TO_VITPOSE_REPOSITORY = (("backbone.patch_embed.projection.", "backbone.patch_embed.proj."),
                          (".ln1.", ".norm1."), (".ln2.", ".norm2."),
                          (".ffn.layers.0.0.", ".mlp.fc1."), (".ffn.layers.1.", ".mlp.fc2."))


def vitpose_repository_state(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """mmpose 1.x ViTPose tensors under the ViTPose repository's names (its ``vit.py`` and 0.x head).

    The position embedding gets a seeded class-token row ``r`` first and
    ``pos - r`` after it, so that the repository's ``pos[:, 1:] + pos[:, :1]`` is
    the 1.x embedding, exactly (both quantised, see the constants).
    """
    gen = torch.Generator().manual_seed(seed + 1)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key == "backbone.pos_embed":
            row = _quantised(torch.randn((1, 1, value.shape[-1]), generator=gen), CLS_ROW_QUANTUM)
            value = torch.cat([row, value - row], dim=1)
            assert torch.equal(value[:, 1:] + value[:, :1], state[key])
        elif key == "backbone.ln1.weight" or key == "backbone.ln1.bias":
            key = "backbone.last_norm." + key.rsplit(".", 1)[1]
        elif key.startswith("backbone."):
            key = key.replace("backbone.layers.", "backbone.blocks.", 1)
            for old, new in _TO_VITPOSE_REPOSITORY:
                key = key.replace(old, new)
        elif key.startswith("head."):
            key = "keypoint_head." + key[len("head."):]
        out[key] = value
    return out


def save_checkpoints(state, meta, folder: Path, seed: int) -> tuple[Path, Path]:
    """The weights as an mmpose 1.x file and as a ViTPose-repository (0.x) file."""
    v1, v0 = folder / f"{STEM}_mmpose1x.pth", folder / f"{STEM}_vitpose0x.pth"
    torch.save({"meta": meta, "state_dict": state}, v1)
    torch.save({"meta": {**meta, "layout": "ViTPose repository (mmpose 0.x)"},
                "state_dict": vitpose_repository_state(state, seed)}, v0)
    return v1, v0


def aptrack_architecture(size: dict) -> dict:
    """The preset architecture keys a reduced-size fixture changes."""
    return {"embed_dims": size["dims"], "num_layers": size["layers"], "num_heads": size["heads"],
            "feedforward_channels": MLP_RATIO * size["dims"], "deconv_channels": [size["deconv"]] * 2}


def run(args, mmpose_version: str) -> int:
    """Write the ViTPose fixture (or, with ``--full``, compare ViTPose-B) and print the differences."""
    size = dict(FULL_SIZE) if args.full else {"dims": args.vit_dims, "layers": args.vit_layers,
                                              "heads": args.vit_heads, "deconv": args.vit_deconv}
    torch.manual_seed(args.seed)
    model = build_mmpose_vitpose(size)
    state = seeded_vit_state(model, args.seed)
    image = fixture_image(args.out, args.seed, args.full)
    keypoints, scores = mmpose_keypoints(model, image, BOXES)
    meta = {"mmpose_version": mmpose_version, "config": CONFIG, "family": "vitpose",
            "overrides": overrides(size), "seed": args.seed}
    architecture = aptrack_architecture(size)
    with checkpoint_folder(args) as folder:
        paths = save_checkpoints(state, meta, folder, args.seed)
        results = [aptrack_keypoints(p, PRESET, architecture, image, BOXES) for p in paths]
    if not args.full:
        layouts = {"1.x": "mmpose 1.x (mmpretrain VisionTransformer)",
                   "0.x": "ViTPose repository (backbone.blocks.*, keypoint_head.*, pos_embed with a class-token row)"}
        write_fixture(args.out, "vitpose", meta, paths, PRESET, architecture, keypoints, scores,
                      checkpoint_layouts=layouts)
    print_differences(mmpose_version, f"ViTPose {size}", keypoints, scores, results,
                      names=("1.x", "0.x (ViTPose repository)"))
    return 0
