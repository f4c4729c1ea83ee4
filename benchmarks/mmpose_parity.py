"""Parity of aptrack's ``res50-ap10k`` preset with mmpose 1.3.2's top-down keypoints.

mmpose is a reference only, never a dependency of aptrack: this script builds
mmpose's own SimpleBaseline config
(``configs/animal_2d_keypoint/topdown_heatmap/ap10k/td-hm_res50_8xb64-210e_ap10k-256x256.py``)
with seeded random weights, runs ``mmpose.apis.inference_topdown`` (flip test
on, as the config has it) on a fixed image with fixed boxes, and either writes
the fixture that ``tests/test_mmpose_parity.py`` checks aptrack against, or
(``--full``) runs the full-size model and prints the largest difference
between mmpose's keypoints and aptrack's.

Installing the reference (outside the project; the venv is never touched)::

    pip download --no-deps -d /tmp/mmwheels mmpose==1.3.2 mmengine==0.10.7 \\
        mmcv-lite==2.2.0 mmpretrain==1.2.0 addict yapf termcolor json_tricks \\
        munkres einops rich shapely terminaltables platformdirs six
    .venv/bin/python -m pip install --no-deps --target /tmp/mmref /tmp/mmwheels/*.whl

(the venv already has torch, torchvision, numpy, opencv, scipy, matplotlib,
pyyaml, packaging, pygments, markdown-it-py). xtcocotools (compiled) is not
installed. At run time :func:`install_shims` stubs ``xtcocotools``
(``.coco``, ``.cocoeval``, ``.mask``), ``mmpretrain.apis``, ``mmdet.utils``
(imported by RTMO's head), ``pkg_resources`` if missing (mmengine's
``get_installed_path`` then falls back to ``find_spec``), aliases
``importlib_metadata`` to ``importlib.metadata`` if missing, and makes mmcv's
compiled-op loader ``mmcv.utils.ext_loader.load_ext`` return no-op functions.
Then::

    .venv/bin/python benchmarks/mmpose_parity.py --mmref /tmp/mmref            # writes tests/fixtures/mmpose/
    .venv/bin/python benchmarks/mmpose_parity.py --mmref /tmp/mmref --full     # depth 50, 256 channels, prints only
    .venv/bin/python benchmarks/mmpose_parity.py --mmref /tmp/mmref --family hrnet          # HRNet-W8 fixture
    .venv/bin/python benchmarks/mmpose_parity.py --mmref /tmp/mmref --family hrnet --full   # HRNet-W32, prints only

``--family hrnet`` builds mmpose's own HRNet config
(``configs/animal_2d_keypoint/topdown_heatmap/ap10k/td-hm_hrnet-w32_8xb64-210e_ap10k-256x256.py``)
with the branch widths overridden to ``(W, 2W, 4W, 8W)`` (``--width``, 8 for the
fixture; the stem and stage 1 keep their 64 / 256 channels, as in mmpose) and
the head's ``in_channels`` to ``W``. It reuses the res fixture's ``image.png``
and boxes and writes ``hrnet_w{W}_ap10k_mmpose{1x,0x}.pth``,
``hrnet_mmpose_keypoints.npz`` and ``hrnet_fixture.json`` next to them; its
shared random pool is smaller (``HRNET_POOL_SIZE``) to keep the two checkpoints small.

Checkpoint size: the fixture is a ResNet-18 (11M parameters). To keep the
committed files small every large weight tensor is a (possibly overlapping,
``as_strided``) view into one shared seeded random pool, which ``torch.save``
stores once; small tensors (batch norms, the 1x1 output layer) are their own.
BN running statistics are calibrated on seeded random crops (train-mode
cumulative averages), then the BN affine parameters are randomised, so that
activations stay O(1) and the heatmaps are not trivial.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import json
import sys
import tempfile
import types
import typing
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "mmpose"
CONFIG = "configs/animal_2d_keypoint/topdown_heatmap/ap10k/td-hm_res50_8xb64-210e_ap10k-256x256.py"
HRNET_CONFIG = "configs/animal_2d_keypoint/topdown_heatmap/ap10k/td-hm_hrnet-w32_8xb64-210e_ap10k-256x256.py"
PHOTO = Path("/work/shared/assets/animalpose/images/2007_000063.jpg")
IMAGE_SIZE = (320, 240)  # width, height
BOXES = np.array([[40.0, 30.0, 210.0, 200.0],
                  [150.5, 60.25, 300.0, 235.0],
                  [-20.0, 100.0, 120.0, 260.0]], np.float32)  # the last one leaves the frame
POOL_SIZE = 1 << 18  # shared random pool of large tensors: 1 MiB of float32
HRNET_POOL_SIZE = 1 << 15  # the HRNet fixture's pool: 128 KiB of float32
HRNET_SMALL = 512  # the HRNet fixture's threshold: its many 3x3 convs come from the pool
SMALL = 8192  # tensors up to this size get their own values


# ---------------------------------------------------------------- mmpose import shims

def _stub(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def install_shims(mmref: str | None) -> None:
    """Make ``import mmpose.apis`` work from a ``--target`` install without compiled extras."""
    if mmref and mmref not in sys.path:
        sys.path.insert(0, mmref)

    class _Unavailable:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("xtcocotools is stubbed out (not needed for inference)")

    xtc = _stub("xtcocotools")
    xtc.__path__ = []
    xtc.coco = _stub("xtcocotools.coco", COCO=_Unavailable)
    xtc.cocoeval = _stub("xtcocotools.cocoeval", COCOeval=_Unavailable)
    xtc.mask = _stub("xtcocotools.mask")
    try:
        import importlib_metadata  # noqa: F401
    except ImportError:
        sys.modules["importlib_metadata"] = importlib.metadata
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        class DistributionNotFound(Exception):
            pass

        def get_distribution(name):
            raise DistributionNotFound(name)

        _stub("pkg_resources", DistributionNotFound=DistributionNotFound, get_distribution=get_distribution)
    import mmcv.utils.ext_loader as ext_loader

    class _NoOps:
        def __getattr__(self, name):
            return lambda *args, **kwargs: None

    ext_loader.load_ext = lambda name, funcs: _NoOps()
    _stub("mmpretrain.apis")
    try:
        import mmdet.utils  # noqa: F401
    except ImportError:
        mmdet = _stub("mmdet")
        mmdet.__path__ = []
        mmdet.utils = _stub("mmdet.utils", ConfigType=typing.Any, OptConfigType=typing.Any,
                            OptMultiConfig=typing.Any, reduce_mean=lambda tensor: tensor)


def config_path(config: str = CONFIG) -> Path:
    import mmpose
    return Path(mmpose.__file__).parent / ".mim" / config


# ---------------------------------------------------------------- seeded model and image

def build_mmpose(depth: int, channels: int, config: str = CONFIG):
    """mmpose's SimpleBaseline ``config``, backbone depth and deconv channels overridden, on the CPU, no weights."""
    from mmengine.config import Config
    from mmpose.apis import init_model

    cfg = Config.fromfile(str(config_path(config)))
    cfg.model.backbone.depth = depth
    cfg.model.backbone.init_cfg = None
    cfg.model.head.in_channels = 512 if depth < 50 else 2048
    cfg.model.head.deconv_out_channels = (channels,) * 3
    return init_model(cfg, checkpoint=None, device="cpu")


def build_mmpose_hrnet(width: int):
    """mmpose's HRNet-W32 config with branch widths ``(W, 2W, 4W, 8W)``, on the CPU, no weights."""
    from mmengine.config import Config
    from mmpose.apis import init_model

    cfg = Config.fromfile(str(config_path(HRNET_CONFIG)))
    extra = cfg.model.backbone.extra
    for stage in ("stage2", "stage3", "stage4"):
        extra[stage].num_channels = tuple(width * 2 ** b for b in range(extra[stage].num_branches))
    cfg.model.backbone.init_cfg = None
    cfg.model.head.in_channels = width
    return init_model(cfg, checkpoint=None, device="cpu")


def _strided_view(pool: torch.Tensor, shape, gen: torch.Generator) -> torch.Tensor:
    """A view of ``shape`` into ``pool``: a random contiguous slice, or rows overlapping if too large."""
    numel = int(np.prod(shape))
    if numel <= len(pool):
        offset = int(torch.randint(0, len(pool) - numel + 1, (1,), generator=gen))
        return pool[offset:offset + numel].view(shape)
    rest = numel // shape[0]
    row_stride = (len(pool) - rest) // (shape[0] - 1)
    strides = [row_stride] + list(torch.empty(shape[1:]).stride())
    return pool.as_strided(tuple(shape), tuple(strides), 0)


def _pooled(key: str, value: torch.Tensor, small: int) -> bool:
    """Whether ``key`` is a large conv / deconv weight taken from the pool (never the output layer)."""
    return value.dim() == 4 and value.numel() > small and not key.startswith("head.final_layer.")


def seeded_state(model, seed: int, pool_size: int = POOL_SIZE, small: int = SMALL,
                 normalise_head: bool = False, pack: bool = False) -> dict[str, torch.Tensor]:
    """Seeded random weights for ``model``, loaded into it, and returned as a compact state dict.

    ``normalise_head`` divides the 1x1 output layer's weights by the standard
    deviation of the backbone features on the calibration batch (HRNet's
    residual sums grow with depth; the heatmaps would be in the thousands);
    ``pack`` makes all tensors that are not pool views views into one buffer per
    dtype, so that ``torch.save`` writes a few records instead of one per tensor.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    pool = torch.randn(pool_size, generator=gen)
    state = model.state_dict()
    new: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not key.startswith(("backbone.", "head.")):
            continue
        if _pooled(key, value, small):  # large conv / deconv weights: pool views
            new[key] = _strided_view(pool, value.shape, gen)
        elif value.dim() == 4:  # small convs (the 1x1 output layer): unit-variance outputs
            new[key] = torch.randn(value.shape, generator=gen) / np.sqrt(value[0].numel())
        else:
            new[key] = value.clone()
    model.load_state_dict(new, strict=False)

    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    x = noise_batch(gen)
    calibrate_batch_norms(model, bns, x, whole_model=True)
    randomise_batch_norms(bns, gen)
    with torch.no_grad():
        model.head.final_layer.bias.copy_(0.1 * torch.randn(model.head.final_layer.bias.shape, generator=gen))
        if normalise_head:
            features = model.backbone(x)[-1]
            model.head.final_layer.weight.div_(float(features.std()))
    for key, value in model.state_dict().items():
        if key in new and not _pooled(key, value, small):
            new[key] = value.clone()
    if pack:
        pack_by_dtype(new, [k for k, v in new.items()
                            if v.untyped_storage().data_ptr() != pool.untyped_storage().data_ptr()])
    assert_model_holds(model, new)
    return new


def noise_batch(gen: torch.Generator, height: int = 256, width: int = 256, count: int = 8) -> torch.Tensor:
    """Seeded calibration crops: smoothed normal noise.

    Returns
    -------
    torch.Tensor
        (count, 3, height, width) float32, a 5x5 box filter of N(0, 1) noise, times 2.
    """
    x = torch.randn(count, 3, height, width, generator=gen)
    return torch.nn.functional.avg_pool2d(x, 5, 1, 2) * 2  # some spatial correlation


def calibrate_batch_norms(model, batch_norms: list, batch: torch.Tensor, whole_model: bool = False) -> None:
    """Set the batch norms' running statistics to those of ``batch``.

    Parameters
    ----------
    model
        An mmpose top-down model; ``model.head(model.backbone(batch))`` runs once, without gradients.
    batch_norms : list of torch.nn.modules.batchnorm._BatchNorm
        The batch norms to calibrate (cumulative averages over ``batch``).
    batch : torch.Tensor
        (B, 3, H, W) normalised input crops.
    whole_model : bool
        Put all of ``model`` in train mode, else only ``batch_norms`` (dropout, drop path stay off).

    Leaves ``model`` in eval mode and the batch norms at momentum 0.1.
    """
    for bn in batch_norms:
        bn.reset_running_stats()
        bn.momentum = None
    if whole_model:
        model.train()
    else:
        model.eval()
        for bn in batch_norms:
            bn.train()
    with torch.no_grad():
        model.head(model.backbone(batch))
    model.eval()
    for bn in batch_norms:
        bn.momentum = 0.1


def randomise_batch_norms(batch_norms: list, gen: torch.Generator, statistics: bool = True) -> None:
    """Seeded random affine parameters and (``statistics``) perturbed running statistics, in place.

    Per batch norm, in this order of draws from ``gen``: weight U(0.5, 1.5), bias
    N(0, 0.2^2) and, with ``statistics``, running mean + N(0, 0.05^2), running
    variance times U(0.9, 1.1).
    """
    with torch.no_grad():
        for bn in batch_norms:
            bn.weight.copy_(0.5 + torch.rand(bn.weight.shape, generator=gen))
            bn.bias.copy_(0.2 * torch.randn(bn.bias.shape, generator=gen))
            if statistics:
                bn.running_mean.add_(0.05 * torch.randn(bn.running_mean.shape, generator=gen))
                bn.running_var.mul_(0.9 + 0.2 * torch.rand(bn.running_var.shape, generator=gen))


def pack_by_dtype(tensors: dict[str, torch.Tensor], keys: list[str]) -> None:
    """Make ``tensors[k]`` for each of ``keys`` a view into one flat buffer per dtype, in place.

    ``torch.save`` then writes one record per dtype instead of one per tensor.
    The values are copied; each buffer holds its tensors in the order of ``keys``.
    """
    for dtype in {tensors[k].dtype for k in keys}:
        group = [k for k in keys if tensors[k].dtype == dtype]
        flat = torch.cat([tensors[k].reshape(-1) for k in group])
        offset = 0
        for k in group:
            n = tensors[k].numel()
            tensors[k] = flat[offset:offset + n].view(tensors[k].shape)
            offset += n


def assert_model_holds(model, state: dict[str, torch.Tensor]) -> None:
    """Assert that ``model`` holds exactly the values of ``state`` (the ones saved), key by key."""
    for key, value in model.state_dict().items():
        if key in state:
            assert torch.equal(value, state[key]), key


def test_image(seed: int) -> np.ndarray:
    """A fixed BGR uint8 image of IMAGE_SIZE: a real photo if available, else structured seeded noise."""
    if PHOTO.exists():
        image = cv2.imread(str(PHOTO), cv2.IMREAD_COLOR)
        return cv2.resize(image, IMAGE_SIZE, interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(seed)
    w, h = IMAGE_SIZE
    noise = rng.normal(0, 1, (h // 8, w // 8, 3)).astype(np.float32)
    image = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC) * 60 + 128
    image += rng.normal(0, 10, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def fixture_image(folder: Path, seed: int, full: bool) -> np.ndarray:
    """The shared fixture image ``folder / "image.png"`` (BGR uint8), read as the tests read it.

    The res fixture writes it. With ``full`` (nothing is written) a missing file
    gives :func:`test_image`; otherwise it raises ``SystemExit``.
    """
    stored = folder / "image.png"
    if stored.exists():
        return cv2.imread(str(stored), cv2.IMREAD_COLOR)
    if not full:
        raise SystemExit(f"{stored} is missing: make the res fixture first")
    return test_image(seed)


# ---------------------------------------------------------------- the two implementations

def mmpose_keypoints(model, image: np.ndarray, boxes: np.ndarray):
    """mmpose's ``inference_topdown`` keypoints (N, K, 2) and scores (N, K), float32."""
    from mmpose.apis import inference_topdown

    keypoints, scores = [], []
    for box in boxes:  # one call per box, as the brief's recipe; the result is the same batched
        (sample,) = inference_topdown(model, image, bboxes=box[None].astype(np.float32), bbox_format="xyxy")
        keypoints.append(sample.pred_instances.keypoints[0])
        scores.append(sample.pred_instances.keypoint_scores[0])
    return np.asarray(keypoints, np.float32), np.asarray(scores, np.float32)


def aptrack_keypoints(checkpoint: Path, preset_name: str, architecture: dict, image: np.ndarray,
                      boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """aptrack's keypoints from a checkpoint file, loaded with a preset at a changed size.

    Parameters
    ----------
    checkpoint : Path
        An mmpose (1.x or 0.x) checkpoint.
    preset_name : str
        The aptrack preset; ``architecture`` updates its ``architecture`` entries.
    architecture : dict
    image : np.ndarray
        BGR uint8 image.
    boxes : np.ndarray
        (N, 4) xyxy boxes.

    Returns
    -------
    keypoints, scores : np.ndarray
        (N, K, 2) and (N, K).
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from aptrack.core.instances import Instances
    from aptrack.models.checkpoint import load_checkpoint
    from aptrack.models.presets import get_preset
    from aptrack.pose.config import PoseConfig
    from aptrack.pose.estimator import TopDownPoseEstimator

    preset = get_preset(preset_name)
    preset = preset.with_(architecture={**preset.architecture, **architecture})
    model, preset, _ = load_checkpoint(checkpoint, preset=preset)
    estimator = TopDownPoseEstimator(model, preset, PoseConfig())
    out = estimator(image, Instances(boxes.astype(np.float32), np.ones(len(boxes), np.float32)))
    return out.keypoints, out.keypoint_scores


def print_differences(version: str, label: str, keypoints: np.ndarray, scores: np.ndarray, results: list,
                      names: tuple[str, ...] = ("1.x", "0.x")) -> None:
    """Print mmpose's score range, then each checkpoint's largest differences from mmpose.

    Parameters
    ----------
    version, label : str
        mmpose's version and the model, for the first line.
    keypoints, scores : np.ndarray
        mmpose's (N, K, 2) keypoints and (N, K) scores.
    results : list of (keypoints, scores)
        aptrack's, one per checkpoint, named by ``names``.
    """
    print(f"mmpose {version}, {label}, score range {scores.min():.3f}..{scores.max():.3f}")
    for name, (kp, sc) in zip(names, results):
        print(f"{name} checkpoint: max |keypoint diff| {np.abs(kp - keypoints).max():.3g} px, "
              f"max |score diff| {np.abs(sc - scores).max():.3g}")


@contextlib.contextmanager
def checkpoint_folder(args):
    """Where the checkpoints go: ``args.out`` (made if missing), or with ``--full`` a temporary folder."""
    if args.full:
        with tempfile.TemporaryDirectory() as tmp:
            yield Path(tmp)
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        yield args.out


def write_fixture(folder: Path, family: str, meta: dict, paths: tuple[Path, Path], preset: str,
                  architecture: dict, keypoints: np.ndarray, scores: np.ndarray, *, reference: str | None = None,
                  flip_test: bool = True, shift_heatmap: bool = True, made_by: str | None = None,
                  **fields) -> None:
    """Write mmpose's keypoints and the description ``{family}_fixture.json`` into ``folder``.

    Parameters
    ----------
    meta : dict
        The checkpoints' meta: the description's first entries.
    paths : (Path, Path)
        The 1.x and the 0.x checkpoint.
    preset, architecture
        The aptrack preset and the architecture entries that load them.
    keypoints, scores : np.ndarray
        mmpose's, saved with :data:`BOXES` as ``reference``
        (default ``{family}_mmpose_keypoints.npz``).
    flip_test, shift_heatmap : bool
        The test-time recipe of the config.
    made_by : str, optional
        The command (default ``benchmarks/mmpose_parity.py --family {family}``).
    **fields
        Further entries, after ``checkpoints``.
    """
    reference = reference or f"{family}_mmpose_keypoints.npz"
    np.savez(folder / reference, keypoints=keypoints, keypoint_scores=scores, boxes=BOXES)
    description = {**meta, "image": "image.png", "checkpoints": {"1.x": paths[0].name, "0.x": paths[1].name},
                   **fields, "reference": reference, "aptrack_preset": preset,
                   "aptrack_architecture": architecture, "flip_test": flip_test, "shift_heatmap": shift_heatmap,
                   "box_padding": 1.25, "made_by": made_by or f"benchmarks/mmpose_parity.py --family {family}"}
    (folder / f"{family}_fixture.json").write_text(json.dumps(description, indent=2) + "\n")


def save_checkpoints(state: dict, meta: dict, folder: Path, stem: str = "res18_ap10k") -> tuple[Path, Path]:
    """The weights as an mmpose 1.x checkpoint and as a 0.x one (``keypoint_head.``)."""
    v1, v0 = folder / f"{stem}_mmpose1x.pth", folder / f"{stem}_mmpose0x.pth"
    torch.save({"meta": meta, "state_dict": state}, v1)
    old = {("keypoint_head." + k[len("head."):] if k.startswith("head.") else k): v for k, v in state.items()}
    torch.save({"meta": meta, "state_dict": old}, v0)
    return v1, v0


def extra_families() -> dict[str, Path]:
    """Families whose parity code lives in a module of its own beside this script.

    ``benchmarks/mmpose_parity_<family>.py`` defines ``run(args, mmpose_version) -> int``
    and optionally ``add_arguments(parser)``; it reuses this module's shims,
    seeded weights and their batch-norm calibration and packing, image, boxes,
    checkpoint and fixture writers, aptrack's keypoints and the report.
    """
    here = Path(__file__).resolve().parent
    return {p.stem[len("mmpose_parity_"):]: p for p in sorted(here.glob("mmpose_parity_*.py"))}


def _family_module(family: str):
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module(f"mmpose_parity_{family}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mmref", default="/tmp/mmref", help="folder mmpose was pip-installed into (--target)")
    parser.add_argument("--out", type=Path, default=FIXTURES, help="fixture folder")
    parser.add_argument("--depth", type=int, default=18)
    parser.add_argument("--channels", type=int, default=32, help="deconvolution channels")
    parser.add_argument("--seed", type=int, default=0)
    extras = extra_families()
    parser.add_argument("--family", choices=("res", "hrnet", *extras), default="res",
                        help="res: SimpleBaseline ResNet config; hrnet: HRNet-W32 config; the others: "
                             "benchmarks/mmpose_parity_<family>.py")
    parser.add_argument("--width", type=int, default=8, help="HRNet width W (branches W, 2W, 4W, 8W)")
    parser.add_argument("--full", action="store_true",
                        help="the published architecture (depth 50, 256 channels / HRNet-W32 / each "
                             "family's own): print the difference only")
    for family in extras:
        hook = getattr(_family_module(family), "add_arguments", None)
        if hook is not None:
            hook(parser)
    args = parser.parse_args(argv)
    install_shims(args.mmref)
    import mmpose

    if args.family in extras:
        return _family_module(args.family).run(args, mmpose.__version__)
    if args.full:
        args.depth, args.channels, args.width = 50, 256, 32

    if args.family == "hrnet":
        return main_hrnet(args, mmpose.__version__)

    model = build_mmpose(args.depth, args.channels)
    state = seeded_state(model, args.seed)
    image = test_image(args.seed)
    keypoints, scores = mmpose_keypoints(model, image, BOXES)
    meta = {"mmpose_version": mmpose.__version__, "config": CONFIG, "depth": args.depth,
            "deconv_channels": [args.channels] * 3, "seed": args.seed}
    architecture = {"depth": args.depth, "deconv_channels": [args.channels] * 3, "deconv_kernel": 4}
    with checkpoint_folder(args) as folder:
        paths = save_checkpoints(state, meta, folder)
        results = [aptrack_keypoints(p, "res50-ap10k", architecture, image, BOXES) for p in paths]
    if not args.full:
        cv2.imwrite(str(args.out / "image.png"), image)
        write_fixture(args.out, "res", {**meta, "family": "res"}, paths, "res50-ap10k", architecture,
                      keypoints, scores, reference="mmpose_keypoints.npz", made_by="benchmarks/mmpose_parity.py",
                      image_source=PHOTO.name if PHOTO.exists() else "noise")
    print_differences(mmpose.__version__, f"ResNet-{args.depth}, deconv {args.channels}", keypoints, scores,
                      results)
    return 0


def main_hrnet(args, version: str) -> int:
    """``--family hrnet``: the HRNet fixture (``--width``), or with ``--full`` W32, printing only."""
    model = build_mmpose_hrnet(args.width)
    state = seeded_state(model, args.seed, HRNET_POOL_SIZE, HRNET_SMALL, normalise_head=True, pack=True)
    image = fixture_image(args.out, args.seed, args.full)
    keypoints, scores = mmpose_keypoints(model, image, BOXES)
    stem = f"hrnet_w{args.width}_ap10k"
    meta = {"mmpose_version": version, "config": HRNET_CONFIG, "family": "hrnet", "width": args.width,
            "overrides": {f"model.backbone.extra.{stage}.num_channels":
                          [args.width * 2 ** b for b in range(n)]
                          for stage, n in (("stage2", 2), ("stage3", 3), ("stage4", 4))}
            | {"model.head.in_channels": args.width, "model.backbone.init_cfg": None},
            "seed": args.seed}
    architecture = {"width": args.width}
    with checkpoint_folder(args) as folder:
        paths = save_checkpoints(state, meta, folder, stem)
        results = [aptrack_keypoints(p, "hrnet-w32-ap10k", architecture, image, BOXES) for p in paths]
    if not args.full:
        write_fixture(args.out, "hrnet", meta, paths, "hrnet-w32-ap10k", architecture, keypoints, scores)
    print_differences(version, f"HRNet-W{args.width}", keypoints, scores, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
