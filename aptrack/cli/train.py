"""``aptrack train``: train a top-down pose network on a keypoint dataset."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from aptrack import __version__
from aptrack.cli.common import console_flags, positive_int
from aptrack.core.errors import writable_dir


DEFAULT_CONFIG = "animalpose_mobilenetv2_160"
LAB_CONFIG = "lab_mobilenetv2"


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train the top-down pose network on a keypoint dataset",
                       description="Train the top-down heatmap pose network on a COCO-style "
                                   "keypoint file (AP-10K, APT-36K, APTv2, or Animal-Pose), a DeepLabCut "
                                   "project or a SLEAP .slp file (the labels' own keypoints and skeleton).")
    p.add_argument("--config", default=None,
                   help="training config name in configs/train/ or a YAML file (default: "
                        f"{DEFAULT_CONFIG}, or {LAB_CONFIG} for a DeepLabCut project or SLEAP file)")
    p.add_argument("--data", required=True,
                   help="annotation json, a DeepLabCut project (folder or config.yaml) or a SLEAP .slp")
    p.add_argument("--images", default=None, help="folder with the images (annotation json only)")
    p.add_argument("-o", "--output", required=True, help="run folder (checkpoints, model)")
    p.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    p.add_argument("--resume", action="store_true", help="continue the run in --output")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="override the config's number of epochs")
    p.add_argument("--max-epochs", type=positive_int, default=None,
                   help="stop after this many more epochs (the schedule is unchanged)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for torch")
    console_flags(p, quiet_help="no progress bar")
    p.set_defaults(handler=main)


def main(args) -> int:
    import torch
    from tqdm import tqdm

    from aptrack.core.hub import resolve
    from aptrack.core.layout import load_layout
    from aptrack.data.datasets import load_keypoint_dataset, split_by_image
    from aptrack.pipeline import resolve_device
    from aptrack.train.trainer import Trainer, load_train_config

    from aptrack.core.errors import ConfigError
    from aptrack.data.labelled import is_lab_labels, load_lab_labels

    lab = is_lab_labels(args.data)
    config = load_train_config(args.config or (LAB_CONFIG if lab else DEFAULT_CONFIG))
    if args.epochs is not None:
        config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, epochs=args.epochs))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    out_dir = writable_dir(Path(args.output))
    if lab:  # the labels' own keypoints, skeleton and flip pairs (config.layout is not used)
        dataset = load_lab_labels(args.data, out_dir / "frames", config.labels)
    else:
        if args.images is None:
            raise ConfigError("--images is needed with an annotation json (the folder of its images)")
        dataset = load_keypoint_dataset(args.data, args.images, load_layout(config.layout))
    train_idx, val_idx = split_by_image(dataset, config.split.held_out(len(dataset)), config.split.seed)
    pretrained = resolve(config.model.pretrained) if config.model.pretrained else None
    init = resolve(config.model.init) if config.model.init else None
    meta = {"data": str(Path(args.data).resolve()), "train_instances": int(len(train_idx)),
            "val_instances": int(len(val_idx)), "split": dataclasses.asdict(config.split),
            "pretrained": pretrained.describe() if pretrained else None,
            "init": init.describe() if init else None,
            "command": "aptrack " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("aptrack") else None,
            "aptrack_version": __version__}
    trainer = Trainer(config, dataset.subset(train_idx), dataset.subset(val_idx), out_dir, device,
                      pretrained.path if pretrained else None, meta, init.path if init else None)
    bar = None

    def on_step(i, n, loss, ips):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=n, unit="batch", disable=args.quiet, dynamic_ncols=True, file=sys.stderr,
                       desc=f"epoch {trainer.epoch + 1}/{config.optim.epochs}")
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.2e}", img_s=f"{ips:.1f}")

    def on_epoch(report):
        nonlocal bar
        if bar is not None:
            bar.close()
            bar = None
        if not args.quiet:
            ap = f"  val AP {report.metrics['AP']:.3f}" if report.metrics else ""
            print(f"epoch {report.epoch}/{config.optim.epochs}  loss {report.loss:.3e}  "
                  f"{report.images_per_s:.1f} img/s  lr {report.lr:.2e}{ap}", flush=True)

    trainer.fit(resume=args.resume, on_step=on_step, on_epoch=on_epoch, max_epochs=args.max_epochs)
    if not args.quiet:
        print(f"model -> {out_dir / 'model.pt'}  (best validation AP: {out_dir / 'best.pt'})")
    return 0
