"""Command line: ``aptrack run VIDEO -o OUTDIR``.

The CLI owns the console: a progress bar while it runs, a summary table at the
end, and one ``aptrack: error: ...`` line (exit status 2) for anything the user
can fix.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from . import __version__
from .errors import AptrackError, OutputError

log = logging.getLogger("aptrack")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aptrack", description="Track animals and their poses in video.")
    parser.add_argument("--version", action="version", version=f"aptrack {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="detect, estimate pose and track every animal in a video",
                         description="Detect, estimate pose and track every animal in a video; "
                                     "write an annotated video, a JSON and a CSV.")
    run.add_argument("video", help="input video file")
    run.add_argument("-o", "--output", default="aptrack_out",
                     help="output folder (default: aptrack_out)")
    run.add_argument("--pipeline", default="default",
                     help="preset name in pipelines/ or a YAML file (default: default)")
    run.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"],
                     help="where the networks run (default: auto)")
    run.add_argument("--pose", default=None, metavar="WEIGHTS|none",
                     help="pose weights (registry name or file), or 'none' for detection + tracking")
    run.add_argument("--detector", default=None, metavar="WEIGHTS",
                     help="detector weights (registry name or Ultralytics file), overriding the preset")
    run.add_argument("--det-every", type=_positive_int, default=1, metavar="N",
                     help="run the detector every N frames; the tracker predicts in between")
    run.add_argument("--start", type=_non_negative_int, default=0, help="first frame (0-based)")
    run.add_argument("--end", type=_positive_int, default=None, help="stop before this frame")
    run.add_argument("--no-video", action="store_true", help="write results only, no annotated video")
    run.add_argument("--trails", action="store_true", help="draw a short motion trail per track")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    run.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    return parser


def _prepare_output_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".aptrack-write-test"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {path}: {exc.strerror or exc}") from None
    return path


def _load_config(args):
    from .config import load_pipeline

    config = load_pipeline(args.pipeline)
    if args.pose is not None:
        pose_weights = None if args.pose.lower() == "none" else args.pose
        config = dataclasses.replace(config, pose=dataclasses.replace(config.pose, weights=pose_weights))
    if args.detector is not None:
        config = dataclasses.replace(config, detector=dataclasses.replace(config.detector,
                                                                          weights=args.detector))
    return config


def _summary_table(summary: dict) -> str:
    rows = [("frames", f"{summary['frames']}"),
            ("animals (detections kept)", f"{summary['animals']}"),
            ("max animals in a frame", f"{summary['max_animals_per_frame']}"),
            ("tracks (ids)", f"{summary['tracks']}"),
            ("end-to-end", f"{summary['fps']:.1f} frames/s")]
    for stage, ms in summary["ms_per_frame"].items():
        rows.append((f"  {stage}", f"{ms:.1f} ms/frame"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    for key in ("video", "json", "csv"):
        if summary["outputs"].get(key):
            lines.append(f"{key + ' ->':<{width}}  {summary['outputs'][key]}")
    return "\n".join(lines)


def cmd_run(args) -> int:
    from tqdm import tqdm

    from .draw import TrailHistory, annotate
    from .pipeline import build_pipeline
    from .results import ResultsWriter
    from .video import AtomicVideoWriter, VideoReader

    config = _load_config(args)
    reader = VideoReader(args.video, start=args.start, end=args.end)
    out_dir = _prepare_output_dir(Path(args.output))
    pipeline, models = build_pipeline(config, args.device, args.det_every)
    layout = pipeline.layout
    stem = Path(args.video).stem
    info = {
        "video": str(Path(args.video).resolve()), "width": reader.width, "height": reader.height,
        "fps": reader.fps, "start": reader.start, "end": reader.end,
        "aptrack_version": __version__, "pipeline": config.name, "det_every": args.det_every,
        "models": models, "keypoint_names": list(layout.keypoints) if layout else [],
        "skeleton": [list(p) for p in layout.skeleton] if layout else [],
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    video_out = None
    results = None
    track_ids: set[int] = set()
    animals = max_animals = frames = 0
    timer = pipeline.timer
    trails = TrailHistory(config.draw.trail_length) if args.trails else None
    try:
        results = ResultsWriter(out_dir, stem, info, info["keypoint_names"])
        if not args.no_video:
            video_out = AtomicVideoWriter(out_dir / f"{stem}.mp4", reader.fps,
                                          (reader.width, reader.height))
        started = time.perf_counter()
        bar = tqdm(total=reader.expected_frames, unit="frame", disable=args.quiet,
                   dynamic_ncols=True, desc=stem, file=sys.stderr)
        with bar:
            frame_iter = iter(reader)
            while True:
                with timer("read"):
                    item = next(frame_iter, None)
                if item is None:
                    break
                index, frame = item
                tracked = pipeline(frame, index)
                frames += 1
                animals += len(tracked)
                max_animals = max(max_animals, len(tracked))
                track_ids.update(int(t) for t in tracked.track_ids)
                with timer("write"):
                    results.write(tracked)
                if video_out is not None:
                    with timer("draw"):
                        if trails is not None:
                            trails.update(tracked)
                        drawn = annotate(frame, tracked, layout, config.draw, trails)
                    with timer("write"):
                        video_out.write(drawn)
                bar.update(1)
        elapsed = time.perf_counter() - started
        summary = {
            "frames": frames, "animals": animals, "max_animals_per_frame": max_animals,
            "tracks": len(track_ids), "seconds": round(elapsed, 3),
            "fps": round(frames / elapsed, 2) if elapsed > 0 else float("nan"),
            "ms_per_frame": timer.ms_per_frame(frames),
            "outputs": {"json": str(results.json_path), "csv": str(results.csv_path),
                        "video": str(video_out.path) if video_out else None},
            "video_codec": video_out.fourcc if video_out else None,
        }
        if video_out is not None:
            video_out.commit()
        results.commit(summary)
    finally:
        reader.close()
        if video_out is not None:
            video_out.close()
        if results is not None:
            results.close()
    if not args.quiet:
        print(_summary_table(summary))
    return 0


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("aptrack: %(message)s"))
    root = logging.getLogger("aptrack")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False
    # Ultralytics logs each model load and frame at INFO; keep its warnings only.
    logging.getLogger("ultralytics").setLevel(logging.WARNING if verbose else logging.ERROR)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(getattr(args, "verbose", False))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    try:
        if args.command == "run":
            return cmd_run(args)
    except AptrackError as exc:
        print(f"aptrack: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("aptrack: interrupted; no output was written under its final name", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
