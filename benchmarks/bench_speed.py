"""Speed of each stage on a video (default: the bundled dog clip), and `yolo track` beside it.

Prints:
  * frames/s of `aptrack run` end to end (decode, networks, tracking, drawing, writing),
    with the annotated video and with `--no-video` (results only, which is what
    `yolo track` without `save` produces);
  * each network measured alone over the same frames (detector; pose on the detector's boxes);
  * the overhead ratio: end-to-end time / (detector time + pose time); target <= 1.10;
  * Ultralytics `track` (ByteTrack) with the same weights in the same run: frames/s and ids.

Timings on a shared CPU vary by 20% from pass to pass, so aptrack and `yolo track` run
interleaved for --rounds rounds and the best pass of each is reported (timeit's convention).

Usage:
  python benchmarks/bench_speed.py [--video PATH] [--pose WEIGHTS|none|untrained] [--device cpu] [--rounds 3]

`--pose untrained` times the default pose architecture with random weights (speed only:
nothing is drawn or reported from its keypoints). Needs APTRACK_MIRROR or cached weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from aptrack.cli import main as aptrack_main  # noqa: E402
from aptrack.core import hub as weights  # noqa: E402
from aptrack.detect.yolo import YoloAnimalDetector  # noqa: E402
from aptrack.models import build_checkpoint, create_model, load_checkpoint  # noqa: E402
from aptrack.pipeline import build_pose, load_pipeline  # noqa: E402


def read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def untrained_checkpoint(default_weights: Path, out_dir: Path) -> Path:
    """The default pose checkpoint (architecture, input size, layout) with random weights."""
    _, preset, _ = load_checkpoint(default_weights)
    torch.manual_seed(0)
    path = out_dir / "untrained_pose.pt"
    torch.save(build_checkpoint(create_model(preset), preset, {"note": "random weights, for timing only"}), path)
    return path


def load_networks(det_path, pose_path, device, config):
    """The detector, and the pose estimator as ``aptrack run`` builds it (the same backend: ONNX
    Runtime on a CPU by default), so that "networks alone" times what the run runs."""
    detector = YoloAnimalDetector(det_path, config.detector, device)
    pose = None
    if pose_path is not None:
        pose, _ = build_pose(dataclasses.replace(config.pose, weights=str(pose_path)), device)
    return detector, pose


def time_networks(frames, detector, pose):
    detector(frames[0])  # warm-up
    start = time.perf_counter()
    detections = [detector(f, i) for i, f in enumerate(frames)]
    det_s = time.perf_counter() - start
    pose_s = 0.0
    if pose is not None:
        pose(frames[0], detections[0])
        start = time.perf_counter()
        for f, d in zip(frames, detections):
            pose(f, d)
        pose_s = time.perf_counter() - start
    return det_s, pose_s, detections


def time_aptrack(video, out_dir, pose_arg, device, video_out=True, streams=None):
    args = ["run", str(video), "-o", str(out_dir), "--device", device, "--quiet", "--pose", pose_arg]
    if not video_out:
        args.append("--no-video")
    if streams is not None:
        args += ["--streams", str(streams)]
    code = aptrack_main(args)
    if code != 0:
        raise SystemExit(f"aptrack run failed with status {code}")
    data = json.loads((out_dir / f"{Path(video).stem}.json").read_text())
    return data["summary"]


def time_yolo_track(video, det_path, device, config):
    from ultralytics import YOLO

    model = YOLO(str(det_path), task="detect")
    ids, frames = set(), 0
    start = time.perf_counter()
    for result in model.track(source=str(video), stream=True, persist=True, tracker="bytetrack.yaml",
                              classes=list(config.detector.classes), device=device, verbose=False):
        frames += 1
        if result.boxes is not None and result.boxes.id is not None:
            ids.update(int(i) for i in result.boxes.id.tolist())
    seconds = time.perf_counter() - start
    return {"frames": frames, "seconds": seconds, "fps": frames / seconds, "ids": len(ids)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mirror = os.environ.get("APTRACK_MIRROR", str(ROOT.parent / "shared" / "assets"))
    parser.add_argument("--video", default=str(Path(mirror) / "videos" / "dog_clip.avi"))
    parser.add_argument("--pose", default="none", help="pose weights, 'none', or 'untrained'")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved passes; the best is kept")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    config = load_pipeline("default")
    det = weights.resolve(config.detector.weights)
    frames = read_frames(Path(args.video))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pose_path = None
        if args.pose == "untrained":
            pose_path = untrained_checkpoint(weights.resolve(config.pose.weights).path, tmp)
        elif args.pose != "none":
            pose_path = weights.resolve(args.pose).path
        pose_arg = "none" if pose_path is None else str(pose_path)

        detector, pose = load_networks(det.path, pose_path, args.device, config)
        det_s = pose_s = float("inf")
        summary = results_only = one_stream = yolo = None
        passes = {"aptrack": [], "aptrack_no_video": [], "aptrack_one_stream": [], "yolo_track": []}
        for _ in range(max(1, args.rounds)):
            d, p, _ = time_networks(frames, detector, pose)
            det_s, pose_s = min(det_s, d), min(pose_s, p)
            run = time_aptrack(args.video, tmp / "out", pose_arg, args.device)
            passes["aptrack"].append(run["fps"])
            summary = run if summary is None or run["seconds"] < summary["seconds"] else summary
            run = time_aptrack(args.video, tmp / "out_nv", pose_arg, args.device, video_out=False)
            passes["aptrack_no_video"].append(run["fps"])
            results_only = run if results_only is None or run["seconds"] < results_only["seconds"] \
                else results_only
            run = time_aptrack(args.video, tmp / "out_1s", pose_arg, args.device, video_out=False, streams=1)
            passes["aptrack_one_stream"].append(run["fps"])
            one_stream = run if one_stream is None or run["seconds"] < one_stream["seconds"] else one_stream
            yt = time_yolo_track(args.video, det.path, args.device, config)
            passes["yolo_track"].append(yt["fps"])
            yolo = yt if yolo is None or yt["seconds"] < yolo["seconds"] else yolo

    n = len(frames)
    e2e_s = one_stream["seconds"]  # the networks alone run as one stream does
    report = {
        "video": args.video, "frames": n, "device": args.device, "detector": det.describe(),
        "pose": pose_arg, "aptrack_fps": summary["fps"], "aptrack_ids": summary["tracks"],
        "aptrack_ms_per_frame": summary["ms_per_frame"],
        "detector_alone_ms": 1000 * det_s / n, "pose_alone_ms": 1000 * pose_s / n,
        "overhead_ratio": e2e_s / (det_s + pose_s),
        "aptrack_streams": results_only.get("streams", 1),
        "aptrack_no_video_fps": results_only["fps"], "aptrack_one_stream_fps": one_stream["fps"],
        "yolo_track_fps": yolo["fps"], "yolo_track_ids": yolo["ids"],
        "median_fps": {k: float(np.median(v)) for k, v in passes.items()}, "passes_fps": passes,
        # paired by round (same machine load): aptrack frames/s over yolo track frames/s
        "ratio_to_yolo_track": {k: [a / y for a, y in zip(passes[k], passes["yolo_track"])]
                                for k in ("aptrack", "aptrack_no_video", "aptrack_one_stream")},
    }
    print(f"video              {args.video} ({n} frames), device {args.device}, pose {args.pose}, "
          f"best of {args.rounds} interleaved rounds")
    print(f"aptrack run        {report['aptrack_fps']:.2f} frames/s end to end, {summary['tracks']} id(s)")
    print("  per stage        " + ", ".join(f"{k} {v:.1f} ms" for k, v in summary["ms_per_frame"].items()))
    print(f"detector alone     {report['detector_alone_ms']:.1f} ms/frame")
    print(f"pose alone         {report['pose_alone_ms']:.1f} ms/frame")
    print(f"overhead ratio     {report['overhead_ratio']:.3f}  (end-to-end of --no-video --streams 1 / networks "
          f"alone; target <= 1.10)")
    print(f"aptrack --no-video {report['aptrack_no_video_fps']:.2f} frames/s (results only, like yolo track; "
          f"{report['aptrack_streams']} stream(s))")
    print(f"  --streams 1      {report['aptrack_one_stream_fps']:.2f} frames/s")
    print(f"yolo track         {yolo['fps']:.2f} frames/s, {yolo['ids']} id(s) (ByteTrack, same weights, "
          f"no video written)")
    med = report["median_fps"]
    print(f"median of passes   aptrack {med['aptrack']:.2f}, aptrack --no-video {med['aptrack_no_video']:.2f}, "
          f"yolo track {med['yolo_track']:.2f} frames/s")
    for key, ratios in report["ratio_to_yolo_track"].items():
        wins = sum(r >= 1.0 for r in ratios)
        print(f"{key:<18} / yolo track, per round: median {np.median(ratios):.3f}, "
              f"range {min(ratios):.3f}-{max(ratios):.3f}, faster in {wins} of {len(ratios)} rounds")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
