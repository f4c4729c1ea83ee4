"""Identity through occlusions: several synthetic lab cases, pipelines side by side.

    python benchmarks/occlusion_ids.py [--seeds 0,1,2,3] [--frames 1500] [--pipelines default,lab]
        [--set KEY=VALUE ...] [--work DIR] [--out FILE.md]

For each seed it builds the case once under ``--work`` (``aptrack synth --occlusion-frames N
--seed S``: two look-alike animals that hide behind cover about every 80 frames), runs the
pipeline's detector and appearance embedder over it once and caches the detections, then
re-tracks the cached detections with each pipeline's tracker (a few seconds a case) and
scores them with aptrack's tracking evaluation (the one ``aptrack bench`` reports): MOTA,
IDF1, HOTA, ID switches, false positives, misses, and the frames of every switch.
``--set relook_frames=0`` (repeatable; the value read as YAML, as a pipeline file's)
overrides tracker settings in every pipeline, to
measure one rule on and off. The detector's time is not measured here; the tracker's is.
Needs the Animal-Pose mirror (``$APTRACK_MIRROR/animalpose``, or ``--source``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import yaml


def build_case(source: Path, work: Path, seed: int, frames: int) -> Path:
    out = work / f"occlusion_{frames}_seed{seed}"
    if not (out / "test_annotations.json").exists():
        subprocess.run([sys.executable, "-m", "aptrack", "synth", "--source", str(source), "--out", str(out),
                        "--occlusion-frames", str(frames), "--seed", str(seed), "-q"], check=True)
    return out


def cached_detections(case: Path, config, clips) -> list:
    """The detections (with embeddings) of the case's one clip, computed once per detector setup."""
    from aptrack.eval.bench import run_clip
    from aptrack.pipeline import build_pipeline

    key = hashlib.sha256(repr((config.detector, config.appearance)).encode()).hexdigest()[:12]
    path = case / f"detections_{key}.pkl"
    if path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)
    pipeline, _ = build_pipeline(config, "cpu")
    detections: list = []
    run_clip(pipeline, clips, clips.clips[0], "detector", detections=detections)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(detections, f)
    tmp.replace(path)
    return detections


def retrack(tracker_config, sigmas, clips, detections) -> dict:
    from aptrack.eval.compare import AptrackTracker, track_clip
    from aptrack.eval.tracking import ClipTrackingEval, summarize
    from aptrack.track import PoseTracker

    ev = ClipTrackingEval(sigmas)
    seconds, frames = track_clip(AptrackTracker(PoseTracker(tracker_config, sigmas=sigmas)), clips, 0, detections,
                                 ev=ev)
    events = ev.boxes.mot_events
    switches = [int(frame) for (frame, _), kind in zip(events.index, events.Type) if kind == "SWITCH"]
    row = summarize([ev])["overall"]
    return {**row, "switch_frames": switches, "ms_per_frame": 1000 * seconds / max(frames, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2,3")
    p.add_argument("--frames", type=int, default=1500)
    p.add_argument("--pipelines", default="default,lab")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="tracker setting override")
    p.add_argument("--source", type=Path, default=None)
    p.add_argument("--work", type=Path, default=Path("bench_out/occlusion"))
    p.add_argument("--out", type=Path, default=None, help="also write the table here (markdown)")
    args = p.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    from aptrack.cli.common import load_config
    from aptrack.core.layout import load_layout
    from aptrack.data.clips import find_annotation_file, load_clips

    source = args.source or Path(os.environ.get("APTRACK_MIRROR", "../shared/assets")) / "animalpose"
    args.work.mkdir(parents=True, exist_ok=True)
    lines = ["| pipeline | seed | MOTA | IDF1 | HOTA | ID switches | false positives | misses | tracker ms/frame "
             "| switch frames |", "| --- " * 10 + "|"]
    for seed in (int(s) for s in args.seeds.split(",")):
        case = build_case(source, args.work, seed, args.frames)
        for name in args.pipelines.split(","):
            config = load_config(name, "none")
            overrides = {key: yaml.safe_load(value) for key, _, value in (item.partition("=") for item in args.set)}
            layout = load_layout(config.layout)
            clips = load_clips(find_annotation_file(case, "hard", "test"), case, layout)
            detections = cached_detections(case, config, clips)
            r = retrack(dataclasses.replace(config.tracker, **overrides), layout.sigmas, clips, detections)
            lines.append(f"| {name} | {seed} | {r['MOTA']:.3f} | {r['IDF1']:.3f} | {r['HOTA']:.3f} | "
                         f"{r['id_switches']} | {r['false_positives']} | {r['misses']} | {r['ms_per_frame']:.2f} | "
                         f"{', '.join(map(str, r['switch_frames']))} |")
            print(lines[-1], flush=True)
    if args.set:
        lines.append(f"\ntracker overrides: {', '.join(args.set)}")
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
