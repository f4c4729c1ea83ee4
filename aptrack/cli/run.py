"""``aptrack run``: detect, estimate pose and track every animal in a video."""

from __future__ import annotations

import sys
from pathlib import Path

from aptrack.cli.common import (add_animals_flag, add_arena_flag, add_backend_flag, add_pose_config_flag, aligned, console_flags, det_every_value,
                                load_config, non_negative_int, positive_int, streams_value)
from aptrack.io.exports import DEFAULT_EXPORTS, EXPORT_FORMATS
from aptrack.io.journal import CHECKPOINT_EVERY


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="detect, estimate pose and track every animal in videos or images",
                       description="Detect, estimate pose and track every animal in each input; "
                                   "write an annotated video, a JSON and a CSV (or the --export formats) "
                                   "per input, named by its stem.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video files, folders (searched recursively for videos and image folders), "
                        "globs (quoted), images or image folders (an image folder is one sequence)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="auto|ADDRESS",
                   help="one Ray task per input: on a new local cluster (no value), the cluster this "
                        "machine belongs to (auto), or the one at ADDRESS (ray start --head)")
    p.add_argument("--cpus-per-task", type=float, default=1.0, metavar="N",
                   help="CPUs each Ray task asks for (default: 1)")
    p.add_argument("--images-as", choices=["sequence", "independent"], default="sequence",
                   help="an image folder is one sequence (tracked), or each image stands alone")
    p.add_argument("-o", "--output", default="aptrack_out",
                   help="output folder (default: aptrack_out)")
    p.add_argument("--pipeline", default="default",
                   help="preset name in pipelines/ or a YAML file (default: default)")
    p.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"],
                   help="where the networks run (default: auto)")
    p.add_argument("--pose", default=None, metavar="WEIGHTS|none",
                   help="pose weights (registry name or file), or 'none' for detection + tracking")
    p.add_argument("--detector", default=None, metavar="WEIGHTS",
                   help="detector weights (registry name or Ultralytics file), or 'background' for a fixed "
                        "camera (animals against the video's median background), overriding the preset")
    p.add_argument("--det-every", type=det_every_value, default=1, metavar="N|auto",
                   help="run the detector every N frames, the tracker predicting in between; auto: when the "
                        "tracked animals look unsure (one fewer, or a weak pose) or every cadence.max_interval "
                        "frames (default 5)")
    p.add_argument("--batch-frames", type=positive_int, default=1, metavar="N",
                   help="put N frames through the detector and the pose network together (throughput on a GPU; "
                        "the same results). With --det-every 1, no --init-boxes and the YOLO detector; a "
                        "fixed-batch ONNX detector still runs frame by frame (default: 1)")
    p.add_argument("--streams", type=streams_value, default=None, metavar="N|auto",
                   help="copies of the detector and pose networks measuring the next frames at the same time, "
                        "each with its share of the CPU cores; the tracker takes them in order (the same "
                        "results). auto: 2 on a CPU with 2 cores or more, 1 on a GPU (default: auto; with "
                        "--ray, 1 per task). With --det-every 1 and the YOLO detector")
    p.add_argument("--init-boxes", default=None, metavar="FILE",
                   help="(one input) the animals on the first frame (JSON or CSV of ids and boxes): exactly these "
                        "are followed, each by its own single-object tracker, and no new ids are made")
    p.add_argument("--interpolate", type=non_negative_int, default=None, metavar="N",
                   help="fill the gaps of a track of up to N frames once its animal is found again, "
                        "marked interpolated in the outputs; 0 turns it off (default: the preset's)")
    p.add_argument("--smooth", choices=["one-euro", "none"], default=None,
                   help="One-Euro filter on each track's keypoints in the outputs (the JSON keeps the raw "
                        "ones as keypoints_raw); default: the preset's (none)")
    p.add_argument("--smooth-min-cutoff", type=float, default=None, metavar="HZ",
                   help="One-Euro cutoff of a still keypoint, lower is smoother (default 1.0)")
    p.add_argument("--smooth-beta", type=float, default=None, metavar="S_PER_PX",
                   help="how fast the cutoff rises with speed, higher lags less (default 0.05)")
    p.add_argument("--start", type=non_negative_int, default=0, help="first frame (0-based)")
    p.add_argument("--end", type=positive_int, default=None, help="stop before this frame")
    p.add_argument("--export", default=",".join(DEFAULT_EXPORTS), metavar="LIST",
                   help=f"output formats, comma-separated: {', '.join(EXPORT_FORMATS)} "
                        f"(default: {','.join(DEFAULT_EXPORTS)})")
    p.add_argument("--resume", action="store_true",
                   help="continue interrupted runs (Ctrl-C, SIGTERM, a crash, a power cut) from their last saved "
                        "state, giving the outputs of an uninterrupted run; inputs whose outputs are all there "
                        "are skipped. A saved run with another input, pipeline or options is refused")
    p.add_argument("--checkpoint-every", type=non_negative_int, default=CHECKPOINT_EVERY, metavar="N",
                   help=f"save the run's state every N frames, for --resume (default {CHECKPOINT_EVERY}; 0: never). "
                        f"Ctrl-C and SIGTERM save it too, after the frame in hand")
    p.add_argument("--no-video", action="store_true", help="write results only, no annotated video")
    p.add_argument("--trails", action="store_true", help="draw a short motion trail per track")
    add_animals_flag(p)
    add_arena_flag(p)
    add_pose_config_flag(p)
    add_backend_flag(p)
    console_flags(p, quiet_help="no progress bar or summary")
    p.set_defaults(handler=main)


def summary_table(summary: dict) -> str:
    rows = [("frames", f"{summary['frames']}"),
            ("animals (detections kept)", f"{summary['animals']}"),
            ("max animals in a frame", f"{summary['max_animals_per_frame']}"),
            ("tracks (ids)", f"{summary['tracks']}"),
            ("interpolated (gap rows)", f"{summary.get('interpolated', 0)}")]
    streams = summary.get("streams", 1)
    if streams > 1:
        rows.append(("streams", f"{streams} (stage times summed over them)"))
    rows.append(("end-to-end", f"{summary['fps']:.1f} frames/s"))
    for stage, ms in summary["ms_per_frame"].items():
        rows.append((f"  {stage}", f"{ms:.1f} ms/frame"))
    rows += [(f"{key} ->", path) for key, path in summary["outputs"].items() if path]
    return aligned(rows)


def main(args) -> int:
    import glob

    from aptrack.core.errors import ConfigError
    from aptrack.io.init_boxes import load_init_boxes

    config = load_config(args.pipeline, args.pose, args.detector, args.pose_config, args.interpolate,
                         args.smooth, args.smooth_min_cutoff, args.smooth_beta, args.backend, args.animals, args.arena)
    single = (len(args.inputs) == 1 and not glob.has_magic(args.inputs[0])
              and not Path(args.inputs[0]).is_dir() and args.ray is None)
    if args.init_boxes and not single:
        raise ConfigError("--init-boxes gives the animals of one video: run it with one input")
    init_boxes = load_init_boxes(args.init_boxes, args.start) if args.init_boxes else None
    if init_boxes is not None and args.animals is not None and len(init_boxes) != args.animals:
        raise ConfigError(f"--animals {args.animals} but --init-boxes gives {len(init_boxes)} animals: "
                          f"give one box per animal")
    if single:  # errors end the run at once, with one line
        if _finished(args, args.inputs[0]):
            if not args.quiet:
                print(f"{Path(args.inputs[0]).name}: finished earlier, its outputs are in {args.output}; "
                      f"nothing to resume")
            return 0
        summary = _run_one(args, config, args.inputs[0], None, init_boxes)
        if not args.quiet:
            print(summary_table(summary))
        return 0
    return _run_many(args, config)


def _finished(args, source) -> bool:
    """With --resume: whether this input's outputs are all there already (and nothing partial)."""
    from aptrack.io.exports import run_exports
    from aptrack.io.journal import run_is_finished
    from aptrack.runner import as_run_input

    if not args.resume:
        return False
    return run_is_finished(Path(args.output), as_run_input(source).stem, run_exports(args.export, not args.no_video))


def _streams(args) -> int | str:
    """``--streams`` on this machine (``auto`` when not given)."""
    return "auto" if args.streams is None else args.streams


def _run_one(args, config, source, pipeline, init_boxes=None) -> dict:
    from tqdm import tqdm

    from aptrack.runner import process_video

    run = process_video(source, pipeline=pipeline, config=config, output=args.output,
                        write_video=not args.no_video, trails=args.trails, start=args.start, end=args.end,
                        device=args.device, det_every=args.det_every, init_boxes=init_boxes,
                        exports=args.export, reset_each_frame=args.images_as == "independent",
                        resume=args.resume, checkpoint_every=args.checkpoint_every, batch_frames=args.batch_frames,
                        streams=_streams(args))
    with tqdm(total=run.expected_frames, unit="frame", disable=args.quiet, dynamic_ncols=True,
              desc=run.stem, file=sys.stderr) as bar:
        frames = iter(run)
        try:
            for _ in frames:
                bar.update(1)
        finally:
            frames.close()  # on Ctrl-C too: nothing is left under a final name
    return run.summary


def _run_many(args, config) -> int:
    """Every input in turn with one pipeline; a bad input is listed and the others go on."""
    from aptrack.core.errors import AptrackError, ConfigError
    from aptrack.io.exports import check_exports, parse_exports
    from aptrack.io.inputs import expand_inputs
    from aptrack.pipeline import build_pipeline

    # a bad export ends the run before any model loads, rather than failing every input
    exports = parse_exports(args.export)
    check_exports(exports, has_pose=bool(config.pose.weights))
    inputs, bad = expand_inputs(args.inputs, args.images_as)
    failed = [(b.text, b.reason) for b in bad]
    if not inputs:
        raise ConfigError("no video or image to run: " + "; ".join(f"{t}: {r}" for t, r in failed))
    skipped = [source.stem for source in inputs if _finished(args, source)]
    inputs = [source for source in inputs if source.stem not in skipped]
    if not inputs:
        if not args.quiet:
            print(batch_table([], failed, skipped))
        return 2 if failed else 0
    if args.ray is not None:
        done, ray_failed = _run_on_ray(args, config, inputs, exports)
        failed += ray_failed
    else:
        pipeline, _ = build_pipeline(config, args.device, args.det_every, _streams(args))
        done = []
        for source in inputs:
            try:
                done.append((source.stem, _run_one(args, config, source, pipeline)))
            except AptrackError as exc:
                failed.append((str(source.path), str(exc)))
    if not args.quiet:
        print(batch_table(done, failed, skipped))
    return 2 if failed else 0


def _run_on_ray(args, config, inputs, exports):
    """Each input as one Ray task; a progress bar of finished inputs and their frames."""
    from tqdm import tqdm

    from aptrack.cluster import RunOptions, run_on_ray
    from aptrack.core.errors import writable_dir

    options = RunOptions(output=str(writable_dir(Path(args.output)).resolve()), device=args.device,
                         det_every=args.det_every, start=args.start, end=args.end,
                         write_video=not args.no_video, trails=args.trails, exports=exports,
                         reset_each_frame=args.images_as == "independent", resume=args.resume,
                         checkpoint_every=args.checkpoint_every, batch_frames=args.batch_frames,
                         streams=1 if args.streams is None else args.streams)
    frames = 0
    with tqdm(total=len(inputs), unit="input", disable=args.quiet, dynamic_ncols=True, file=sys.stderr,
              desc="ray") as bar:
        def finished(result) -> None:
            nonlocal frames
            frames += result.summary["frames"] if result.summary else 0
            bar.set_postfix(frames=frames)
            bar.update(1)

        address = None if args.ray == "local" else args.ray
        results = run_on_ray(inputs, config, options, address, args.cpus_per_task, on_done=finished)
    done = [(r.source.stem, r.summary) for r in results if r.summary is not None]
    failed = [(str(r.source.path), r.error) for r in results if r.summary is None]
    return done, failed


def batch_table(done: list[tuple[str, dict]], failed: list[tuple[str, str]], skipped: list[str] = ()) -> str:
    """Per input: frames, animals, ids and frames/s; the inputs skipped as finished earlier (--resume);
    then the failed inputs with their reasons."""
    rows = [("input", "frames  animals  ids  frames/s")]
    for stem, s in done:
        rows.append((stem, f"{s['frames']:>6}  {s['animals']:>7}  {s['tracks']:>3}  {s['fps']:>8.1f}"))
    rows += [(stem, "finished earlier, skipped") for stem in skipped]
    total = sum(s["frames"] for _, s in done)
    rows.append((f"{len(done)} done, {len(skipped)} skipped, {len(failed)} failed" if skipped
                 else f"{len(done)} done, {len(failed)} failed", f"{total:>6} frames"))
    rows += [(f"FAILED {text}", reason) for text, reason in failed]
    return aligned(rows)
