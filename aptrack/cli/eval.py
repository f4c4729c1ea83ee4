"""``aptrack eval``: keypoint AP of a pose model, or score a tracking results file."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from aptrack.cli.common import add_backend_flag, add_pose_config_flag, aligned, console_flags, figure, load_config, positive_int
from aptrack.core.errors import ConfigError, OutputError, writable_dir, write_json_atomic


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="keypoint AP / PCK / EPE of a pose model, or score a results file",
                       description="With --data/--images: evaluate a pose model (COCO keypoint AP, "
                                   "AP50, AP75, AR with OKS via pycocotools, per-species AP, PCK@0.05, "
                                   "EPE). With --gt/--pred: score a tracking results file (the same "
                                   "keypoint metrics plus MOTA, IDF1, ID switches, MOTP, keypoint MOTA).")
    p.add_argument("--data", help="annotation json (COCO keypoints or Animal-Pose) to run a pose model on")
    p.add_argument("--images", help="folder with the images of --data")
    p.add_argument("--gt", help="score a results file instead: video keypoint json (APTv2 style) ...")
    p.add_argument("--pred", help="... and the results json (aptrack run / aptrack track output, "
                                  "or a list of COCO results with track_id)")
    p.add_argument("--drop-invalid", action="store_true",
                   help="with --pred: leave out invalid records (non-finite or empty boxes, scores outside "
                        "[0, 1]) instead of stopping at the first")
    p.add_argument("--boxes", choices=["gt", "detector"], default="gt",
                   help="crop ground-truth boxes, or the detector's (class-agnostic AP)")
    p.add_argument("--weights", default=None,
                   help="pose weights (registry name or file; default: the pipeline's)")
    p.add_argument("--pipeline", default="default", help="preset for the detector and pose settings")
    p.add_argument("--split", choices=["all", "train", "val"], default="all",
                   help="evaluate all animals, or one side of the seeded split by image")
    p.add_argument("--val-instances", type=positive_int, default=1100,
                   help="animals held out by the split (default: 1100, as in training)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the split (default: 0)")
    p.add_argument("--no-flip", action="store_true", help="disable the flip test")
    p.add_argument("--device", default="auto", choices=["cpu", "cuda", "auto"])
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--save", default=None, metavar="DIR",
                   help="also write the scored ground truth and predictions (COCO json) here")
    add_pose_config_flag(p)
    add_backend_flag(p)
    console_flags(p, quiet_help="no progress bar")
    p.set_defaults(handler=main)


def _metrics_table(metrics: dict) -> str:
    pck = next(k for k in metrics if k.startswith("PCK@"))
    rows = [(name, f"{metrics[name]:.3f}") for name in ("AP", "AP50", "AP75", "APm", "APl", "AR")]
    rows += [(pck, f"{metrics[pck]:.3f}"), ("EPE", f"{metrics['EPE']:.2f} px"),
             ("animals", str(metrics["instances"])), ("images", str(metrics["images"])),
             ("predictions", str(metrics["predictions"]))]
    for name, ap in metrics["per_category"].items():
        rows.append((f"AP {name}", f"{ap:.3f}"))
    return aligned(rows)


def score_results(args) -> int:
    import json

    from aptrack.core.layout import load_layout
    from aptrack.data.clips import load_clips
    from aptrack.eval.report import json_safe
    from aptrack.eval.retrack import evaluate_results, read_results

    config = load_config(args.pipeline, None, None)
    layout = load_layout(config.layout)
    gt = load_clips(args.gt, None, layout)
    _, records, _ = read_results(args.pred, args.drop_invalid)
    result = evaluate_results(gt, records)
    kp, tr = result["keypoints"], result["tracking"]["overall"]
    head = {"AP": kp["AP"], "AP50": kp["AP50"], "AP75": kp["AP75"], "AR": kp["AR"],
            "PCK@0.05": kp["PCK@0.05"], "EPE": kp["EPE"], **{k: v for k, v in tr.items()
                                                            if k != "keypoint_MOTA_per_keypoint"}}
    if args.save:
        save_dir = writable_dir(Path(args.save))
        write_json_atomic(save_dir / "metrics.json", json_safe(result))
    if args.format == "json":
        print(json.dumps(json_safe(head)))
    else:
        print(aligned((key, figure(v)) for key, v in head.items()))
    return 0


def main(args) -> int:
    import json

    from tqdm import tqdm

    if args.gt or args.pred:
        if not (args.gt and args.pred) or args.data:
            raise ConfigError("give either --data and --images (evaluate a model) or --gt and --pred "
                              "(score a results file)")
        return score_results(args)
    if not (args.data and args.images):
        raise ConfigError("aptrack eval needs --data and --images (or --gt and --pred)")

    from aptrack.data.datasets import load_keypoint_dataset, select_split
    from aptrack.eval.keypoints import evaluate_predictions, predict_dataset
    from aptrack.pipeline import build_detector, build_pose, resolve_device

    config = load_config(args.pipeline, args.weights, None, args.pose_config, backend=args.backend)
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
    save_dir = writable_dir(Path(args.save)) if args.save else None
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
