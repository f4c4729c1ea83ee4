"""``aptrack bench``: keypoint AP and tracking metrics on APTv2-style clips."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from aptrack import __version__
from aptrack.cli.common import (add_animals_flag, add_arena_flag, add_backend_flag, add_pose_config_flag, aligned,
                                console_flags, det_every_value, figure, load_config, non_negative_int, positive_int)
from aptrack.core.errors import ConfigError, writable_dir, write_json_atomic
from aptrack.eval.compare import COMPARE_TRACKERS


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="keypoint AP and tracking metrics on APTv2-style clips",
                       description="Run the pipeline over every clip of an APTv2-style split and "
                                   "report keypoint AP, MOTA, IDF1, ID switches and speed.")
    p.add_argument("--data", default=None,
                   help="APTv2 folder (either layout), or one annotation json (default: $APTRACK_DATA, "
                        "else aptrack's cache, else the synthetic APTv2 set, built once from the "
                        "Animal-Pose mirror)")
    p.add_argument("--images", default=None, help="image folder (default: the data folder)")
    p.add_argument("--split", default="hard", help="easy, hard or all (default: hard)")
    p.add_argument("--subset", default="test", choices=["train", "val", "test"],
                   help="which annotation file of the split (default: test)")
    p.add_argument("--boxes", choices=["detector", "gt", "gt-first-frame"], default="detector")
    p.add_argument("--pipeline", default="default", help="preset in pipelines/ or a YAML file")
    p.add_argument("--pose", default=None, metavar="WEIGHTS|none", help="pose weights override")
    p.add_argument("--detector", default=None, metavar="WEIGHTS", help="detector weights override, or 'background' (fixed camera)")
    p.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    p.add_argument("--interpolate", type=non_negative_int, default=None, metavar="N",
                   help="fill track gaps of up to N frames (interpolated rows are scored like any "
                        "other); 0 turns it off (default: the preset's)")
    p.add_argument("--det-every", type=det_every_value, default=1, metavar="N|auto",
                   help="detector cadence, as aptrack run's (default: every frame)")
    p.add_argument("--max-clips", type=positive_int, default=None, help="only the first N clips")
    p.add_argument("--bootstrap", type=non_negative_int, default=0, metavar="N",
                   help="also give 95%% intervals of AP, IDF1 and MOTA over N draws of the clips with "
                        "replacement (0: none; 200 is a usual choice, well under a second a draw for 12 clips); "
                        "report.json keeps each draw, so two runs on the same clips pair up")
    p.add_argument("--compare", default=",".join(COMPARE_TRACKERS),
                   help="with detector boxes, also run these trackers on the same detections "
                        f"(comma-separated: {', '.join(COMPARE_TRACKERS)}; 'none' to skip; "
                        "default: all)")
    p.add_argument("-o", "--output", default="bench_out", help="report folder (default: bench_out)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    add_animals_flag(p)
    add_arena_flag(p)
    add_pose_config_flag(p)
    add_backend_flag(p)
    console_flags(p, quiet_help="no progress bar")
    p.set_defaults(handler=main)


def _bench_table(report: dict) -> str:
    from aptrack.eval.report import headline

    h = headline(report)
    rows = []
    for key in ("AP", "AP50", "AP75", "AR", "PCK@0.05", "EPE", "MOTA", "IDF1", "id_switches", "HOTA",
                "MOTP", "keypoint_MOTA", "fps"):
        rows.append((key, figure(h[key])))
    for name, ap in report["keypoints"]["per_category"].items():
        rows.append((f"AP {name}", f"{ap:.3f}"))
    for stage, ms in report["speed"]["ms_per_frame"].items():
        rows.append((f"  {stage}", f"{ms:.1f} ms/frame"))
    return aligned(rows)


def _default_data(quiet: bool) -> Path:
    """The clips to use without ``--data``; builds the synthetic set first when needed."""
    from tqdm import tqdm

    from aptrack.data.locate import SYNTH_CLIPS, build_synthetic_clips, find_clip_data

    found = find_clip_data()
    if found.build_from is None:
        if not quiet:
            print(f"no --data: using {found.path} ({found.origin})", file=sys.stderr)
        return found.path
    print(f"no --data and no APTv2 copy: building the synthetic APTv2 set ({SYNTH_CLIPS} clips) from "
          f"{found.build_from} into {found.path}, once", file=sys.stderr)
    with tqdm(total=SYNTH_CLIPS, unit="clip", disable=quiet, dynamic_ncols=True, file=sys.stderr,
              desc="synth") as bar:
        build_synthetic_clips(found, progress=lambda done: bar.update(done - bar.n))
    return found.path


def main(args) -> int:
    import json

    from tqdm import tqdm

    from aptrack.core.layout import load_layout
    from aptrack.data.clips import find_annotation_file, load_clips
    from aptrack.eval.bench import run_benchmark
    from aptrack.eval.report import headline, interval_line, write_report
    from aptrack.pipeline import build_pipeline

    config = load_config(args.pipeline, args.pose, args.detector, args.pose_config, args.interpolate,
                         backend=args.backend, animals=args.animals, arena=args.arena)
    data = Path(args.data) if args.data else _default_data(args.quiet)
    ann = find_annotation_file(data, args.split, args.subset)
    images = Path(args.images) if args.images else (data if data.is_dir() else data.parent)
    out_dir = writable_dir(Path(args.output))
    pipeline, models = build_pipeline(config, args.device, args.det_every)
    layout = pipeline.layout or load_layout(config.layout)
    clips = load_clips(ann, images, layout)
    if args.max_clips:
        clips = dataclasses.replace(clips, clips=clips.clips[:args.max_clips])
    with tqdm(total=len(clips.clips), unit="clip", disable=args.quiet, dynamic_ncols=True,
              file=sys.stderr, desc=f"bench {args.split}") as bar:
        compare = tuple(n for n in args.compare.split(",") if n and n != "none")
        unknown = sorted(set(compare) - set(COMPARE_TRACKERS))
        if unknown:
            raise ConfigError(f"unknown tracker(s) {', '.join(unknown)} for --compare; "
                              f"known: {', '.join(COMPARE_TRACKERS)}")
        report = run_benchmark(pipeline, clips, args.boxes, progress=lambda done: bar.update(done - bar.n),
                               compare=compare, bootstrap=args.bootstrap)
    report.update({"data": str(ann), "split": args.split, "models": models,
                   "aptrack_version": __version__})
    coco = report.pop("coco")
    write_json_atomic(out_dir / "gt.json", coco["gt"])
    write_json_atomic(out_dir / "results.json", coco["results"])
    paths = write_report(report, out_dir)
    if args.format == "json":
        print(json.dumps(headline(report)))
    elif not args.quiet:
        print(_bench_table(report))
        if report.get("intervals"):
            print(interval_line(report["intervals"]))
        if report.get("trackers"):
            print("same detections through each tracker:")
            for name, row in report["trackers"].items():
                print(f"  {name:<10} MOTA {row['MOTA']:.3f}  IDF1 {row['IDF1']:.3f}  HOTA {row['HOTA']:.3f}  "
                      f"ID switches {row['id_switches']}  FP {row['false_positives']}  misses {row['misses']}  "
                      f"{row['ms_per_frame']:.3f} ms/frame")
        print(f"report -> {paths['md']}, {paths['json']}")
    return 0
