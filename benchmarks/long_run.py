"""Long recordings: peak memory and frames/s over a looped top-view video, one fresh process per length.

    python benchmarks/long_run.py                       # 300 and 3,000 frames, background detector
    python benchmarks/long_run.py --frames 300 30000    # the lab-issue check (about 5 min a 10,000 frames)
    python benchmarks/long_run.py --detector yolov8n    # the YOLO detector instead
    python benchmarks/long_run.py --source dog          # the dog clip looped, the default pipeline

Each length is a video of a 300-frame synthetic scene (``aptrack.data.topview``, two
mice, 320x240; ``--pipeline arena``, no pose) or of the bundled dog clip (``--source dog``:
the default pipeline, with pose), looped forward and back, run by ``aptrack run``'s frame
loop in a child process with the JSON and CSV written; the child reports its peak resident memory (VmHWM) and its
frames/s in each tenth of the run. Memory should not grow with the length, nor the
frames/s fall as track histories grow.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def base_frames(source: str) -> list:
    if source == "dog":
        from aptrack.io.video import VideoReader

        mirror = Path(os.environ.get("APTRACK_MIRROR", Path(__file__).resolve().parents[2] / "shared" / "assets"))
        with VideoReader(mirror / "videos" / "dog_clip.avi") as reader:
            return [f for _, f in reader]
    from aptrack.data.topview import TopViewConfig, TopViewScene

    scene = TopViewScene(TopViewConfig(width=320, height=240, animals=2, body_length=32, speed=3.0), seed=0)
    return [f for f, _, _ in scene.frames(300)]


def write_looped(path: Path, frames: int, base: list) -> None:
    """``frames`` frames of ``base`` played forward, then backward, and so on (no jump at a loop)."""
    from aptrack.io.video import AtomicVideoWriter

    h, w = base[0].shape[:2]
    writer = AtomicVideoWriter(path, 30.0, (w, h), fourcc="MJPG")
    try:
        for i in range(frames):
            writer.write(base[i % len(base)] if (i // len(base)) % 2 == 0 else base[-1 - i % len(base)])
        writer.commit()
    finally:
        writer.close()


def child(video: str, out: str, detector: str) -> None:
    from aptrack.cli.common import load_config
    from aptrack.runner import process_video

    config = load_config("default") if detector == "default" else load_config("arena", "none", detector)
    run = process_video(video, config=config, output=out, write_video=False, device="cpu")
    total = run.expected_frames
    marks, started, done = [], time.perf_counter(), 0
    for _ in run:
        done += 1
        if done % max(total // 10, 1) == 0:
            marks.append(time.perf_counter())
    tenths = [round((total // 10) / (b - a), 1) for a, b in zip([started, *marks], marks)]
    print(json.dumps({"frames": done, "peak_rss_mb": round(peak_rss_mb(), 1), "fps_per_tenth": tenths,
                      "ids": run.summary["tracks"], "fps": run.summary["fps"]}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, nargs="+", default=[300, 3000])
    p.add_argument("--detector", default="background")
    p.add_argument("--source", choices=["topview", "dog"], default="topview")
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument("--child", nargs=3, metavar=("VIDEO", "OUT", "DETECTOR"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(*args.child)
        return
    rows = []
    base = base_frames(args.source)
    detector = "default" if args.source == "dog" else args.detector
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.frames:
            video = Path(tmp) / f"looped_{n}.avi"
            write_looped(video, n, base)
            out = subprocess.run([sys.executable, __file__, "--child", str(video), str(Path(tmp) / f"out{n}"),
                                  detector], capture_output=True, text=True, env={**os.environ}, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            video.unlink()
            print(f"{n:>7} frames: peak RSS {row['peak_rss_mb']:.0f} MB, {row['fps']:.1f} frames/s, "
                  f"{row['ids']} ids, frames/s per tenth {row['fps_per_tenth']}", flush=True)
    first = rows[0]["peak_rss_mb"]
    for row in rows[1:]:
        print(f"peak memory at {row['frames']} frames: {row['peak_rss_mb'] / first:.3f}x the {rows[0]['frames']}-frame run")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
