"""Speed of every pose model in the zoo on this machine: milliseconds per crop.

For each model preset (``aptrack models``), the network is built with random
weights (speed does not depend on them) and timed on the whole test-time path
of one animal, through :class:`~aptrack.pose.estimator.TopDownPoseEstimator`:
crop and normalise, the forward passes (with the preset's flip test, the crop
and its mirror image), decoding and the map back to the frame, in torch and,
with ``--backends torch,onnxruntime`` (the default), in ONNX Runtime (the
network exported to a temporary ONNX file; models over 2 GB are skipped). The
torch forward pass alone is timed too, on a batch of two. Each figure is the best of ``--repeats`` runs after ``--warmup`` runs
(timeit's convention: the least disturbed run on a shared machine).

Prints a table (``--format markdown`` for the README's model section) with
parameters and multiply-adds per crop beside the times.

Usage::

    python benchmarks/zoo_speed.py [--models NAME,...] [--backends torch,onnxruntime] [--threads 2]
                                   [--repeats 5] [--format table|markdown|json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aptrack.core.instances import Instances  # noqa: E402
from aptrack.models import build_network, get_preset, list_models  # noqa: E402
from aptrack.models.factory import network_size  # noqa: E402
from aptrack.models.onnxrt import OnnxPoseNetwork, export_onnx, fits_onnx  # noqa: E402
from aptrack.pose.config import PoseConfig  # noqa: E402
from aptrack.pose.estimator import TopDownPoseEstimator  # noqa: E402

FRAME_SIZE = (640, 480)  # width, height of the synthetic frame
BOX_XYXY = (180.0, 120.0, 420.0, 400.0)  # one animal in it


def best_time(fn, warmup: int, repeats: int) -> float:
    """Least wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs, in seconds."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def time_model(name: str, warmup: int, repeats: int, backends=("torch", "onnxruntime")) -> dict:
    """Per-crop times (ms) of model ``name``: the whole estimator call per backend, and torch's forward pass."""
    preset = get_preset(name)
    torch.manual_seed(0)
    model = build_network(preset)
    estimator = TopDownPoseEstimator(model, preset, PoseConfig())
    frame = np.random.default_rng(0).integers(0, 256, (FRAME_SIZE[1], FRAME_SIZE[0], 3), dtype=np.uint8)
    boxes = Instances(np.array([BOX_XYXY], np.float32), np.ones(1, np.float32))
    w, h = preset.input_size
    batch = torch.randn(2 if estimator.flip_test else 1, 3, h, w)
    with torch.inference_mode():
        forward = best_time(lambda: model(batch), warmup, repeats)
    total = best_time(lambda: estimator(frame, boxes), warmup, repeats)
    onnx_ms = None
    if "onnxruntime" in backends and fits_onnx(model):
        with tempfile.TemporaryDirectory() as tmp:
            network = OnnxPoseNetwork(export_onnx(model, preset, Path(tmp) / "model.onnx"))
            onnx_estimator = TopDownPoseEstimator(network, preset, PoseConfig())
            onnx_ms = best_time(lambda: onnx_estimator(frame, boxes), warmup, repeats) * 1e3
    params, gmacs = network_size(preset)  # as aptrack models counts them (meta device)
    return {"name": name, "family": preset.family, "input": f"{w}x{h}", "params_m": params / 1e6, "gmacs": gmacs,
            "flip_test": estimator.flip_test, "forward_ms": forward * 1e3, "crop_ms": total * 1e3,
            "onnxruntime_crop_ms": onnx_ms}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=None, help="comma-separated model names (default: all)")
    parser.add_argument("--backends", default="torch,onnxruntime", help="torch, or torch,onnxruntime")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2, this machine's cores)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.models.split(",") if args.models else list_models()
    backends = tuple(args.backends.split(","))
    rows = [time_model(name, args.warmup, args.repeats, backends) for name in names]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    head = ("model", "family", "input", "params", "GMACs", "forward (ms, flip pair)", "per crop, torch (ms)",
            "per crop, ONNX Runtime (ms)")
    cells = [(r["name"], r["family"], r["input"], f"{r['params_m']:.2f} M", f"{r['gmacs']:.2f}",
              f"{r['forward_ms']:.0f}", f"{r['crop_ms']:.0f}",
              "n/a" if r["onnxruntime_crop_ms"] is None else f"{r['onnxruntime_crop_ms']:.0f}") for r in rows]
    if args.format == "markdown":
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in cells:
            print("| " + " | ".join(row) + " |")
        return 0
    widths = [max(len(str(c)) for c in col) for col in zip(head, *cells)]
    for row in (head, *cells):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
