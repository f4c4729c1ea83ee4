"""Command line: ``aptrack run | train | eval | synth | bench | track``.

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
from .errors import AptrackError, ConfigError, OutputError
from .results import write_json_atomic

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


def _console_flags(parser: argparse.ArgumentParser, quiet_help: str) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")


def _aligned(rows) -> str:
    """``(name, text)`` rows as two left-aligned columns."""
    rows = list(rows)
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _figure(value) -> str:
    """A metric for the console: 3 decimals, 'n/a' for missing or NaN."""
    if value is None or value != value:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


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
    _console_flags(run, quiet_help="no progress bar or summary")

    train = sub.add_parser("train", help="train the top-down pose network on a keypoint dataset",
                           description="Train the top-down heatmap pose network on a COCO-style "
                                       "keypoint file (AP-10K, APT-36K, APTv2, or Animal-Pose).")
    train.add_argument("--config", default="animalpose_mobilenetv2_160",
                       help="training config name in configs/train/ or a YAML file")
    train.add_argument("--data", required=True, help="annotation json")
    train.add_argument("--images", required=True, help="folder with the images")
    train.add_argument("-o", "--output", required=True, help="run folder (checkpoints, model)")
    train.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    train.add_argument("--resume", action="store_true", help="continue the run in --output")
    train.add_argument("--epochs", type=_positive_int, default=None,
                       help="override the config's number of epochs")
    train.add_argument("--max-epochs", type=_positive_int, default=None,
                       help="stop after this many more epochs (the schedule is unchanged)")
    train.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    _console_flags(train, quiet_help="no progress bar")

    ev = sub.add_parser("eval", help="keypoint AP / PCK / EPE of a pose model, or score a results file",
                        description="With --data/--images: evaluate a pose model (COCO keypoint AP, "
                                    "AP50, AP75, AR with OKS via pycocotools, per-species AP, PCK@0.05, "
                                    "EPE). With --gt/--pred: score a tracking results file (the same "
                                    "keypoint metrics plus MOTA, IDF1, ID switches, MOTP, keypoint MOTA).")
    ev.add_argument("--data", help="annotation json (COCO keypoints or Animal-Pose) to run a pose model on")
    ev.add_argument("--images", help="folder with the images of --data")
    ev.add_argument("--gt", help="score a results file instead: video keypoint json (APTv2 style) ...")
    ev.add_argument("--pred", help="... and the results json (aptrack run / aptrack track output, "
                                   "or a list of COCO results with track_id)")
    ev.add_argument("--boxes", choices=["gt", "detector"], default="gt",
                    help="crop ground-truth boxes, or the detector's (class-agnostic AP)")
    ev.add_argument("--weights", default=None,
                    help="pose weights (registry name or file; default: the pipeline's)")
    ev.add_argument("--pipeline", default="default", help="preset for the detector and pose settings")
    ev.add_argument("--split", choices=["all", "train", "val"], default="all",
                    help="evaluate all animals, or one side of the seeded split by image")
    ev.add_argument("--val-instances", type=_positive_int, default=1100,
                    help="animals held out by the split (default: 1100, as in training)")
    ev.add_argument("--split-seed", type=int, default=0, help="seed of the split (default: 0)")
    ev.add_argument("--no-flip", action="store_true", help="disable the flip test")
    ev.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    ev.add_argument("--format", choices=["table", "json"], default="table")
    ev.add_argument("--save", default=None, metavar="DIR",
                    help="also write the scored ground truth and predictions (COCO json) here")
    _console_flags(ev, quiet_help="no progress bar")

    syn = sub.add_parser("synth", help="build an APTv2-layout video dataset from Animal-Pose animals",
                         description="Build APTv2-layout clips (15 frames, easy/hard by animals per "
                                     "frame) from real Animal-Pose animals over real backgrounds.")
    syn.add_argument("--source", required=True,
                     help="Animal-Pose folder (keypoints.json and images/) or its keypoints.json")
    syn.add_argument("--out", required=True, help="output folder")
    syn.add_argument("--clips", type=_positive_int, default=40, help="number of clips (default: 40)")
    syn.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    _console_flags(syn, quiet_help="no progress bar")

    trk = sub.add_parser("track", help="re-track saved detections or poses (no network)",
                         description="Run only the tracker over detections/poses in the COCO-results "
                                     "format aptrack run writes; write the same format with new track ids.")
    trk.add_argument("--detections", required=True, help="results json (aptrack run output or a list)")
    trk.add_argument("-o", "--output", required=True, help="output json file")
    trk.add_argument("--pipeline", default="default", help="preset whose tracker settings are used")
    _console_flags(trk, quiet_help="no summary line")

    bench = sub.add_parser("bench", help="keypoint AP and tracking metrics on APTv2-style clips",
                           description="Run the pipeline over every clip of an APTv2-style split and "
                                       "report keypoint AP, MOTA, IDF1, ID switches and speed.")
    bench.add_argument("--data", required=True,
                       help="APTv2 folder (either layout), or one annotation json")
    bench.add_argument("--images", default=None, help="image folder (default: the data folder)")
    bench.add_argument("--split", default="hard", help="easy, hard or all (default: hard)")
    bench.add_argument("--subset", default="test", choices=["train", "val", "test"],
                       help="which annotation file of the split (default: test)")
    bench.add_argument("--boxes", choices=["detector", "gt", "gt-first-frame"], default="detector")
    bench.add_argument("--pipeline", default="default", help="preset in pipelines/ or a YAML file")
    bench.add_argument("--pose", default=None, metavar="WEIGHTS|none", help="pose weights override")
    bench.add_argument("--detector", default=None, metavar="WEIGHTS", help="detector weights override")
    bench.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    bench.add_argument("--max-clips", type=_positive_int, default=None, help="only the first N clips")
    bench.add_argument("--compare", default="bytetrack,botsort",
                       help="with detector boxes, also run these Ultralytics trackers on the same "
                            "detections (comma-separated: bytetrack, botsort; 'none' to skip)")
    bench.add_argument("-o", "--output", default="bench_out", help="report folder (default: bench_out)")
    bench.add_argument("--format", choices=["table", "json"], default="table")
    _console_flags(bench, quiet_help="no progress bar")
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
    rows += [(f"{key} ->", summary["outputs"][key]) for key in ("video", "json", "csv")
             if summary["outputs"].get(key)]
    return _aligned(rows)


def cmd_run(args) -> int:
    from tqdm import tqdm

    from .background import BackgroundWorker, Prefetcher
    from .draw import TrailHistory, annotate
    from .pipeline import StageTimer, build_pipeline
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
    frames_in = None
    output_worker = None
    track_ids: set[int] = set()
    animals = max_animals = frames = 0
    timer = pipeline.timer
    out_timer = StageTimer()  # drawing and writing, timed on their own thread
    trails = TrailHistory(config.draw.trail_length) if args.trails else None

    def emit(item) -> None:
        frame, tracked = item
        with out_timer("write"):
            results.write(tracked)
        if video_out is not None:
            with out_timer("draw"):
                if trails is not None:
                    trails.update(tracked)
                drawn = annotate(frame, tracked, layout, config.draw, trails)
            with out_timer("write"):
                video_out.write(drawn)

    try:
        results = ResultsWriter(out_dir, stem, info, info["keypoint_names"])
        if not args.no_video:
            video_out = AtomicVideoWriter(out_dir / f"{stem}.mp4", reader.fps,
                                          (reader.width, reader.height))
        started = time.perf_counter()
        # decoding runs ahead and drawing/encoding runs behind on their own threads
        frames_in = Prefetcher(reader)
        output_worker = BackgroundWorker(emit)
        bar = tqdm(total=reader.expected_frames, unit="frame", disable=args.quiet,
                   dynamic_ncols=True, desc=stem, file=sys.stderr)
        with bar:
            while True:
                with timer("read"):  # time spent waiting for the decoder
                    item = next(frames_in, None)
                if item is None:
                    break
                index, frame = item
                tracked = pipeline(frame, index)
                frames += 1
                animals += len(tracked)
                max_animals = max(max_animals, len(tracked))
                track_ids.update(int(t) for t in tracked.track_ids)
                output_worker.submit((frame, tracked))
                bar.update(1)
            output_worker.join()
        elapsed = time.perf_counter() - started
        summary = {
            "frames": frames, "animals": animals, "max_animals_per_frame": max_animals,
            "tracks": len(track_ids), "seconds": round(elapsed, 3),
            "fps": round(frames / elapsed, 2) if elapsed > 0 else float("nan"),
            "ms_per_frame": {**timer.ms_per_frame(frames), **out_timer.ms_per_frame(frames)},
            "outputs": {"json": str(results.json_path), "csv": str(results.csv_path),
                        "video": str(video_out.path) if video_out else None},
            "video_codec": video_out.fourcc if video_out else None,
        }
        if video_out is not None:
            video_out.commit()
        results.commit(summary)
    finally:
        if output_worker is not None:
            output_worker.close()
        if frames_in is not None:
            frames_in.close()
        reader.close()
        if video_out is not None:
            video_out.close()
        if results is not None:
            results.close()
    if not args.quiet:
        print(_summary_table(summary))
    return 0


def cmd_train(args) -> int:
    import torch
    from tqdm import tqdm

    from .config import load_layout
    from .datasets import load_keypoint_dataset, split_by_image
    from .pipeline import resolve_device
    from .train import Trainer, load_train_config
    from .weights import resolve

    config = load_train_config(args.config)
    if args.epochs is not None:
        config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, epochs=args.epochs))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    layout = load_layout(config.layout)
    dataset = load_keypoint_dataset(args.data, args.images, layout)
    train_idx, val_idx = split_by_image(dataset, config.split.val_instances, config.split.seed)
    pretrained = resolve(config.model.pretrained) if config.model.pretrained else None
    init = resolve(config.model.init) if config.model.init else None
    meta = {"data": str(Path(args.data).resolve()), "train_instances": int(len(train_idx)),
            "val_instances": int(len(val_idx)), "split": dataclasses.asdict(config.split),
            "pretrained": pretrained.describe() if pretrained else None,
            "init": init.describe() if init else None,
            "command": "aptrack " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("aptrack") else None,
            "aptrack_version": __version__}
    out_dir = _prepare_output_dir(Path(args.output))
    trainer = Trainer(config, dataset.subset(train_idx), dataset.subset(val_idx), out_dir, device,
                      pretrained.path if pretrained else None, meta, init.path if init else None)
    bar = None

    def on_step(i, n, loss, ips):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=n, unit="batch", disable=args.quiet, dynamic_ncols=True, file=sys.stderr,
                       desc=f"epoch {trainer.epoch + 1}/{config.optim.epochs}")
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.2e}", img_s=f"{ips:.1f}")

    def on_epoch(report):
        nonlocal bar
        if bar is not None:
            bar.close()
            bar = None
        if not args.quiet:
            ap = f"  val AP {report.metrics['AP']:.3f}" if report.metrics else ""
            print(f"epoch {report.epoch}/{config.optim.epochs}  loss {report.loss:.3e}  "
                  f"{report.images_per_s:.1f} img/s  lr {report.lr:.2e}{ap}", flush=True)

    trainer.fit(resume=args.resume, on_step=on_step, on_epoch=on_epoch, max_epochs=args.max_epochs)
    if not args.quiet:
        print(f"model -> {out_dir / 'model.pt'}  (best validation AP: {out_dir / 'best.pt'})")
    return 0


def _metrics_table(metrics: dict) -> str:
    pck = next(k for k in metrics if k.startswith("PCK@"))
    rows = [(name, f"{metrics[name]:.3f}") for name in ("AP", "AP50", "AP75", "APm", "APl", "AR")]
    rows += [(pck, f"{metrics[pck]:.3f}"), ("EPE", f"{metrics['EPE']:.2f} px"),
             ("animals", str(metrics["instances"])), ("images", str(metrics["images"])),
             ("predictions", str(metrics["predictions"]))]
    for name, ap in metrics["per_category"].items():
        rows.append((f"AP {name}", f"{ap:.3f}"))
    return _aligned(rows)


def cmd_eval_results(args) -> int:
    import json

    from .clips import load_clips
    from .config import load_layout
    from .report import _clean
    from .retrack import evaluate_results, read_results

    config = _load_config(argparse.Namespace(pipeline=args.pipeline, pose=None, detector=None))
    layout = load_layout(config.layout)
    gt = load_clips(args.gt, None, layout)
    _, records = read_results(args.pred)
    result = evaluate_results(gt, records)
    kp, tr = result["keypoints"], result["tracking"]["overall"]
    head = {"AP": kp["AP"], "AP50": kp["AP50"], "AP75": kp["AP75"], "AR": kp["AR"],
            "PCK@0.05": kp["PCK@0.05"], "EPE": kp["EPE"], **{k: v for k, v in tr.items()
                                                            if k != "keypoint_MOTA_per_keypoint"}}
    if args.save:
        save_dir = _prepare_output_dir(Path(args.save))
        write_json_atomic(save_dir / "metrics.json", _clean(result))
    if args.format == "json":
        print(json.dumps(_clean(head)))
    else:
        print(_aligned((key, _figure(v)) for key, v in head.items()))
    return 0


def cmd_track(args) -> int:

    from .config import load_layout
    from .retrack import read_results, retrack
    from .tracker import PoseTracker

    config = _load_config(argparse.Namespace(pipeline=args.pipeline, pose=None, detector=None))
    layout = load_layout(config.layout)
    info, records = read_results(args.detections)
    k = layout.num_keypoints if any(len(r.get("keypoints", ())) == 3 * layout.num_keypoints
                                    for r in records) else None
    tracker = PoseTracker(config.tracker, sigmas=layout.sigmas if k else None)
    started = time.perf_counter()
    out = retrack(records, tracker, k)
    seconds = time.perf_counter() - started
    out_path = Path(args.output)
    _prepare_output_dir(out_path.parent if str(out_path.parent) else Path("."))
    summary = {"input": str(Path(args.detections).resolve()), "records_in": len(records),
               "records_out": len(out), "tracks": len({r["track_id"] for r in out}),
               "tracker_ms_total": round(1000 * seconds, 2), "pipeline": config.name}
    write_json_atomic(out_path, {"info": {**info, "retracked": summary}, "annotations": out,
                                  "summary": summary})
    if not args.quiet:
        print(f"{len(records)} detections -> {len(out)} tracked, {summary['tracks']} tracks "
              f"({summary['tracker_ms_total']:.1f} ms of tracking) -> {out_path}")
    return 0


def cmd_eval(args) -> int:
    import json

    from tqdm import tqdm

    if args.gt or args.pred:
        if not (args.gt and args.pred) or args.data:
            raise ConfigError("give either --data and --images (evaluate a model) or --gt and --pred "
                              "(score a results file)")
        return cmd_eval_results(args)
    if not (args.data and args.images):
        raise ConfigError("aptrack eval needs --data and --images (or --gt and --pred)")

    from .datasets import load_keypoint_dataset, select_split
    from .evaluation import evaluate_predictions, predict_dataset
    from .pipeline import build_detector, build_pose, resolve_device

    config = _load_config(argparse.Namespace(pipeline=args.pipeline, pose=args.weights, detector=None))
    if args.no_flip:
        config = dataclasses.replace(config, pose=dataclasses.replace(config.pose, flip_test=False))
    if config.pose.weights is None:
        raise OutputError("no pose weights to evaluate: pass --weights NAME_OR_FILE")
    device = resolve_device(args.device)
    estimator, pose_info = build_pose(config.pose, device)
    dataset = load_keypoint_dataset(args.data, args.images, estimator.layout)
    dataset = select_split(dataset, args.split, args.val_instances, args.split_seed)
    detector = None
    if args.boxes == "detector":
        detector, _ = build_detector(config.detector, device)
    save_dir = _prepare_output_dir(Path(args.save)) if args.save else None
    n_images = len(set(dataset.image_ids.tolist()))
    with tqdm(total=n_images, unit="image", disable=args.quiet, dynamic_ncols=True,
              file=sys.stderr, desc="eval") as bar:
        pred = predict_dataset(estimator, dataset, detector=detector,
                               progress=lambda done: bar.update(done - bar.n))
    metrics = evaluate_predictions(dataset, pred, class_agnostic=args.boxes == "detector")
    gt, results = metrics.pop("gt"), metrics.pop("results")
    metrics.update({"boxes": args.boxes, "split": args.split, "weights": pose_info,
                    "data": str(Path(args.data).resolve())})
    if save_dir is not None:
        write_json_atomic(save_dir / "gt.json", gt)
        write_json_atomic(save_dir / "results.json", results)
        write_json_atomic(save_dir / "metrics.json", metrics)
    if args.format == "json":
        print(json.dumps(metrics))
    else:
        print(_metrics_table(metrics))
    return 0


def cmd_synth(args) -> int:
    from tqdm import tqdm

    from .config import load_layout
    from .datasets import load_keypoint_dataset
    from .synth import synthesize

    source = Path(args.source)
    ann = source if source.suffix == ".json" else source / "keypoints.json"
    images = ann.parent / "images"
    animals = load_keypoint_dataset(ann, images, load_layout("ap10k"))
    with tqdm(total=args.clips, unit="clip", disable=args.quiet, dynamic_ncols=True, file=sys.stderr,
              desc="synth") as bar:
        summary = synthesize(animals, args.out, args.clips, args.seed,
                             progress=lambda done: bar.update(done - bar.n))
    if not args.quiet:
        for split in ("easy", "hard"):
            print(f"{split:<5} {summary['clips'][split]} clips, {summary['frames'][split]} frames, "
                  f"{summary['animals'][split]} animals -> {summary['files'][split]}")
    return 0


def _bench_table(report: dict) -> str:
    from .report import headline

    h = headline(report)
    rows = []
    for key in ("AP", "AP50", "AP75", "AR", "PCK@0.05", "EPE", "MOTA", "IDF1", "id_switches", "HOTA",
                "MOTP", "keypoint_MOTA", "fps"):
        rows.append((key, _figure(h[key])))
    for name, ap in report["keypoints"]["per_category"].items():
        rows.append((f"AP {name}", f"{ap:.3f}"))
    for stage, ms in report["speed"]["ms_per_frame"].items():
        rows.append((f"  {stage}", f"{ms:.1f} ms/frame"))
    return _aligned(rows)


def cmd_bench(args) -> int:
    import json

    from tqdm import tqdm

    from .bench import run_benchmark
    from .clips import find_annotation_file, load_clips
    from .config import load_layout
    from .pipeline import build_pipeline
    from .report import headline, write_report

    config = _load_config(argparse.Namespace(pipeline=args.pipeline, pose=args.pose, detector=args.detector))
    ann = find_annotation_file(args.data, args.split, args.subset)
    images = Path(args.images) if args.images else (Path(args.data) if Path(args.data).is_dir()
                                                   else Path(args.data).parent)
    out_dir = _prepare_output_dir(Path(args.output))
    pipeline, models = build_pipeline(config, args.device)
    layout = pipeline.layout or load_layout(config.layout)
    clips = load_clips(ann, images, layout)
    if args.max_clips:
        clips = dataclasses.replace(clips, clips=clips.clips[:args.max_clips])
    with tqdm(total=len(clips.clips), unit="clip", disable=args.quiet, dynamic_ncols=True,
              file=sys.stderr, desc=f"bench {args.split}") as bar:
        compare = tuple(n for n in args.compare.split(",") if n and n != "none")
        unknown = sorted(set(compare) - {"bytetrack", "botsort"})
        if unknown:
            raise ConfigError(f"unknown tracker(s) {', '.join(unknown)} for --compare; known: bytetrack, botsort")
        report = run_benchmark(pipeline, clips, args.boxes, progress=lambda done: bar.update(done - bar.n),
                               compare=compare)
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
        if report.get("trackers"):
            print("same detections through each tracker:")
            for name, row in report["trackers"].items():
                print(f"  {name:<10} MOTA {row['MOTA']:.3f}  IDF1 {row['IDF1']:.3f}  HOTA {row['HOTA']:.3f}  "
                      f"ID switches {row['id_switches']}  FP {row['false_positives']}  misses {row['misses']}  "
                      f"{row['ms_per_frame']:.3f} ms/frame")
        print(f"report -> {paths['md']}, {paths['json']}")
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
        if args.command == "train":
            return cmd_train(args)
        if args.command == "eval":
            return cmd_eval(args)
        if args.command == "synth":
            return cmd_synth(args)
        if args.command == "bench":
            return cmd_bench(args)
        if args.command == "track":
            return cmd_track(args)
    except AptrackError as exc:
        print(f"aptrack: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("aptrack: interrupted; no output was written under its final name", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
