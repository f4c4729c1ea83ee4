"""``--family hrformer``: parity of the HRFormer presets with mmpose 1.3.2's top-down keypoints.

Builds mmpose's own HRFormer config
(``configs/body_2d_keypoint/topdown_heatmap/coco/td-hm_hrformer-{small,base}_8xb32-210e_coco-256x192.py``)
made into the AP-10K recipe of aptrack's ``hrformer-{s,b}-ap10k`` presets, gives it
seeded random weights, runs ``inference_topdown`` (flip test with
``shift_heatmap``, as the config has it) on the shared fixture image and boxes,
and either writes the fixture ``tests/test_mmpose_parity.py`` checks aptrack
against, or (``--full``) runs the full-size HRFormer-S (``--hrformer-size base``:
HRFormer-B) and prints the largest differences only.

Overrides of the COCO config, all recorded in the fixture description:

- ``train_dataloader.dataset.type = "AP10KDataset"``: mmpose's ``init_model``
  takes the dataset meta (AP-10K's 17 keypoints, flip pairs) from it;
- ``codec`` and ``model.head.decoder``: MSRA heatmaps for 256 x 256 crops,
  64 x 64, sigma 2 (the COCO config has 192 x 256 and 48 x 64);
- ``TopdownAffine.input_size = (256, 256)`` in the val / test pipelines;
- for the fixture only (not ``--full``): branch widths ``(W, 2W, 4W, 8W)``
  (``--width``, 8), one module in stage 3 and two in stage 4 (``num_modules
  (1, 1, 2)``), two blocks per branch in stage 2 and one in stages 3 and 4
  (``num_blocks (2, 1, 1)``), ``model.head.in_channels = W``. Heads (1, 2, 4, 8),
  windows 7, MLP ratio 4, two stage-1 bottlenecks, ``with_rpe`` and
  ``drop_path_rate`` (identity at inference) stay the config's. The config's
  SyncBN is turned into a plain batch norm by ``init_model``.

Weights: every large convolution weight is a view into one shared seeded pool
(every convolution is followed by a batch norm, so its scale does not matter);
each linear weight is a view into a pool of its fan-in, scaled by
``1 / sqrt(fan_in)`` so that attention scores and projections stay O(1); the
identical ``relative_position_index`` buffers are one tensor; the other small
tensors are packed into one buffer per dtype, so ``torch.save`` writes few
records. Batch-norm statistics are calibrated on seeded random crops, then the
affine parameters randomised, and the output layer divided by the feature
standard deviation, so that heatmaps and scores are not trivial.
"""

from __future__ import annotations

import math

import torch

from mmpose_parity import (BOXES, ROOT, _strided_view, aptrack_keypoints, assert_model_holds, calibrate_batch_norms,
                           checkpoint_folder, config_path, fixture_image, mmpose_keypoints, noise_batch,
                           pack_by_dtype, print_differences, randomise_batch_norms, save_checkpoints,
                           write_fixture)

CONFIGS = {size: f"configs/body_2d_keypoint/topdown_heatmap/coco/td-hm_hrformer-{size}_8xb32-210e_coco-256x192.py"
           for size in ("small", "base")}
PRESETS = {"small": "hrformer-s-ap10k", "base": "hrformer-b-ap10k"}
STEM = "hrformer"
INPUT_SIZE = (256, 256)  # width, height: the AP-10K configs'
HEATMAP_SIZE = (64, 64)
SIGMA = 2
FIXTURE_MODULES = (1, 1, 2)  # stages 2, 3, 4
FIXTURE_BLOCKS = (2, 1, 1)
POOL_SIZE = 1 << 14  # shared pool of large conv weights: 64 KiB of float32
SMALL = 64  # weights up to this size get their own values
LINEAR_POOL_SLACK = 1.25  # a linear pool is this much larger than its largest view: random offsets
CALIBRATION_BATCH = 8


def build(size: str, width: int | None):
    """mmpose's HRFormer-``size`` config in the AP-10K recipe, on the CPU, no weights.

    ``width`` (the fixture) also narrows the branches to ``(W, 2W, 4W, 8W)`` and
    cuts the modules and blocks to :data:`FIXTURE_MODULES` / :data:`FIXTURE_BLOCKS`.
    Returns the model and the overrides, as ``{config key: value}``.
    """
    from mmengine.config import Config
    from mmpose.apis import init_model

    cfg = Config.fromfile(str(config_path(CONFIGS[size])))
    codec = dict(type="MSRAHeatmap", input_size=INPUT_SIZE, heatmap_size=HEATMAP_SIZE, sigma=SIGMA)
    overrides = {"train_dataloader.dataset.type": "AP10KDataset", "codec": codec, "model.head.decoder": codec,
                 "{val,test}_dataloader.dataset.pipeline.TopdownAffine.input_size": list(INPUT_SIZE)}
    cfg.train_dataloader.dataset.type = "AP10KDataset"
    cfg.codec = codec
    cfg.model.head.decoder = codec
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        for step in loader.dataset.pipeline:
            if step.type == "TopdownAffine":
                step.input_size = INPUT_SIZE
    if width is not None:
        extra = cfg.model.backbone.extra
        for s, (stage, modules, blocks) in enumerate(zip(("stage2", "stage3", "stage4"), FIXTURE_MODULES,
                                                         FIXTURE_BLOCKS)):
            branches = extra[stage].num_branches
            extra[stage].num_channels = tuple(width * 2 ** b for b in range(branches))
            extra[stage].num_modules = modules
            extra[stage].num_blocks = (blocks,) * branches
            overrides[f"model.backbone.extra.{stage}.num_channels"] = list(extra[stage].num_channels)
            overrides[f"model.backbone.extra.{stage}.num_modules"] = modules
            overrides[f"model.backbone.extra.{stage}.num_blocks"] = list(extra[stage].num_blocks)
        cfg.model.head.in_channels = width
        overrides["model.head.in_channels"] = width
    model = init_model(cfg, checkpoint=None, device="cpu")  # drops the backbone's init_cfg (pretrained)
    overrides["model.backbone.init_cfg"] = None
    return model, overrides


def seeded_state(model, seed: int) -> dict[str, torch.Tensor]:
    """Seeded random weights for mmpose's HRFormer ``model``, loaded into it and returned compactly.

    See the module docstring for how the tensors are drawn and stored.
    """
    from torch.nn.modules.batchnorm import _BatchNorm  # mmengine's reverted SyncBN is a _BatchNormXd

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    pool = torch.randn(POOL_SIZE, generator=gen)
    state = {k: v for k, v in model.state_dict().items() if k.startswith(("backbone.", "head."))}
    bns = {name: m for name, m in model.named_modules() if isinstance(m, _BatchNorm)}
    bn_keys = {f"{name}.{k}" for name, m in bns.items() for k in m.state_dict()}
    layer_norm_weights = {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)}

    def pooled_linear(key, value):
        return value.dim() == 2 and value.numel() > SMALL and not key.endswith("relative_position_bias_table")

    largest: dict[int, int] = {}
    for key, value in state.items():
        if pooled_linear(key, value):
            largest[value.shape[1]] = max(largest.get(value.shape[1], 0), value.numel())
    linear_pools = {fan_in: torch.randn(int(n * LINEAR_POOL_SLACK), generator=gen) / math.sqrt(fan_in)
                    for fan_in, n in sorted(largest.items())}
    shared_index: dict[tuple, torch.Tensor] = {}
    new: dict[str, torch.Tensor] = {}
    own: list[str] = []  # keys with values of their own, packed at the end
    for key, value in state.items():
        if key.endswith("relative_position_index"):
            new[key] = shared_index.setdefault(tuple(value.shape), value.clone())
            continue
        if value.dim() == 4 and value.numel() > SMALL and not key.startswith("head.final_layer."):
            new[key] = _strided_view(pool, value.shape, gen)
            continue
        if pooled_linear(key, value):
            new[key] = _strided_view(linear_pools[value.shape[1]], value.shape, gen)
            continue
        own.append(key)
        if key in bn_keys:  # at their initial identity for the calibration, randomised after it
            new[key] = value.clone()
        elif value.dim() in (2, 4):  # small convs and linears, the output layer, the bias tables
            fan_in = value[0].numel() if not key.endswith("relative_position_bias_table") else 1
            new[key] = torch.randn(value.shape, generator=gen) / math.sqrt(fan_in)
        elif key in layer_norm_weights:
            new[key] = 0.5 + torch.rand(value.shape, generator=gen)
        else:  # biases, layer norm shifts
            new[key] = 0.1 * torch.randn(value.shape, generator=gen)
    model.load_state_dict(new, strict=False)

    bns = list(bns.values())
    x = noise_batch(gen, INPUT_SIZE[1], INPUT_SIZE[0], CALIBRATION_BATCH)
    calibrate_batch_norms(model, bns, x)  # train-mode batch norms only: dropout / drop path stay off
    randomise_batch_norms(bns, gen)
    with torch.no_grad():
        features = model.backbone(x)[-1]
        model.head.final_layer.weight.div_(float(features.std()))
    current = model.state_dict()
    for k in own:
        new[k] = current[k]
    pack_by_dtype(new, own)
    assert_model_holds(model, new)
    return new


def add_arguments(parser) -> None:
    parser.add_argument("--hrformer-size", choices=sorted(CONFIGS), default="small",
                        help="hrformer --full: HRFormer-S (small) or HRFormer-B (base)")


def run(args, version: str) -> int:
    """``--family hrformer``: the fixture at ``--width``, or with ``--full`` HRFormer-S / -B, printing only."""
    size = args.hrformer_size if args.full else "small"
    width = None if args.full else args.width
    model, overrides = build(size, width)
    assert len(model.dataset_meta["flip_indices"]) == 17, "not AP-10K's dataset meta"
    state = seeded_state(model, args.seed)
    image = fixture_image(args.out, args.seed, args.full)
    keypoints, scores = mmpose_keypoints(model, image, BOXES)
    architecture = {} if args.full else {"width": width, "num_modules": list(FIXTURE_MODULES),
                                         "num_blocks": list(FIXTURE_BLOCKS)}
    label = f"HRFormer-{size[0].upper()}" + ("" if args.full else f" at width {width}")
    meta = {"mmpose_version": version, "config": CONFIGS[size], "family": STEM, "seed": args.seed,
            "overrides": overrides,
            "kept": "the config's num_heads, window_sizes 7, mlp_ratios 4, stage 1 (two bottlenecks), with_rpe=True, "
                    "drop_path_rate (identity at inference), norm_cfg SyncBN (a plain batch norm after "
                    "init_model's revert_sync_batchnorm), HeatmapHead without deconvolutions, test_cfg flip_test "
                    "and shift_heatmap"}
    stem = f"{STEM}_w{width}_ap10k" if width else f"{STEM}_{size}"
    with checkpoint_folder(args) as folder:
        paths = save_checkpoints(state, meta, folder, stem)
        results = [aptrack_keypoints(p, PRESETS[size], architecture, image, BOXES) for p in paths]
    if not args.full:
        write_fixture(args.out, STEM, {**meta, "width": width}, paths, PRESETS[size], architecture, keypoints,
                      scores)
    print_differences(version, label, keypoints, scores, results)
    return 0


if __name__ == "__main__":  # pragma: no cover - run through mmpose_parity.py
    raise SystemExit(f"run: python {ROOT / 'benchmarks' / 'mmpose_parity.py'} --family {STEM}")
