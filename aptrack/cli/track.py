"""``aptrack track``: re-track saved detections or poses (no network)."""

from __future__ import annotations

import time
from pathlib import Path

from aptrack.cli.common import add_animals_flag, console_flags, load_config
from aptrack.core.errors import writable_dir, write_json_atomic


def add_parser(sub) -> None:
    p = sub.add_parser("track", help="re-track saved detections or poses (no network)",
                       description="Run only the tracker over detections/poses in the COCO-results "
                                   "format aptrack run writes; write the same format with new track ids.")
    p.add_argument("--detections", required=True, help="results json (aptrack run output or a list)")
    p.add_argument("-o", "--output", required=True, help="output json file")
    p.add_argument("--pipeline", default="default", help="preset whose tracker settings are used")
    p.add_argument("--drop-invalid", action="store_true",
                   help="leave out records with a non-finite or empty box, a score outside [0, 1] or "
                        "keypoints out of range (counted in the summary) instead of stopping at the first")
    add_animals_flag(p)
    console_flags(p, quiet_help="no summary line")
    p.set_defaults(handler=main)


def main(args) -> int:

    from aptrack.core.layout import load_layout
    from aptrack.eval.retrack import read_results, retrack
    from aptrack.track import PoseTracker

    config = load_config(args.pipeline, None, None, animals=args.animals)
    layout = load_layout(config.layout)
    info, records, dropped = read_results(args.detections, args.drop_invalid)
    k = layout.num_keypoints if any(len(r.get("keypoints", ())) == 3 * layout.num_keypoints
                                    for r in records) else None
    tracker = PoseTracker(config.tracker, sigmas=layout.sigmas if k else None)
    started = time.perf_counter()
    out = retrack(records, tracker, k)
    seconds = time.perf_counter() - started
    out_path = Path(args.output)
    writable_dir(out_path.parent if str(out_path.parent) else Path("."))
    summary = {"input": str(Path(args.detections).resolve()), "records_in": len(records) + dropped,
               "records_dropped": dropped,
               "records_out": len(out), "tracks": len({r["track_id"] for r in out}),
               "tracker_ms_total": round(1000 * seconds, 2), "pipeline": config.name}
    write_json_atomic(out_path, {"info": {**info, "retracked": summary}, "annotations": out,
                                  "summary": summary})
    if not args.quiet:
        left_out = f" ({dropped} invalid left out)" if dropped else ""
        print(f"{len(records)} detections{left_out} -> {len(out)} tracked, {summary['tracks']} tracks "
              f"({summary['tracker_ms_total']:.1f} ms of tracking) -> {out_path}")
    return 0
