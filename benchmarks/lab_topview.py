"""A top-view lab recording, background detector against YOLO, with and without a known count.

    python benchmarks/lab_topview.py [--frames 600] [--animals 1] [--pose none]

Writes a synthetic recording (``aptrack.data.topview``: dark animals in a light open
field, 640x480, slow light drift), runs ``aptrack run`` on it with ``--pipeline arena``
(the background detector) and with the YOLO detector, each with ``--animals N``, and
prints, per run: frames in which every animal was found (IoU >= 0.5 with its true box),
mean IoU, ids, frames/s and the detector's ms per frame. For several animals it also
scores MOTA / IDF1 / ID switches (motmetrics) against the true boxes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def score(boxes_true: np.ndarray, results: Path) -> dict:
    import motmetrics as mm

    from aptrack.core.boxes import box_iou_xyxy
    from aptrack.eval.tracking import iou_distances

    anns = json.load(open(results))["annotations"]
    by_frame: dict[int, list] = {}
    for a in anns:
        by_frame.setdefault(a["frame"], []).append(a)
    acc = mm.MOTAccumulator(auto_id=True)
    all_found, ious = 0, []
    for f, truth in enumerate(boxes_true):
        found = by_frame.get(f, [])
        pred = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in found)]).reshape(-1, 4)
        iou = box_iou_xyxy(truth, pred) if len(pred) else np.zeros((len(truth), 0))
        best = iou.max(axis=1) if iou.shape[1] else np.zeros(len(truth))
        all_found += bool((best >= 0.5).all())
        ious += best.tolist()
        acc.update(list(range(len(truth))), [a["track_id"] for a in found], iou_distances(truth, pred, 0.5))
    m = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches"], name="run")
    return {"frames_all_found": all_found, "mean_iou": float(np.mean(ious)), "ids": len({a["track_id"] for a in anns}),
            "MOTA": float(m["mota"].iloc[0]), "IDF1": float(m["idf1"].iloc[0]), "id_switches": int(m["num_switches"].iloc[0])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=600)
    p.add_argument("--animals", type=int, default=1)
    p.add_argument("--pose", default="none")
    p.add_argument("--seed", type=int, default=3)
    args = p.parse_args()
    from aptrack.data.topview import TopViewConfig, TopViewScene, write_top_view_video

    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "topview.avi"
        truth, _ = write_top_view_video(video, TopViewScene(TopViewConfig(animals=args.animals, light_drift=0.05),
                                                            seed=args.seed), args.frames)
        for name, flags in (("background (--pipeline arena)", ["--pipeline", "arena"]),
                            ("YOLO (yolov8n int8)", ["--detector", "yolov8n"])):
            out = Path(tmp) / name.split()[0]
            cmd = [sys.executable, "-m", "aptrack", "run", str(video), "-o", str(out), "--no-video", "--quiet",
                   "--animals", str(args.animals), "--pose", args.pose, "--device", "cpu", *flags]
            subprocess.run(cmd, check=True)
            info = json.load(open(out / "topview.json"))
            summary = info["summary"]
            s = score(truth, out / "topview.json")
            print(f"{name:<32} all found in {s['frames_all_found']}/{args.frames} frames, mean IoU "
                  f"{s['mean_iou']:.3f}, {s['ids']} ids, MOTA {s['MOTA']:.3f}, IDF1 {s['IDF1']:.3f}, "
                  f"{s['id_switches']} switches, {summary['fps']:.1f} frames/s, detect "
                  f"{summary['ms_per_frame'].get('detect', float('nan')):.1f} ms/frame", flush=True)


if __name__ == "__main__":
    main()
