"""Machine-readable results: COCO-results-style JSON and a flat CSV, both streamed.

Records are written as frames are processed (memory stays flat) into files with
a temporary name; :meth:`ResultsWriter.commit` renames them into place, and
:meth:`ResultsWriter.close` without a commit deletes them.

JSON layout::

    {"info": {... video, models with sha256, keypoint names ...},
     "annotations": [{"image_id", "frame", "track_id", "bbox" (xywh), "score",
                      "keypoints" ([x, y, score] x K, flat), "category",
                      "interpolated" (true for rows filled in over a track's gap),
                      "extent" (the background detector's blob: the fraction of the box it fills),
                      "keypoints_raw" (with smoothing: x, y before it)}, ...],
     "summary": {... frames, animals, tracks, ms per stage ...}}
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from aptrack.core.boxes import xywh_to_xyxy, xyxy_to_xywh
from aptrack.core.instances import Instances

DECIMALS = 2


def records(instances: Instances, raw_keypoints: np.ndarray | None = None) -> list[dict]:
    """One COCO-results-style dict per animal of a frame; with ``raw_keypoints`` (N, K, 2), the
    keypoints before smoothing go in as ``keypoints_raw`` (x, y pairs, flat)."""
    xywh = xyxy_to_xywh(instances.boxes_xyxy)
    out = []
    for i in range(len(instances)):
        kp = np.concatenate([instances.keypoints[i], instances.keypoint_scores[i][:, None]], axis=1)
        out.append({
            "image_id": instances.frame_index,
            "frame": instances.frame_index,
            "track_id": int(instances.track_ids[i]),
            "bbox": [round(float(v), DECIMALS) for v in xywh[i]],
            "score": round(float(instances.scores[i]), 4),
            "keypoints": [round(float(v), DECIMALS if j % 3 < 2 else 4)
                          for j, v in enumerate(kp.reshape(-1))],
            "category": str(instances.categories[i]),
            "interpolated": bool(instances.interpolated[i]),
        })
        if np.isfinite(instances.extents[i]):
            out[-1]["extent"] = round(float(instances.extents[i]), 4)
        if raw_keypoints is not None:
            out[-1]["keypoints_raw"] = [round(float(v), DECIMALS) for v in np.asarray(raw_keypoints[i]).reshape(-1)]
    return out


def records_to_instances(records: list[dict], frame_index: int, num_keypoints: int | None) -> Instances:
    """One frame's records as :class:`Instances` (keypoints when every record has them)."""
    if not records:
        return Instances.empty(num_keypoints or 0, frame_index)
    boxes = xywh_to_xyxy(np.array([r["bbox"] for r in records], np.float64).reshape(-1, 4))
    scores = np.array([float(r.get("score", 1.0)) for r in records], np.float32)
    cats = [str(r.get("category", r.get("category_id", "animal"))) for r in records]
    kw = {}
    if num_keypoints and all(len(r.get("keypoints", ())) == 3 * num_keypoints for r in records):
        kp = np.array([r["keypoints"] for r in records], np.float64).reshape(-1, num_keypoints, 3)
        kw = {"keypoints": kp[..., :2], "keypoint_scores": kp[..., 2]}
    return Instances(boxes, scores, categories=cats, frame_index=frame_index, **kw)


class ResultsWriter:
    """Stream per-frame results to ``<stem>.json`` and ``<stem>.csv`` in ``out_dir`` (either may be left out)."""

    def __init__(self, out_dir: Path, stem: str, info: dict, keypoint_names: list[str],
                 json_file: bool = True, csv_file: bool = True):
        self.json_path = out_dir / f"{stem}.json" if json_file else None
        self.csv_path = out_dir / f"{stem}.csv" if csv_file else None
        self._json_tmp = out_dir / f".{stem}.incomplete.json"
        self._csv_tmp = out_dir / f".{stem}.incomplete.csv"
        self._json = open(self._json_tmp, "w", encoding="utf-8") if json_file else None
        self._csv_fh = open(self._csv_tmp, "w", encoding="utf-8", newline="") if csv_file else None
        if self._csv_fh is not None:
            self._csv = csv.writer(self._csv_fh)
            header = ["frame", "track_id", "category", "score", "interpolated", "x1", "y1", "x2", "y2"]
            for name in keypoint_names:
                header += [f"{name}_x", f"{name}_y", f"{name}_score"]
            self._csv.writerow(header)
        if self._json is not None:
            self._json.write('{"info": ' + json.dumps(info) + ',\n "annotations": [')
        self._first = True
        self.count = 0

    def write(self, instances: Instances, raw_keypoints: np.ndarray | None = None) -> None:
        """One frame's animals; ``raw_keypoints``: their keypoints before smoothing (JSON only)."""
        for rec, box in zip(records(instances, raw_keypoints), instances.boxes_xyxy):
            if self._json is not None:
                self._json.write(("\n  " if self._first else ",\n  ") + json.dumps(rec))
            self._first = False
            if self._csv_fh is not None:
                row = [rec["frame"], rec["track_id"], rec["category"], rec["score"], int(rec["interpolated"])]
                row += [round(float(v), DECIMALS) for v in box] + rec["keypoints"]
                self._csv.writerow(row)
            self.count += 1

    def commit(self, summary: dict) -> None:
        if self._json is not None:
            self._json.write('\n ],\n "summary": ' + json.dumps(summary) + "}\n")
            self._json.close()
            os.replace(self._json_tmp, self.json_path)
        if self._csv_fh is not None:
            self._csv_fh.close()
            os.replace(self._csv_tmp, self.csv_path)

    def close(self) -> None:
        """Close and delete whatever was not committed."""
        for fh in (self._json, self._csv_fh):
            if fh is not None and not fh.closed:
                fh.close()
        self._json_tmp.unlink(missing_ok=True)
        self._csv_tmp.unlink(missing_ok=True)
