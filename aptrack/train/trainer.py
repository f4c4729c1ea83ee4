"""Train the top-down heatmap pose network (``aptrack train``).

The recipe follows the best top-down heatmap methods (SimpleBaseline, HRNet in
mmpose): random scale / rotation / shift / flip with left-right swapping,
half-body crops and colour jitter (:mod:`aptrack.data.augment`); Gaussian heatmap
targets weighted by keypoint labels (:class:`~aptrack.pose.codecs.HeatmapCodec`);
AdamW with a linear warm-up and a cosine decay.

Reproducible and resumable: the network is initialised from ``seed``; epoch
``e`` draws its sample order and augmentation from a generator seeded with
``(seed, e)``. A checkpoint after every epoch holds the network, the optimiser
and the step, so ``resume`` continues a stopped run exactly where an
uninterrupted run would have been.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from aptrack.core import resources
from aptrack.core.config import build_config, read_yaml
from aptrack.core.errors import ConfigError, DatasetError, write_atomic
from aptrack.core.layout import KeypointLayout
from aptrack.data.augment import AugmentConfig, TopDownTrainTransform
from aptrack.data.datasets import KeypointDataset
from aptrack.data.labelled import LabelsConfig
from aptrack.io.images import load_image
from aptrack.models import Preset, build_checkpoint, create_model, load_checkpoint
from aptrack.models.checkpoint import UNREADABLE_TORCH_FILE
from aptrack.models.simplebaseline import SimpleBaseline, load_imagenet_backbone
from aptrack.pose.codecs import HeatmapCodec, codec_params
from aptrack.pose.config import PoseConfig
from aptrack.pose.estimator import TopDownPoseEstimator, normalize_crops

log = logging.getLogger(__name__)

TRAIN_STATE_FORMAT = "aptrack-train-state"


@dataclass(frozen=True)
class ModelConfig:
    """Network: backbone name, deconvolution head, ImageNet start, frozen stem.

    ``pretrained`` is a registry name or path of ImageNet backbone weights (or
    None for random init). ``init`` is a registry name or path of an aptrack
    pose checkpoint whose whole network starts the run (fine-tuning); its
    architecture and keypoint layout must match, its input size may differ.
    ``frozen_stages``: the first this many blocks of the backbone keep their
    starting weights and batch-norm statistics.
    """

    backbone: str = "mobilenet_v2"
    deconv_channels: tuple[int, ...] = (128, 128, 128)
    deconv_kernel: int = 4
    pretrained: str | None = "mobilenetv2-imagenet"
    init: str | None = None
    frozen_stages: int = 4

    def arch(self) -> dict:
        return {"backbone": self.backbone, "deconv_channels": list(self.deconv_channels),
                "deconv_kernel": self.deconv_kernel}


@dataclass(frozen=True)
class CodecConfig:
    input_size: tuple[int, int] = (160, 160)
    heatmap_size: tuple[int, int] = (40, 40)
    sigma: float = 1.75
    blur_kernel: int = 11

    def codec(self) -> HeatmapCodec:
        return HeatmapCodec(tuple(self.input_size), tuple(self.heatmap_size), self.sigma,
                            self.blur_kernel)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with ``warmup_iters`` of linear warm-up, then a cosine decay to
    ``lr * min_lr_ratio`` at the last step.

    ``ema_decay`` > 0 keeps an exponential moving average of the weights (as
    the YOLO and RTMPose recipes do); it is the network that is evaluated and
    saved. Its decay ramps up as ``ema_decay * (1 - exp(-updates / ema_ramp_iters))``
    so that the first updates are not swamped by the starting weights.
    """

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_iters: int = 300
    min_lr_ratio: float = 0.01
    grad_clip: float = 5.0
    ema_decay: float = 0.0
    ema_ramp_iters: int = 200


@dataclass(frozen=True)
class SplitConfig:
    """Seeded split by image; ``val_instances`` animals are held out, at most ``val_fraction``
    of the dataset (at least one animal), so that a small lab project keeps most for training."""

    val_instances: int = 1100
    val_fraction: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"split.val_fraction must be in (0, 1), got {self.val_fraction}")

    def held_out(self, animals: int) -> int:
        """Animals to hold out of ``animals``."""
        return max(1, min(self.val_instances, int(self.val_fraction * animals)))


@dataclass(frozen=True)
class TrainConfig:
    name: str = "pose"
    layout: str = "ap10k"
    seed: int = 0
    min_labelled_keypoints: int = 1
    eval_every: int = 5
    cache_images: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    codec: CodecConfig = field(default_factory=CodecConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)


def _merged(base: dict, override: dict) -> dict:
    """``base`` with ``override``'s keys replacing its own, section by section."""
    out = dict(base)
    for key, value in override.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_train_config(name_or_path: str | Path) -> TrainConfig:
    """A training config by name (``configs/train/NAME.yaml``) or path.

    A config may name a ``base`` config (by name, in the same folder as a
    name, or as a path relative to the file) and give only the keys it
    changes; sections merge key by key. A base cannot itself have a base:
    one file holds a family's recipe, each override file one variant of it.
    """
    path = resources.find("train", name_or_path)
    data = read_yaml(path)
    if isinstance(data, dict) and "base" in data:
        data = dict(data)
        ref = str(data.pop("base"))
        base_path = resources.find("train", ref) if not Path(ref).suffix else path.parent / ref
        base = read_yaml(base_path)
        if not isinstance(base, dict):
            raise ConfigError(f"{base_path}: expected a mapping")
        if "base" in base:
            raise ConfigError(f"{path}: its base {base_path.name} has a base of its own; "
                              f"a training config has at most one base")
        data = _merged(base, data)
    return build_config(TrainConfig, data, str(path))


def config_to_dict(config) -> dict:
    return dataclasses.asdict(config)


def lr_at(step: int, total_steps: int, cfg: OptimConfig) -> float:
    """Learning rate at optimiser step ``step`` (0-based): warm-up, then cosine."""
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / cfg.warmup_iters
    span = max(1, total_steps - cfg.warmup_iters)
    t = min(1.0, (step - cfg.warmup_iters) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * t))


def ema_decay_at(updates: int, decay: float, ramp_iters: int) -> float:
    """Weight kept by the moving average at its ``updates``-th update (1-based).

    ``decay * (1 - exp(-updates / ramp_iters))``; ``ramp_iters`` <= 0 gives the
    constant ``decay``.
    """
    if ramp_iters <= 0:
        return decay
    return decay * (1.0 - math.exp(-updates / ramp_iters))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for every floating-point
    parameter and buffer (batch-norm statistics included); integer buffers
    (batch counters) are copied."""
    current = model.state_dict()
    for name, value in ema.state_dict().items():
        new = current[name].detach()
        if value.dtype.is_floating_point:
            value.mul_(decay).add_(new.to(value.dtype), alpha=1.0 - decay)
        else:
            value.copy_(new)


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean squared error over heatmap cells, each keypoint weighted by its label (0 or 1)."""
    w = weights[:, :, None, None]
    return ((pred - target) ** 2 * w).mean()


def _atomic_save(obj, path: Path) -> None:
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


@dataclass
class EpochReport:
    epoch: int
    loss: float
    images_per_s: float
    lr: float
    skipped: int
    metrics: dict | None = None


class Trainer:
    """Train a :class:`SimpleBaseline` on a :class:`KeypointDataset`.

    Parameters
    ----------
    config : TrainConfig
    train_set, val_set : KeypointDataset (``val_set`` may be None)
    out_dir : folder for ``last.pt`` (training state), ``model.pt`` (the
        newest aptrack pose checkpoint) and ``best.pt`` (best validation AP)
    device : "cpu" or "cuda"
    pretrained_path : ImageNet backbone weights file, or None
    meta : provenance stored in the model checkpoints
    init_path : aptrack pose checkpoint to start from (fine-tuning), or None;
        it replaces the ImageNet start

    Raises
    ------
    ConfigError
        If ``init_path`` holds another architecture or keypoint layout.
    """

    def __init__(self, config: TrainConfig, train_set: KeypointDataset, val_set: KeypointDataset | None,
                 out_dir: str | Path, device: str = "cpu", pretrained_path: str | Path | None = None,
                 meta: dict | None = None, init_path: str | Path | None = None):
        self.config = config
        usable = train_set.num_labelled >= config.min_labelled_keypoints
        if not usable.any():
            raise DatasetError("the training split has no animal with labelled keypoints")
        dropped = int((~usable).sum())
        if dropped:
            log.info("training on %d animals; %d with fewer than %d labelled keypoints left out",
                     int(usable.sum()), dropped, config.min_labelled_keypoints)
        self.train_set = train_set.subset(np.flatnonzero(usable))
        self.val_set = val_set
        self.out_dir = Path(out_dir)
        self.device = device
        self.meta = dict(meta or {})
        self.layout: KeypointLayout = train_set.layout
        self.codec = config.codec.codec()
        self.preset = Preset(name=config.name, family="simplebaseline", architecture=config.model.arch(),
                             layout=self.layout, input_size=tuple(self.codec.input_size),
                             codec=codec_params(self.codec))
        self.transform = TopDownTrainTransform(self.codec.input_size, self.layout.flip_pairs,
                                               self.layout.upper_body, self.layout.lower_body,
                                               config.augment, train=True)
        torch.manual_seed(config.seed)
        self.model = create_model(self.preset)
        if init_path is not None:
            self._init_from(Path(init_path))
        elif pretrained_path is not None:
            n = load_imagenet_backbone(self.model, pretrained_path)
            log.info("backbone initialised from %s (%d tensors)", pretrained_path, n)
        self.frozen = self.model.backbone[:config.model.frozen_stages]
        for p in self.frozen.parameters():
            p.requires_grad_(False)
        self.model.to(device)
        self.ema: SimpleBaseline | None = None
        if config.optim.ema_decay > 0:
            self.ema = copy.deepcopy(self.model).eval()
            for p in self.ema.parameters():
                p.requires_grad_(False)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.trainable, lr=config.optim.lr,
                                           weight_decay=config.optim.weight_decay)
        self.steps_per_epoch = len(self.train_set) // config.optim.batch_size
        if self.steps_per_epoch == 0:
            raise DatasetError(f"{len(self.train_set)} training animals are fewer than one batch "
                               f"of {config.optim.batch_size}")
        self.total_steps = self.steps_per_epoch * config.optim.epochs
        self.epoch = 0
        self.step = 0
        self.history: list[dict] = []
        self.best_ap = -1.0
        self.images: dict[str, np.ndarray] = {}

    def _init_from(self, path: Path) -> None:
        """Start from a trained pose checkpoint with the same network and layout."""
        model, preset, _ = load_checkpoint(path)
        layout = preset.layout
        if layout.keypoints != self.layout.keypoints:
            raise ConfigError(f"cannot start from {path}: its keypoints ({layout.name}) are not "
                              f"this config's layout ({self.layout.name})")
        mine = {k: tuple(v.shape) for k, v in self.model.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        if mine != theirs:
            raise ConfigError(f"cannot start from {path}: its network differs from this config's "
                              f"model section {self.config.model.arch()}")
        self.model.load_state_dict(model.state_dict())
        log.info("network initialised from %s", path)

    # -- data -------------------------------------------------------------
    def image(self, path: str) -> np.ndarray:
        img = self.images.get(path)
        if img is None:
            img = load_image(path)
            if self.config.cache_images:
                self.images[path] = img
        return img

    def batch(self, rows, rng: np.random.Generator):
        """Augmented crops, target heatmaps and weights for dataset ``rows``.

        Returns (images (B, 3, h, w), targets (B, K, hh, hw), weights (B, K), skipped).
        """
        ds = self.train_set
        crops, targets, weights, skipped = [], [], [], 0
        for r in rows:
            try:
                image = self.image(ds.files[r])
            except OSError as exc:
                log.warning("%s", exc)
                skipped += 1
                continue
            crop, kp, vis = self.transform(image, ds.boxes_xyxy[r], ds.keypoints[r], ds.visible[r], rng)
            hm, w = self.codec.encode(kp, vis)
            crops.append(crop)
            targets.append(hm)
            weights.append(w)
        if not crops:
            return None, None, None, skipped
        p = self.preset
        return (normalize_crops(np.stack(crops), p.mean, p.std, p.color), torch.from_numpy(np.stack(targets)),
                torch.from_numpy(np.stack(weights)), skipped)

    # -- state ------------------------------------------------------------
    def _set_train_mode(self) -> None:
        self.model.train()
        self.frozen.eval()  # frozen blocks keep their ImageNet batch-norm statistics

    @property
    def eval_model(self) -> SimpleBaseline:
        """The network that is evaluated and saved: the moving average when enabled."""
        return self.ema if self.ema is not None else self.model

    def state(self) -> dict:
        return {"format": TRAIN_STATE_FORMAT, "config": config_to_dict(self.config),
                "epoch": self.epoch, "step": self.step, "model": self.model.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "optimizer": self.optimizer.state_dict(), "history": self.history,
                "best_ap": self.best_ap}

    def load_state(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)  # tensors and plain data only
        except UNREADABLE_TORCH_FILE as exc:
            raise ConfigError(f"cannot resume from {path}: not a readable training state "
                              f"({exc.__class__.__name__})") from None
        if not isinstance(state, dict) or state.get("format") != TRAIN_STATE_FORMAT:
            raise ConfigError(f"{path} is not an aptrack training state")
        if state["config"] != config_to_dict(self.config):
            raise ConfigError(f"{path} was saved with a different training config; "
                              "resume with the same config or start a new output folder")
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.history, self.best_ap = list(state["history"]), float(state["best_ap"])

    def checkpoint(self, metrics: dict | None = None) -> dict:
        meta = dict(self.meta)
        meta.update({"epoch": self.epoch, "train_config": config_to_dict(self.config),
                     "history": list(self.history)})
        if metrics:
            meta["val_metrics"] = {k: v for k, v in metrics.items() if k not in ("gt", "results")}
        ckpt = build_checkpoint(self.eval_model, self.preset, meta)
        ckpt["state_dict"] = {k: v.detach().cpu().clone() for k, v in ckpt["state_dict"].items()}
        return ckpt

    # -- loop -------------------------------------------------------------
    def evaluate(self, dataset: KeypointDataset | None = None) -> dict:
        from aptrack.eval.keypoints import evaluate_predictions, predict_dataset
        dataset = dataset if dataset is not None else self.val_set
        model = self.eval_model
        model.eval()
        est = TopDownPoseEstimator(model, self.preset, PoseConfig(flip_test=True), self.device)
        pred = predict_dataset(est, dataset, image_cache=self.images if self.config.cache_images else None)
        return evaluate_predictions(dataset, pred)

    def fit(self, resume: bool = False, on_step: Callable | None = None,
            on_epoch: Callable[[EpochReport], None] | None = None, max_epochs: int | None = None):
        """Train until ``config.optim.epochs`` (or ``max_epochs`` more epochs).

        ``on_step(step_in_epoch, steps_per_epoch, loss, images_per_s)`` and
        ``on_epoch(EpochReport)`` let the CLI draw progress.
        """
        self.out_dir.mkdir(parents=True, exist_ok=True)
        last = self.out_dir / "last.pt"
        if resume:
            if not last.is_file():
                raise ConfigError(f"nothing to resume: {last} does not exist")
            self.load_state(last)
            log.info("resumed from %s at epoch %d (step %d)", last, self.epoch, self.step)
        cfg = self.config
        end = cfg.optim.epochs if max_epochs is None else min(cfg.optim.epochs, self.epoch + max_epochs)
        while self.epoch < end:
            rng = np.random.default_rng([cfg.seed, self.epoch])
            order = rng.permutation(len(self.train_set))
            self._set_train_mode()
            losses, seen, skipped, t0 = [], 0, 0, time.perf_counter()
            for b in range(self.steps_per_epoch):
                rows = order[b * cfg.optim.batch_size:(b + 1) * cfg.optim.batch_size]
                images, targets, weights, bad = self.batch(rows, rng)
                skipped += bad
                lr = lr_at(self.step, self.total_steps, cfg.optim)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                self.step += 1
                if images is None:
                    continue
                images, targets, weights = (t.to(self.device) for t in (images, targets, weights))
                loss = heatmap_loss(self.model(images), targets, weights)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.optim.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.trainable, cfg.optim.grad_clip)
                self.optimizer.step()
                if self.ema is not None:
                    update_ema(self.ema, self.model,
                               ema_decay_at(self.step, cfg.optim.ema_decay, cfg.optim.ema_ramp_iters))
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"training diverged at step {self.step} (loss {loss.item()})")
                losses.append(loss.item())
                seen += len(images)
                if on_step is not None:
                    on_step(b + 1, self.steps_per_epoch, losses[-1], seen / (time.perf_counter() - t0))
            self.epoch += 1
            report = EpochReport(self.epoch, float(np.mean(losses)) if losses else float("nan"),
                                 seen / (time.perf_counter() - t0), lr, skipped)
            if skipped:
                log.warning("epoch %d: skipped %d unreadable sample(s)", self.epoch, skipped)
            evaluate_now = self.val_set is not None and (
                self.epoch % max(1, cfg.eval_every) == 0 or self.epoch == cfg.optim.epochs)
            if evaluate_now:
                report.metrics = self.evaluate()
            self.history.append({k: v for k, v in dataclasses.asdict(report).items() if k != "metrics"}
                                | ({"AP": report.metrics["AP"]} if report.metrics else {}))
            ckpt = self.checkpoint(report.metrics)
            _atomic_save(ckpt, self.out_dir / "model.pt")
            if report.metrics and report.metrics["AP"] > self.best_ap:
                self.best_ap = report.metrics["AP"]
                _atomic_save(ckpt, self.out_dir / "best.pt")
            _atomic_save(self.state(), last)
            log.info("epoch %d/%d loss %.6f %.1f img/s%s", self.epoch, cfg.optim.epochs, report.loss,
                     report.images_per_s, f" AP {report.metrics['AP']:.3f}" if report.metrics else "")
            if on_epoch is not None:
                on_epoch(report)
        return self.history
