"""Where the known-animals mode (``--boxes gt-first-frame``) loses, by how hidden each animal is.

    python benchmarks/known_animals_breakdown.py --data DIR [--split hard] [--max-clips N]
        [--pipeline NAME|FILE] [--set KEY=VALUE ...] [--work DIR] [--out FILE.md]

``DIR`` is a set built by ``aptrack synth`` (it carries ``hidden_truth.json``: every animal
drawn in every frame, with its whole box, the share of it that shows and its depth, the
hidden ones included). The pipeline (``--pipeline``, default ``default``) carries the first
frame's animals through every clip of the split, as ``aptrack bench --boxes gt-first-frame``
does (the outputs are cached under ``--work``, keyed by the settings, so re-scoring costs
seconds), and this prints:

* the bench's scores (AP, MOTA, IDF1, switches, false positives, misses);
* per band of ``visible_fraction`` (an animal is annotated from 0.3): animal-frames, how many
  are annotated and reported, the reported ones that are not annotated (false positives), the
  annotated ones not reported (misses), and how well the carried box follows the whole animal
  (mean IoU with ``box_xyxy_full``, share >= 0.5);
* the same run re-scored with the report decision given by the hidden truth: exactly the
  annotated animals (a perfect seen/hidden decision), and "not reported when covered by at least
  X of an animal in front of it" (the true depth order, the carried boxes), the ceiling of a
  depth-aware report rule;
* the same run re-reported with the hidden-behind rule (``propagation.hidden_cover_share``) at
  shares 0.4-0.8, replayed on its outputs without the hidden truth (how the share of
  ``--pipeline known`` was chosen; on a run made with the rule, it only adds to it);
* per band of ``visible_fraction`` of the annotated animals, how many have a detection on them (IoU 0.5
  with the annotated box), whichever animal took it: what the detector can give at most;
* the annotated animal-frames whose carried box went astray (IoU under 0.5 with the annotated
  box), by what the propagator had on the animal in that frame (its
  :class:`aptrack.track.propagate.StepEvidence`): its motion prediction, its single-object
  tracker's box, the prior box the pose was estimated in, a detection matched to it, a
  detection left unmatched, a detection matched to another animal (each counted when its box
  overlaps the annotated one by IoU 0.5 or more; an animal-frame can count in several), or
  none of them: the ceiling of each kind of fix (re-weighting the sources, re-acquiring by
  leftover detections, taking a detection back from another animal). The evidence is the
  forward step's: on a frame that the hindsight step (``hindsight_frames``) revised, the box
  judged is the revised one.

With ``--pose-ceiling`` (the pose model runs again, about one pose per annotated animal-frame) it
also says how much of the AP gap to ``--boxes gt`` is the box the pose is estimated in: the AP with
every annotated animal's pose estimated again in its annotated box (all else as run: the carried
boxes' scores, the poses of the animals not annotated), and per band of the carried box's IoU with
the annotated box, the mean OKS of the pose as run and from the annotated box, and the OKS lost
there (summed over the band's animal-frames).

``--set appearance_weight=0`` (repeatable; the value read as YAML) overrides
``propagation`` settings. Needs the pose model and the SOT weights (``$APTRACK_MIRROR``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import pickle
import sys
from pathlib import Path

import numpy as np
import yaml

BANDS = ((0.0, 0.3), (0.3, 0.5), (0.5, 0.8), (0.8, 1.01))
IOU_BANDS = ((0.0, 0.5), (0.5, 0.7), (0.7, 0.85), (0.85, 1.01))
COVER_LIMITS = (0.5, 0.6, 0.7, 0.8)
HIDDEN_SHARES = (0.4, 0.5, 0.6, 0.7, 0.8)


def run_outputs(config, clips, work: Path) -> tuple[list, list]:
    """``run_clip`` outputs (scored, tracked) per clip and the propagator's evidence per clip and
    frame, cached under ``work`` by settings and clips."""
    from aptrack.eval.bench import run_clip
    from aptrack.pipeline import build_pipeline

    key = hashlib.sha256(repr((config, [list(map(str, c.files)) for c in clips.clips])).encode()).hexdigest()[:12]
    path = work / f"gt_first_frame_{key}_evidence.pkl"
    if path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)
    pipeline, _ = build_pipeline(config, "cpu", 1)
    outputs, evidence = [], []
    for n, clip in enumerate(clips.clips, 1):
        evidence.append([])
        outputs.append(run_clip(pipeline, clips, clip, "gt-first-frame", evidence=evidence[-1]))
        print(f"clip {n}/{len(clips.clips)}", file=sys.stderr, flush=True)
    work.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump((outputs, evidence), f)
    tmp.replace(path)
    return outputs, evidence


def scores(clips, outputs) -> dict:
    from aptrack.eval.bench import score_outputs

    r = score_outputs(clips, outputs, "gt-first-frame")
    tr = r["tracking"]["overall"]
    return {"AP": r["keypoints"]["AP"], "MOTA": tr["MOTA"], "IDF1": tr["IDF1"], "switches": tr["id_switches"],
            "FP": tr["false_positives"], "misses": tr["misses"]}


def covered_by_front(boxes_xyxy, depth) -> np.ndarray:
    """(N,) the largest share of each box covered by the box of an animal drawn in front of it."""
    from aptrack.core.boxes import box_share_inside_xyxy

    b = np.asarray(boxes_xyxy, np.float64)
    share = box_share_inside_xyxy(b, b)
    front = np.asarray(depth)[None, :] > np.asarray(depth)[:, None]
    return np.where(front, share, 0.0).max(axis=1, initial=0.0)


def breakdown(clips, outputs, truth: dict) -> list[dict]:
    """Per band of visible fraction: counts and box quality of the carried animals (frames after the first)."""
    from aptrack.core.boxes import box_iou_xyxy

    rows = []  # (visible fraction, annotated, reported, IoU with the whole animal)
    for clip, outs in zip(clips.clips, outputs):
        for t in range(1, len(outs)):
            carried, tracked = outs[t]
            reported = set(tracked.track_ids.tolist())
            for i, tid in enumerate(carried.track_ids.tolist()):
                h = truth.get((int(clip.image_ids[t]), tid))
                if h is None:
                    continue  # drawn nowhere in this frame (outside it)
                iou = box_iou_xyxy(carried.boxes_xyxy[i:i + 1].astype(np.float64), h["box_xyxy_full"][None])[0, 0]
                rows.append((h["visible_fraction"], h["annotation_id"] is not None, tid in reported, iou))
    table = np.array(rows, np.float64).reshape(-1, 4)
    out = []
    for lo, hi in BANDS:
        r = table[(table[:, 0] >= lo) & (table[:, 0] < hi)]
        ann, rep = r[:, 1] > 0, r[:, 2] > 0
        out.append({"band": f"{lo:.1f}-{min(hi, 1.0):.1f}", "n": len(r), "annotated": int(ann.sum()),
                    "reported": int(rep.sum()), "FP": int((rep & ~ann).sum()), "missed": int((ann & ~rep).sum()),
                    "iou_whole": float(r[:, 3].mean()) if len(r) else float("nan"),
                    "iou_whole>=0.5": float((r[:, 3] >= 0.5).mean()) if len(r) else float("nan")})
    return out


def detector_recall(clips, evidence, truth: dict) -> list[dict]:
    """Per band of visible fraction from 0.3 (the annotated animals; frames after the first): animal-frames and
    how many have a detection of the frame on them (IoU >= 0.5 with the annotated box), whoever took it: the
    most the detector can give the carried boxes."""
    from aptrack.core.boxes import box_iou_xyxy

    rows = []  # (visible fraction, found)
    for clip, frames in zip(clips.clips, evidence):
        for t in range(1, len(frames)):
            dets = frames[t].detections_xyxy
            for r in clip.rows[t]:
                h = truth.get((int(clip.image_ids[t]), int(clips.track_ids[r])))
                if h is None:
                    continue
                box = clips.animals.boxes_xyxy[r][None].astype(np.float64)
                rows.append((h["visible_fraction"], len(dets) > 0 and box_iou_xyxy(dets, box).max() >= 0.5))
    table = np.array(rows, np.float64).reshape(-1, 2)
    out = []
    for lo, hi in BANDS[1:]:
        r = table[(table[:, 0] >= lo) & (table[:, 0] < hi)]
        out.append({"band": f"{lo:.1f}-{min(hi, 1.0):.1f}", "n": len(r), "found": int(r[:, 1].sum())})
    return out


ASTRAY_SOURCES = ("motion prediction", "SOT box", "prior box", "detection matched to it",
                  "detection left unmatched", "detection matched to another animal", "none of these")


def astray_sources(clips, outputs, evidence, sot_min_score: float) -> dict:
    """Annotated animal-frames (after the first frame) whose carried box overlaps the annotated box
    by IoU under 0.5: their count (``astray``), and per :data:`ASTRAY_SOURCES` how many had that
    source on the animal (IoU >= 0.5 with the annotated box)."""
    from aptrack.core.boxes import box_iou_xyxy

    counts = dict.fromkeys(("astray",) + ASTRAY_SOURCES, 0)
    a = clips.animals
    for clip, outs, frames in zip(clips.clips, outputs, evidence):
        for t in range(1, len(outs)):
            carried, ev = outs[t][0], frames[t]
            rows = {int(clips.track_ids[r]): int(r) for r in clip.rows[t]}
            for i, tid in enumerate(carried.track_ids.tolist()):
                if tid not in rows:
                    continue
                truth = a.boxes_xyxy[rows[tid]][None].astype(np.float64)
                if box_iou_xyxy(carried.boxes_xyxy[i:i + 1].astype(np.float64), truth)[0, 0] >= 0.5:
                    continue
                counts["astray"] += 1
                k = int(np.flatnonzero(ev.ids == tid)[0])
                on = {"motion prediction": ev.predicted_xyxy[k],
                      "SOT box": ev.sot_xyxy[k] if ev.sot_scores[k] >= sot_min_score else None,
                      "prior box": ev.prior_xyxy[k]}
                found = {name for name, box in on.items()
                         if box is not None and box_iou_xyxy(box[None], truth)[0, 0] >= 0.5}
                if len(ev.detections_xyxy):
                    hits = np.flatnonzero(box_iou_xyxy(ev.detections_xyxy, truth)[:, 0] >= 0.5)
                    for j in hits:
                        owner = np.flatnonzero(ev.detection_rows == j)
                        found.add("detection left unmatched" if not len(owner) else
                                  "detection matched to it" if owner[0] == k else
                                  "detection matched to another animal")
                for name in found or {"none of these"}:
                    counts[name] += 1
    return counts


def pose_ceiling(pipeline, clips, outputs) -> tuple[list, list[dict]]:
    """``outputs`` with every annotated carried animal's pose estimated again in its annotated box, and per
    :data:`IOU_BANDS` band of the carried box's IoU with the annotated box: animal-frames, mean OKS of the
    pose as run and from the annotated box (keypoints visible in the annotation; frames after the first)."""
    from aptrack.core.boxes import box_area_xyxy, box_iou_xyxy
    from aptrack.core.oks import oks_matrix
    from aptrack.io.images import load_image

    a, sigmas = clips.animals, clips.layout.sigmas
    replaced, rows = [], []  # rows: (IoU, OKS as run, OKS from the annotated box)
    for clip, outs in zip(clips.clips, outputs):
        frames = [outs[0]]
        for t in range(1, len(outs)):
            carried, tracked = outs[t]
            at = {int(clips.track_ids[r]): int(r) for r in clip.rows[t]}
            mine = np.array([i for i, tid in enumerate(carried.track_ids.tolist()) if tid in at], np.int64)
            if not len(mine):
                frames.append(outs[t])
                continue
            truth_rows = np.array([at[int(carried.track_ids[i])] for i in mine], np.int64)
            truth_xyxy = a.boxes_xyxy[truth_rows].astype(np.float32)
            posed = pipeline.estimate_pose(load_image(clip.files[t]), carried.take(mine).with_(
                boxes_xyxy=truth_xyxy, scores=np.ones(len(mine), np.float32)))
            keypoints, keypoint_scores = carried.keypoints.copy(), carried.keypoint_scores.copy()
            keypoints[mine], keypoint_scores[mine] = posed.keypoints, posed.keypoint_scores
            frames.append((carried.with_(keypoints=keypoints, keypoint_scores=keypoint_scores), tracked))
            iou = np.diag(box_iou_xyxy(carried.boxes_xyxy[mine].astype(np.float64), truth_xyxy.astype(np.float64)))
            # OKS over the keypoints visible in the annotation (NaN where it shows none)
            every = np.ones(a.visible[truth_rows].shape, bool)
            run, boxed = (np.diag(oks_matrix(kp, every, a.keypoints[truth_rows], a.visible[truth_rows],
                                             box_area_xyxy(truth_xyxy), sigmas))
                          for kp in (carried.keypoints[mine], posed.keypoints))
            rows += [r for r in zip(iou, run, boxed) if np.isfinite(r[1])]
        replaced.append(frames)
    table = np.array(rows, np.float64).reshape(-1, 3)
    bands = []
    for lo, hi in IOU_BANDS:
        r = table[(table[:, 0] >= lo) & (table[:, 0] < hi)]
        bands.append({"band": f"{lo:.2f}-{min(hi, 1.0):.2f}", "n": len(r),
                      "oks_run": float(r[:, 1].mean()) if len(r) else float("nan"),
                      "oks_truth_box": float(r[:, 2].mean()) if len(r) else float("nan"),
                      "lost": float((r[:, 2] - r[:, 1]).sum())})
    return replaced, bands


def with_report(clips, outputs, rule) -> list:
    """``outputs`` with each frame's reported animals (after the first frame) chosen by
    ``rule(image_id, carried, tracked) -> (N,) bool`` over the carried ones."""
    return [[outs[0]] + [(carried, carried.take(np.flatnonzero(rule(int(clip.image_ids[t]), carried, tracked))))
                         for t, (carried, tracked) in enumerate(outs) if t > 0]
            for clip, outs in zip(clips.clips, outputs)]


def hidden_behind_report(clips, outputs, evidence, share: float) -> list:
    """``outputs`` re-reported with :func:`aptrack.track.propagate.hidden_behind` at ``share`` applied to each
    frame's reported animals (after the first frame), with the detections the forward step matched to them:
    the rule replayed on a run made without it (the hindsight step's revisions are not replayed)."""
    from aptrack.track.propagate import hidden_behind

    out = []
    for clip, outs, frames in zip(clips.clips, outputs, evidence):
        replayed = [outs[0]]
        for (carried, tracked), ev in zip(outs[1:], frames[1:]):
            rows = np.array([int(np.flatnonzero(ev.ids == tid)[0]) for tid in carried.track_ids.tolist()], np.int64)
            reported = np.isin(carried.track_ids, tracked.track_ids)
            hidden = hidden_behind(carried.boxes_xyxy, ev.detection_rows[rows] >= 0, reported, share)
            replayed.append((carried, carried.take(np.flatnonzero(reported & ~hidden))))
        out.append(replayed)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="an aptrack synth set")
    p.add_argument("--split", default="hard", choices=("easy", "hard"))
    p.add_argument("--max-clips", type=int, default=0)
    p.add_argument("--pipeline", default="default", help="a pipeline preset or YAML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a propagation setting")
    p.add_argument("--work", type=Path, default=Path("/tmp/aptrack_known_animals"))
    p.add_argument("--out", type=Path, help="also write the tables here (Markdown)")
    p.add_argument("--pose-ceiling", action="store_true",
                   help="also estimate the annotated animals' poses in their annotated boxes (how much of the AP "
                        "gap is the box)")
    args = p.parse_args(argv)

    from aptrack.cli.common import load_config
    from aptrack.core.layout import load_layout
    from aptrack.data.clips import find_annotation_file, load_clips
    from aptrack.data.synth import load_hidden_truth

    config = load_config(args.pipeline)
    if args.set:
        overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
        config = dataclasses.replace(config, propagation=dataclasses.replace(config.propagation, **overrides))
    truth = load_hidden_truth(args.data)
    clips = load_clips(find_annotation_file(args.data, args.split, "test"), args.data, load_layout(config.layout))
    if args.max_clips:
        clips = dataclasses.replace(clips, clips=clips.clips[:args.max_clips])
    outputs, evidence = run_outputs(config, clips, args.work)

    lines = [f"# Known animals on {args.data} ({args.split}, {len(clips.clips)} clips)", "",
             "| report decision | AP | MOTA | IDF1 | switches | FP | misses |", "|---|---|---|---|---|---|---|"]

    def row(name, s):
        lines.append(f"| {name} | {s['AP']:.3f} | {s['MOTA']:.3f} | {s['IDF1']:.3f} | {s['switches']} | "
                     f"{s['FP']} | {s['misses']} |")

    row("as run", scores(clips, outputs))

    def annotated(image_id, carried, tracked):
        return np.array([truth.get((image_id, tid), {}).get("annotation_id") is not None
                         for tid in carried.track_ids.tolist()], bool)

    row("hidden truth: exactly the annotated", scores(clips, with_report(clips, outputs, annotated)))
    for limit in COVER_LIMITS:
        def uncovered(image_id, carried, tracked, limit=limit):
            depth = [truth.get((image_id, tid), {}).get("depth", -1) for tid in carried.track_ids.tolist()]
            return (np.isin(carried.track_ids, tracked.track_ids)
                    & (covered_by_front(carried.boxes_xyxy, depth) < limit))

        row(f"as run, less those covered >= {limit} by one in front (true depth)",
            scores(clips, with_report(clips, outputs, uncovered)))
    for share in HIDDEN_SHARES:
        row(f"as run, less those hidden behind a detected animal (hidden_cover_share {share}, forward step's "
            "detections)", scores(clips, hidden_behind_report(clips, outputs, evidence, share)))
    lines += ["", "| visible fraction | animal-frames | annotated | reported | FP | missed | "
              "IoU with the whole animal | share >= 0.5 |", "|---|---|---|---|---|---|---|---|"]
    for b in breakdown(clips, outputs, truth):
        lines.append(f"| {b['band']} | {b['n']} | {b['annotated']} | {b['reported']} | {b['FP']} | {b['missed']} | "
                     f"{b['iou_whole']:.3f} | {b['iou_whole>=0.5']:.3f} |")
    lines += ["", "| visible fraction | annotated animal-frames | with a detection on them (IoU >= 0.5) |",
              "|---|---|---|"]
    lines += [f"| {b['band']} | {b['n']} | {b['found']} ({b['found'] / max(b['n'], 1):.0%}) |"
              for b in detector_recall(clips, evidence, truth)]
    astray = astray_sources(clips, outputs, evidence, config.propagation.sot_min_score)
    lines += ["", f"{astray['astray']} annotated animal-frames with the carried box astray "
              "(IoU < 0.5 with the annotated box); on the animal (IoU >= 0.5) in those frames:", "",
              "| source | animal-frames |", "|---|---|"]
    lines += [f"| {name} | {astray[name]} |" for name in ASTRAY_SOURCES]
    if args.pose_ceiling:
        from aptrack.pipeline import build_pipeline

        pipeline, _ = build_pipeline(config, "cpu", 1)
        replaced, bands = pose_ceiling(pipeline, clips, outputs)
        lines += ["", f"AP with every annotated animal's pose estimated in its annotated box (all else as run): "
                  f"{scores(clips, replaced)['AP']:.3f}", "",
                  "| carried box's IoU with the annotated box | animal-frames | OKS as run | "
                  "OKS from the annotated box | OKS lost (sum) |", "|---|---|---|---|---|"]
        lines += [f"| {b['band']} | {b['n']} | {b['oks_run']:.3f} | {b['oks_truth_box']:.3f} | {b['lost']:.1f} |"
                  for b in bands]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
