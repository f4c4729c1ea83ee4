"""``aptrack convert IN OUT``: tracked results between aptrack's JSON, DeepLabCut, SLEAP, MOT and NWB.

Readers turn each format into per-frame :class:`Instances` with track ids (and
an ``info`` dict: keypoint names, skeleton, video, size, frame rate where the
file says); the writers of :mod:`aptrack.io.exports` (and
:class:`aptrack.io.results.ResultsWriter` for aptrack's JSON) write them.
A format is known by the file name:

=================================  ======================  =======
file                               format                  read / write
=================================  ======================  =======
``*.json``                         aptrack results         both
``*.h5``, ``*_dlc.csv``            DeepLabCut predictions  both
``*.slp``                          SLEAP labels            both
``*.txt``                          MOTChallenge            both (boxes only)
``*.nwb``                          NWB with ndx-pose       write
=================================  ======================  =======

Where a format has no boxes (DLC, SLEAP), an animal's box is the extent of its
keypoints; where it has no keypoints (MOT), none can be written to a pose format.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from pathlib import Path

import numpy as np

from aptrack.core.errors import MALFORMED, ConfigError, DatasetError, malformed_data
from aptrack.core.instances import Instances
from aptrack.io.exports import WRITERS
from aptrack.io.results import ResultsWriter, records_to_instances

log = logging.getLogger(__name__)

FORMATS = ("json", "dlc", "slp", "mot", "nwb")


def format_of(path: Path, writing: bool = False) -> str:
    """The format a file name says (see the module's table)."""
    name = path.name.lower()
    if name.endswith(".json"):
        return "json"
    if name.endswith(".h5") or name.endswith("_dlc.csv"):
        return "dlc"
    if name.endswith(".slp"):
        return "slp"
    if name.endswith(".txt"):
        return "mot"
    if name.endswith(".nwb") and writing:
        return "nwb"
    known = "*.json, *.h5, *_dlc.csv, *.slp, *.txt" + (", *.nwb" if writing else "")
    raise ConfigError(f"{path}: cannot tell the format from the name; expected {known}")


def _boxes_of(keypoints: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) boxes around the finite keypoints scoring above 0, and which animals have any."""
    ok = np.isfinite(keypoints).all(axis=2) & (scores > 0)
    has = ok.any(axis=1)
    x, y = np.nan_to_num(keypoints[..., 0]), np.nan_to_num(keypoints[..., 1])
    boxes = np.stack([np.where(ok, x, np.inf).min(1, initial=np.inf), np.where(ok, y, np.inf).min(1, initial=np.inf),
                      np.where(ok, x, -np.inf).max(1, initial=-np.inf),
                      np.where(ok, y, -np.inf).max(1, initial=-np.inf)], axis=1)
    return np.where(has[:, None], boxes, 0.0), has


def _id_of(name: str, fallback: int) -> int:
    """The number at the end of an individual's or track's name (``ind3``, ``track_3``), or ``fallback``."""
    match = re.search(r"(\d+)$", str(name))
    return int(match.group(1)) if match else fallback


def read_aptrack_json(path: Path) -> tuple[dict, list[Instances]]:
    """Frames of an ``aptrack run`` JSON (frames with no record in between are empty)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not an aptrack results JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise DatasetError(f"{path}: not an aptrack results JSON (expected 'info' and 'annotations')")
    info = dict(data.get("info") or {})
    k = len(info.get("keypoint_names") or [])
    by_frame: dict[int, list[dict]] = {}
    for i, rec in enumerate(data["annotations"]):
        if not isinstance(rec, dict) or "bbox" not in rec or "frame" not in rec:
            raise DatasetError(f"{path}: record {i} lacks 'bbox' or 'frame'")
        by_frame.setdefault(int(rec["frame"]), []).append(rec)
    frames = []
    for f in range(min(by_frame, default=0), max(by_frame, default=-1) + 1):
        recs = by_frame.get(f, [])
        inst = records_to_instances(recs, f, k)
        frames.append(inst.with_(track_ids=[int(r.get("track_id", -1)) for r in recs],
                                 interpolated=[bool(r.get("interpolated", False)) for r in recs]))
    return info, frames


def read_dlc(path: Path) -> tuple[dict, list[Instances]]:
    """Frames of DeepLabCut predictions (``.h5`` or the 4- or 3-header-row ``.csv``)."""
    import pandas as pd

    try:
        if path.suffix.lower() == ".h5":
            df = pd.read_hdf(path)
        else:  # multi-animal files have an "individuals" header row, single-animal ones do not
            with open(path, encoding="utf-8") as fh:
                second = (fh.readline(), fh.readline())[1]
            rows = 4 if second.split(",")[0].strip() == "individuals" else 3
            df = pd.read_csv(path, header=list(range(rows)), index_col=0)
    except (OSError, RuntimeError, ImportError, *MALFORMED) as exc:  # PyTables' HDF5ExtError is a RuntimeError
        raise DatasetError(f"{path}: not a DeepLabCut predictions file ({type(exc).__name__}: "
                           f"{str(exc)[:120]})") from None
    with malformed_data(path, "DeepLabCut predictions file"):
        return _dlc_frames(path, df)


def _dlc_frames(path: Path, df) -> tuple[dict, list[Instances]]:
    levels = df.columns.nlevels
    if levels not in (3, 4):
        raise DatasetError(f"{path}: expected DeepLabCut's 3 or 4 column levels, got {levels}")
    cols = df.columns
    individuals = list(dict.fromkeys(cols.get_level_values(1))) if levels == 4 else ["single"]
    bodyparts = list(dict.fromkeys(cols.get_level_values(levels - 2)))
    scorer = cols.get_level_values(0)[0]
    k = len(bodyparts)
    data = np.full((len(df), len(individuals), k, 3), np.nan)
    for a, ind in enumerate(individuals):
        for q, bp in enumerate(bodyparts):
            for c, coord in enumerate(("x", "y", "likelihood")):
                key = (scorer, ind, bp, coord) if levels == 4 else (scorer, bp, coord)
                if key in df.columns:
                    data[:, a, q, c] = df[key].to_numpy(np.float64)
    ids = np.array([_id_of(ind, a + 1) for a, ind in enumerate(individuals)], np.int64)
    frames = []
    for row, index in enumerate(df.index):
        kp, sc = data[row, :, :, :2], np.nan_to_num(data[row, :, :, 2])
        boxes, has = _boxes_of(kp, sc)
        frames.append(Instances(boxes[has], np.ones(has.sum(), np.float32), keypoints=np.nan_to_num(kp[has]),
                                keypoint_scores=sc[has], track_ids=ids[has], frame_index=int(index)))
    return {"keypoint_names": bodyparts, "skeleton": [], "scorer": str(scorer)}, frames


def read_slp(path: Path) -> tuple[dict, list[Instances]]:
    """Frames of a SLEAP labels file (predicted and user instances), through sleap-io."""
    import sleap_io as sio

    try:
        labels = sio.load_slp(str(path))
    except (OSError, RuntimeError, *MALFORMED) as exc:  # h5py says "damaged" with RuntimeError, too
        raise DatasetError(f"{path}: not a SLEAP labels file ({type(exc).__name__}: {str(exc)[:120]})") from None
    with malformed_data(path, "SLEAP labels file"):
        return _slp_frames(labels)


def _slp_frames(labels) -> tuple[dict, list[Instances]]:
    skeleton = labels.skeletons[0] if labels.skeletons else None
    names = [n.name for n in skeleton.nodes] if skeleton else []
    index_of = {n: i for i, n in enumerate(names)}
    edges = [[index_of[e.source.name], index_of[e.destination.name]] for e in skeleton.edges] if skeleton else []
    track_id = {id(t): _id_of(t.name, i + 1) for i, t in enumerate(labels.tracks)}
    k = len(names)
    frames = []
    video = labels.videos[0] if labels.videos else None
    for lf in sorted(labels.labeled_frames, key=lambda f: f.frame_idx):
        points = [inst.numpy() for inst in lf.instances]
        scores = [getattr(inst, "point_scores", None) for inst in lf.instances]
        kp = np.array(points, np.float64).reshape(-1, k, 2)
        sc = np.array([np.ones(k) if s is None else np.asarray(s, np.float64) for s in scores]).reshape(-1, k)
        sc = np.where(np.isfinite(kp).all(axis=2), sc, 0.0)
        boxes, has = _boxes_of(kp, sc)
        ids = np.array([track_id.get(id(inst.track), -1) if inst.track is not None else -1
                        for inst in lf.instances], np.int64)
        inst_scores = np.array([float(getattr(inst, "score", 1.0)) for inst in lf.instances], np.float32)
        frames.append(Instances(boxes[has], inst_scores[has], keypoints=np.nan_to_num(kp[has]),
                                keypoint_scores=sc[has], track_ids=ids[has], frame_index=int(lf.frame_idx)))
    info = {"keypoint_names": names, "skeleton": edges, "video": video.filename if video else ""}
    return info, frames


MAX_MOT_FRAME = 10_000_000
"""The largest frame number read from a MOTChallenge file (over a day at 100 frames/s)."""


def read_mot(path: Path) -> tuple[dict, list[Instances]]:
    """Frames of a MOTChallenge text file (``frame, id, x, y, w, h, score, ...``, frames 1-based)."""
    try:
        with warnings.catch_warnings():  # an empty file is no frames, not a warning
            warnings.simplefilter("ignore", UserWarning)
            rows = np.loadtxt(path, delimiter=",", ndmin=2)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a MOTChallenge file ({exc})") from None
    if rows.size and rows.shape[1] < 7:
        raise DatasetError(f"{path}: MOTChallenge lines have at least 7 fields, got {rows.shape[1]}")
    if rows.size and not np.isfinite(rows[:, :7]).all():
        raise DatasetError(f"{path}: MOTChallenge frame, id, box and score must be finite numbers")
    if rows.size and (rows[:, 0].min() < 1 or rows[:, 0].max() > MAX_MOT_FRAME):
        raise DatasetError(f"{path}: MOTChallenge frames are numbered from 1 (up to {MAX_MOT_FRAME:,}), "
                           f"got {rows[:, 0].min():g}..{rows[:, 0].max():g}")
    frames = []
    if rows.size:
        for f in range(int(rows[:, 0].min()), int(rows[:, 0].max()) + 1):
            r = rows[rows[:, 0] == f]
            boxes = np.column_stack([r[:, 2], r[:, 3], r[:, 2] + r[:, 4], r[:, 3] + r[:, 5]])
            frames.append(Instances(boxes, r[:, 6], track_ids=r[:, 1].astype(np.int64), frame_index=f - 1))
    return {"keypoint_names": [], "skeleton": []}, frames


READERS = {"json": read_aptrack_json, "dlc": read_dlc, "slp": read_slp, "mot": read_mot}


def read_results(path: str | Path) -> tuple[dict, list[Instances], str]:
    """``(info, frames, format)`` of a results file in any format :data:`READERS` knows."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"results file not found: {path}")
    fmt = format_of(path)
    with malformed_data(path, f"{fmt} results file"):
        info, frames = READERS[fmt](path)
    return info, frames, fmt


def write_results(path: str | Path, info: dict, frames: list[Instances]) -> list[Path]:
    """Write ``frames`` to ``path`` in the format its name says (atomically); returns the files written.

    DeepLabCut writes both the ``.h5`` and the ``.csv`` beside it.
    """
    path = Path(path)
    fmt = format_of(path, writing=True)
    out_dir = path.parent if str(path.parent) else Path(".")
    out_dir.mkdir(parents=True, exist_ok=True)
    info = {**info, "keypoint_names": list(info.get("keypoint_names") or [])}
    if fmt == "json":
        writer = ResultsWriter(out_dir, path.stem, info, info["keypoint_names"], csv_file=False)
    else:
        if fmt == "dlc":
            base = path.name[:-len("_dlc.csv")] + "_dlc" if path.name.lower().endswith("_dlc.csv") else path.stem
            names = [f"{base}.h5", f"{base}.csv"]
        else:
            names = [path.name]
        writer = WRITERS[fmt](out_dir, path.stem, info, names=names)
    try:
        for inst in frames:
            writer.write(inst)
        if fmt == "json":
            writer.commit({"frames": len(frames), "converted": True})
            return [path]
        writer.commit()
        return list(writer.paths)
    finally:
        writer.close()
