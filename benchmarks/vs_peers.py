"""aptrack beside `yolo track` in one go, written as one markdown report.

    python benchmarks/vs_peers.py [-o vs_peers.md] [--rounds 3] [--zoo-models NAME,...|all|none]
                                  [--memory-frames 300 3000]

Runs, one after another on this machine (nothing else should be running):

1. ``bench_speed.py`` on the dog clip, with the default pose model and with ``--pose none``:
   ``aptrack run`` (with the annotated video, and results only) and Ultralytics
   ``yolo track`` (ByteTrack, the same int8 YOLOv8n) interleaved, ``--rounds`` rounds, best
   pass of each; the per-round frames/s ratios to ``yolo track``; the networks timed alone,
   as the run builds them, and the overhead ratio (end-to-end time over the networks' own);
2. ``zoo_speed.py``: ms per crop of each zoo model in torch and ONNX Runtime
   (``--zoo-models``; the larger models take minutes each);
3. ``long_run.py --source dog``: peak resident memory of the dog clip looped to each of
   ``--memory-frames`` lengths, each in a fresh process.

and writes the figures, the goals of the speed issue beside them, and the machine (CPU
model, cores, Python, torch and ONNX Runtime versions) to ``-o``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime
    import torch

    return (f"{cpu or 'unknown CPU'}, {os.cpu_count()} cores visible, Python {platform.python_version()}, "
            f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}")


def run_json(args: list[str], out: Path) -> dict | list:
    subprocess.run([sys.executable, *args, "--json", str(out)], check=True)
    return json.loads(out.read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", default="vs_peers.md")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--zoo-models", default="aptrack-pose-mnv2-256-ft4,rtmpose-m-ap10k,hrnet-w32-ap10k",
                   help="comma-separated zoo models, 'all', or 'none'")
    p.add_argument("--memory-frames", type=int, nargs="+", default=[300, 3000])
    args = p.parse_args()
    lines = ["# aptrack beside `yolo track`", "", f"Machine: {machine()}.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        speed = {}
        for pose in ("aptrack-pose-mnv2-256-ft4", "none"):
            speed[pose] = run_json([str(HERE / "bench_speed.py"), "--pose", pose, "--rounds", str(args.rounds)],
                                   tmp / f"speed_{pose}.json")
        with_pose, without = speed["aptrack-pose-mnv2-256-ft4"], speed["none"]
        yolo = max(with_pose["yolo_track_fps"], without["yolo_track_fps"])
        lines += ["## Dog clip, whole processes (best of %d interleaved rounds)" % args.rounds, "",
                  "| command | frames/s | vs `yolo track` (per-round median) | ids | goal |",
                  "| --- | --- | --- | --- | --- |",
                  f"| `yolo track` (int8 YOLOv8n + ByteTrack, no pose) | {yolo:.2f} | 1.00x | "
                  f"{with_pose['yolo_track_ids']} | |"]
        for label, rep, goal in (("`aptrack run --pose none --no-video`", without, ">= 1.0x"),
                                 ("`aptrack run --no-video` (with pose)", with_pose, ">= 0.8x")):
            ratios = sorted(rep["ratio_to_yolo_track"]["aptrack_no_video"])
            lines.append(f"| {label} | {rep['aptrack_no_video_fps']:.2f} | {ratios[len(ratios) // 2]:.2f}x | "
                         f"{rep['aptrack_ids']} | {goal} |")
        lines.append(f"| `aptrack run` (with pose, annotated video) | {with_pose['aptrack_fps']:.2f} | "
                     f"{sorted(with_pose['ratio_to_yolo_track']['aptrack'])[args.rounds // 2]:.2f}x | "
                     f"{with_pose['aptrack_ids']} | |")
        for label, rep in (("`aptrack run --pose none --no-video --streams 1`", without),
                           ("`aptrack run --no-video --streams 1` (with pose)", with_pose)):
            ratios = sorted(rep["ratio_to_yolo_track"]["aptrack_one_stream"])
            lines.append(f"| {label} | {rep['aptrack_one_stream_fps']:.2f} | {ratios[len(ratios) // 2]:.2f}x | "
                         f"{rep['aptrack_ids']} | |")
        lines += ["", f"`aptrack run` used {with_pose['aptrack_streams']} stream(s) (`--streams auto`).", "",
                  "| with pose, one stream | detector alone | pose alone | end-to-end | "
                  "overhead ratio (goal <= 1.10) |",
                  "| --- | --- | --- | --- | --- |",
                  f"| ms per frame | {with_pose['detector_alone_ms']:.1f} | {with_pose['pose_alone_ms']:.1f} | "
                  f"{1000 / with_pose['aptrack_one_stream_fps']:.1f} | {with_pose['overhead_ratio']:.3f} |", ""]
        if args.zoo_models != "none":
            zoo_args = [str(HERE / "zoo_speed.py"), "--format", "json"]
            if args.zoo_models != "all":
                zoo_args += ["--models", args.zoo_models]
            out = subprocess.run([sys.executable, *zoo_args], check=True, capture_output=True, text=True).stdout
            rows = json.loads(out)
            lines += ["## Pose models, ms per crop (crop, flip test, decode)", "",
                      "| model | torch | ONNX Runtime |", "| --- | --- | --- |"]
            for row in rows:
                ort = row["onnxruntime_crop_ms"]
                lines.append(f"| {row['name']} | {row['crop_ms']:.1f} | {'n/a' if ort is None else f'{ort:.1f}'} |")
            lines.append("")
        memory = run_json([str(HERE / "long_run.py"), "--source", "dog", "--frames",
                           *map(str, args.memory_frames)], tmp / "memory.json")
        lines += ["## Peak memory, the dog clip looped (default pipeline, JSON and CSV written)", "",
                  "| frames | peak RSS (MB) | vs the first | frames/s | goal |", "| --- | --- | --- | --- | --- |"]
        for row in memory:
            lines.append(f"| {row['frames']} | {row['peak_rss_mb']:.0f} | "
                         f"{row['peak_rss_mb'] / memory[0]['peak_rss_mb']:.3f}x | {row['fps']:.2f} | within 1.10x |")
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
