"""``aptrack run``: detect, estimate pose and track every animal in a video."""

from __future__ import annotations

import sys
from pathlib import Path

from aptrack.cli.common import add_pose_config_flag, aligned, console_flags, load_config, non_negative_int, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="detect, estimate pose and track every animal in a video",
                       description="Detect, estimate pose and track every animal in a video; "
                                   "write an annotated video, a JSON and a CSV.")
    p.add_argument("video", help="input video file")
    p.add_argument("-o", "--output", default="aptrack_out",
                   help="output folder (default: aptrack_out)")
    p.add_argument("--pipeline", default="default",
                   help="preset name in pipelines/ or a YAML file (default: default)")
    p.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"],
                   help="where the networks run (default: auto)")
    p.add_argument("--pose", default=None, metavar="WEIGHTS|none",
                   help="pose weights (registry name or file), or 'none' for detection + tracking")
    p.add_argument("--detector", default=None, metavar="WEIGHTS",
                   help="detector weights (registry name or Ultralytics file), overriding the preset")
    p.add_argument("--det-every", type=positive_int, default=1, metavar="N",
                   help="run the detector every N frames; the tracker predicts in between")
    p.add_argument("--init-boxes", default=None, metavar="FILE",
                   help="the animals on the first frame (JSON or CSV of ids and boxes): exactly these "
                        "are followed, each by its own single-object tracker, and no new ids are made")
    p.add_argument("--start", type=non_negative_int, default=0, help="first frame (0-based)")
    p.add_argument("--end", type=positive_int, default=None, help="stop before this frame")
    p.add_argument("--no-video", action="store_true", help="write results only, no annotated video")
    p.add_argument("--trails", action="store_true", help="draw a short motion trail per track")
    add_pose_config_flag(p)
    console_flags(p, quiet_help="no progress bar or summary")
    p.set_defaults(handler=main)


def summary_table(summary: dict) -> str:
    rows = [("frames", f"{summary['frames']}"),
            ("animals (detections kept)", f"{summary['animals']}"),
            ("max animals in a frame", f"{summary['max_animals_per_frame']}"),
            ("tracks (ids)", f"{summary['tracks']}"),
            ("end-to-end", f"{summary['fps']:.1f} frames/s")]
    for stage, ms in summary["ms_per_frame"].items():
        rows.append((f"  {stage}", f"{ms:.1f} ms/frame"))
    rows += [(f"{key} ->", summary["outputs"][key]) for key in ("video", "json", "csv")
             if summary["outputs"].get(key)]
    return aligned(rows)


def main(args) -> int:
    from tqdm import tqdm

    from aptrack.io.init_boxes import load_init_boxes
    from aptrack.runner import process_video

    config = load_config(args.pipeline, args.pose, args.detector, args.pose_config)
    init_boxes = load_init_boxes(args.init_boxes, args.start) if args.init_boxes else None
    run = process_video(args.video, config=config, output=args.output, write_video=not args.no_video,
                        trails=args.trails, start=args.start, end=args.end, device=args.device,
                        det_every=args.det_every, init_boxes=init_boxes)
    with tqdm(total=run.expected_frames, unit="frame", disable=args.quiet, dynamic_ncols=True,
              desc=Path(args.video).stem, file=sys.stderr) as bar:
        frames = iter(run)
        try:
            for _ in frames:
                bar.update(1)
        finally:
            frames.close()  # on Ctrl-C too: nothing is left under a final name
    if not args.quiet:
        print(summary_table(run.summary))
    return 0
