"""``--init-boxes FILE``: the animals a user marks once, on the first frame of a video.

Two plain formats, one animal per record, boxes in pixels of the original frame:

* JSON: a list of objects ``{"id": 1, "box_xyxy": [x1, y1, x2, y2]}`` (or
  ``"box_xywh": [x, y, w, h]``), or an object with such a list under
  ``"animals"``; ``"category"`` (a species name) is optional;
* CSV with a header: ``id,x1,y1,x2,y2`` or ``id,x,y,w,h`` (plus an optional
  ``category`` column).

``id`` is optional (animals are then numbered 1, 2, ... in file order), but
must be a distinct positive integer when given.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from aptrack.core.boxes import xywh_to_xyxy
from aptrack.core.errors import DatasetError
from aptrack.core.instances import Instances

BOX_KEYS = {"box_xyxy": False, "box_xywh": True}  # key -> is xywh


def _records_json(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc.__class__.__name__})") from None
    if isinstance(data, dict) and "animals" in data:
        data = data["animals"]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DatasetError(f"{path}: expected a list of {{\"id\", \"box_xyxy\"}} objects")
    out = []
    for i, r in enumerate(data, 1):
        keys = [k for k in BOX_KEYS if k in r]
        if len(keys) != 1:
            raise DatasetError(f"{path}: animal {i} needs exactly one of box_xyxy, box_xywh")
        out.append({"id": r.get("id"), "box": r[keys[0]], "xywh": BOX_KEYS[keys[0]],
                    "category": r.get("category", "")})
    return out


def _records_csv(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
            header = set(rows[0]) if rows else set()
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: not a readable CSV ({exc.__class__.__name__})") from None
    if {"x1", "y1", "x2", "y2"} <= header:
        cols, xywh = ("x1", "y1", "x2", "y2"), False
    elif {"x", "y", "w", "h"} <= header:
        cols, xywh = ("x", "y", "w", "h"), True
    else:
        raise DatasetError(f"{path}: a CSV of boxes needs the columns id,x1,y1,x2,y2 or id,x,y,w,h")
    return [{"id": r.get("id") or None, "box": [r[c] for c in cols], "xywh": xywh,
             "category": r.get("category") or ""} for r in rows]


def load_init_boxes(path: str | Path, frame_index: int = 0) -> Instances:
    """The animals of an init-boxes file, as :class:`Instances` with track ids.

    Raises
    ------
    DatasetError
        On a missing or malformed file, a non-finite or empty box, a repeated
        or non-positive id; the message names the animal.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"init-boxes file not found: {path}")
    records = _records_csv(path) if path.suffix.lower() == ".csv" else _records_json(path)
    if not records:
        raise DatasetError(f"{path}: no animals in the file")
    boxes, ids, cats = [], [], []
    for i, r in enumerate(records, 1):
        try:
            box = [float(v) for v in r["box"]]
        except (TypeError, ValueError):
            raise DatasetError(f"{path}: animal {i}: the box must be 4 numbers, got {r['box']!r}") from None
        if len(box) != 4 or not all(math.isfinite(v) for v in box):
            raise DatasetError(f"{path}: animal {i}: the box must be 4 finite numbers, got {r['box']!r}")
        xyxy = xywh_to_xyxy(np.array([box]))[0] if r["xywh"] else np.array(box)
        if not (xyxy[2] > xyxy[0] and xyxy[3] > xyxy[1]):
            raise DatasetError(f"{path}: animal {i}: the box {r['box']!r} has no area")
        ident = i if r["id"] is None else r["id"]
        try:
            ident_int = int(ident)
        except (TypeError, ValueError):
            raise DatasetError(f"{path}: animal {i}: id must be a positive integer, got {ident!r}") from None
        if ident_int < 1 or str(ident).strip() not in (str(ident_int), f"{ident_int}.0"):
            raise DatasetError(f"{path}: animal {i}: id must be a positive integer, got {ident!r}")
        boxes.append(xyxy)
        ids.append(ident_int)
        cats.append(str(r["category"]))
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{path}: an id is used twice: {sorted(ids)}")
    return Instances(np.array(boxes), np.ones(len(ids), np.float32), categories=cats,
                     track_ids=np.array(ids), frame_index=frame_index)
