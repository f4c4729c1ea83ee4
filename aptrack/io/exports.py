"""Results in the formats the field uses: MOTChallenge, DeepLabCut, SLEAP.

Each writer takes a run's tracked frames one at a time (:meth:`write`), like
:class:`aptrack.io.results.ResultsWriter`, writes under a temporary name and
renames into place on :meth:`commit`; :meth:`close` without a commit deletes
what it wrote. Its files are named by the input's stem, or by ``names`` (file
names in ``out_dir``, as ``aptrack convert`` gives them). The formats:

* ``mot``: MOTChallenge text, ``<stem>_mot.txt``, one line per animal and
  frame: ``frame, id, x, y, w, h, score, -1, -1, -1`` with 1-based frames and
  the box's top-left corner, width and height in pixels. Streamed.
* ``dlc``: DeepLabCut's multi-animal predictions, ``<stem>_dlc.h5`` and
  ``<stem>_dlc.csv``: a DataFrame indexed by frame with the 4-level columns
  ``scorer / individuals / bodyparts / coords`` (``x``, ``y``,
  ``likelihood``), one individual per track (``ind<id>``), NaN where a track
  is absent; the h5 under key ``df_with_missing`` in PyTables ``table``
  format, as DeepLabCut's ``analyze_videos`` writes it (``pd.read_hdf`` opens
  it), the CSV with its 4 header rows.
* ``slp``: a SLEAP labels file, ``<stem>.slp``, through sleap-io: the model's
  skeleton (keypoint names and edges), one track per id, and a predicted
  instance per animal and frame with its point scores, score and the
  source video's path (``sleap_io.load_slp`` reads it back).

* ``nwb``: Neurodata Without Borders, ``<stem>.nwb``, with ndx-pose (0.4): in
  a ``behavior`` processing module, the ``Skeletons`` (the model's nodes and
  edges) and one ``PoseEstimation`` per track (``track_<id>``) holding a
  ``PoseEstimationSeries`` per keypoint (x, y in pixels, confidence, timestamps
  in seconds from the frame index and the video's frame rate), the source video
  (an external-file ImageSeries with its size, linked as ``source_video``), the scorer (the pose model) and the source software (aptrack and
  its version), so the file can go to DANDI.

DLC, SLEAP and NWB hold keypoints, so they need a pose model; their libraries
(pandas with PyTables, sleap-io, pynwb with ndx-pose) are the ``formats`` extra.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from aptrack.core.errors import ConfigError
from aptrack.core.instances import Instances

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("json", "csv", "mp4", "mot", "dlc", "slp", "nwb")
"""What ``--export`` takes; ``json``, ``csv`` and ``mp4`` are aptrack's own outputs."""

DEFAULT_EXPORTS = ("json", "csv", "mp4")
POSE_FORMATS = ("dlc", "slp", "nwb")


def parse_exports(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The export names of ``--export`` (comma-separated), checked; in a fixed order, no repeats."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in EXPORT_FORMATS]
    if unknown:
        raise ConfigError(f"unknown export {', '.join(unknown)}; known: {', '.join(EXPORT_FORMATS)}")
    if not names:
        raise ConfigError(f"--export needs at least one of {', '.join(EXPORT_FORMATS)}")
    return tuple(n for n in EXPORT_FORMATS if n in names)


class _Atomic:
    """Temporary paths beside final ones, renamed on commit and deleted otherwise."""

    def __init__(self, out_dir: Path, names: list[str]):
        self.paths = [out_dir / n for n in names]
        self.tmp = [out_dir / f".{n}.incomplete{Path(n).suffix}" for n in names]
        self.committed = False

    def rename(self) -> None:
        for tmp, final in zip(self.tmp, self.paths):
            os.replace(tmp, final)
        self.committed = True

    def discard(self) -> None:
        if not self.committed:
            for tmp in self.tmp:
                tmp.unlink(missing_ok=True)


class MotWriter:
    """``<stem>_mot.txt`` in MOTChallenge's layout, streamed."""

    def __init__(self, out_dir: Path, stem: str, info: dict, names: list[str] | None = None):
        self._files = _Atomic(out_dir, names or self.default_names(stem))
        self.paths = self._files.paths
        self._fh = open(self._files.tmp[0], "w", encoding="utf-8")

    @staticmethod
    def default_names(stem: str) -> list[str]:
        return [f"{stem}_mot.txt"]

    def write(self, instances: Instances) -> None:
        from aptrack.core.boxes import xyxy_to_xywh  # here: the CLI imports this module for its names

        xywh = xyxy_to_xywh(instances.boxes_xyxy)
        frame = instances.frame_index + 1
        for i in range(len(instances)):
            x, y, w, h = (float(v) for v in xywh[i])
            self._fh.write(f"{frame},{int(instances.track_ids[i])},{x:.2f},{y:.2f},{w:.2f},{h:.2f},"
                           f"{float(instances.scores[i]):.4f},-1,-1,-1\n")

    def commit(self) -> None:
        self._fh.close()
        self._files.rename()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        self._files.discard()


class _PoseTable:
    """Every frame's tracked poses, kept for the writers that need the whole run at once.

    Compact: per animal and frame one float32 row (box, score, keypoints, keypoint scores);
    an hour at 30 frames/s with two animals and 17 keypoints is about 50 MB.
    """

    def __init__(self, num_keypoints: int):
        self.k = num_keypoints
        self.frames: list[int] = []
        self._ids: list[np.ndarray] = []
        self._rows: list[np.ndarray] = []

    def add(self, instances: Instances) -> None:
        self.frames.append(instances.frame_index)
        n = len(instances)
        if not n:  # an empty frame may come without a keypoint dimension
            self._ids.append(np.zeros(0, np.int64))
            self._rows.append(np.zeros((0, 5 + 3 * self.k), np.float32))
            return
        if instances.num_keypoints != self.k:
            raise ConfigError(f"frame {instances.frame_index} has {instances.num_keypoints} keypoints, "
                              f"the export's layout {self.k}")
        rows = np.concatenate([instances.boxes_xyxy, instances.scores[:, None],
                               instances.keypoints.reshape(n, 2 * self.k), instances.keypoint_scores], axis=1)
        self._ids.append(instances.track_ids.copy())
        self._rows.append(rows.astype(np.float32))

    def arrays(self):
        """(frames (F,), per-record frame position (R,), ids (R,), rows (R, 5 + 3K))."""
        counts = [len(i) for i in self._ids]
        pos = np.repeat(np.arange(len(counts)), counts)
        ids = np.concatenate(self._ids) if self._ids else np.zeros(0, np.int64)
        rows = np.concatenate(self._rows) if self._rows else np.zeros((0, 5 + 3 * self.k), np.float32)
        return np.asarray(self.frames, np.int64), pos, ids, rows


_LIBRARIES = {"dlc": (("pandas", "tables"), "pandas and PyTables"), "slp": (("sleap_io",), "sleap-io"),
              "nwb": (("pynwb", "ndx_pose"), "pynwb and ndx-pose")}


def check_exports(exports: tuple[str, ...], has_pose: bool) -> None:
    """Raise ConfigError now for an export that could not be written: one that needs keypoints
    without a pose model, or whose library is not installed."""
    import importlib

    for name in exports:
        if name in POSE_FORMATS and not has_pose:
            raise ConfigError(f"{name} output needs keypoints and these results have none (run with a pose "
                              f"model, not --pose none; MOT files hold boxes only)")
        modules, what = _LIBRARIES.get(name, ((), ""))
        for module in modules:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ConfigError(f"--export {name} needs {what}: pip install 'aptrack[formats]' "
                                  f"(make setup does) [{exc}]") from exc


class _PoseWriter:
    """What the writers of keypoint formats share: the layout from the run's ``info``
    (``keypoint_names``, ``skeleton``), every frame's poses kept in a :class:`_PoseTable`,
    and temporary files renamed on :meth:`commit`. A subclass names its ``FORMAT``, its
    default file names and how it saves the table's arrays (:meth:`_save`)."""

    FORMAT = ""

    def __init__(self, out_dir: Path, stem: str, info: dict, names: list[str] | None = None):
        check_exports((self.FORMAT,), bool(info.get("keypoint_names")))
        self.info, self.stem = info, stem
        self.keypoint_names = list(info.get("keypoint_names") or [])
        self.edges = [tuple(p) for p in info.get("skeleton") or []]
        self._table = _PoseTable(len(self.keypoint_names))
        self._files = _Atomic(out_dir, names or self.default_names(stem))
        self.paths = self._files.paths

    @staticmethod
    def default_names(stem: str) -> list[str]:
        raise NotImplementedError

    def write(self, instances: Instances) -> None:
        self._table.add(instances)

    def commit(self) -> None:
        self._save(*self._table.arrays())
        self._files.rename()

    def _save(self, frames, pos, ids, rows) -> None:
        """Write :meth:`_PoseTable.arrays` into ``self._files.tmp``."""
        raise NotImplementedError

    def close(self) -> None:
        self._files.discard()


def dlc_dataframe(frames, pos, ids, rows, keypoint_names: list[str], scorer: str):
    """The DeepLabCut predictions DataFrame of a :class:`_PoseTable`'s arrays (see module doc)."""
    import pandas as pd

    k = len(keypoint_names)
    individuals = [int(t) for t in np.unique(ids)]
    columns = pd.MultiIndex.from_product(
        [[scorer], [f"ind{t}" for t in individuals], keypoint_names, ["x", "y", "likelihood"]],
        names=["scorer", "individuals", "bodyparts", "coords"])
    data = np.full((len(frames), len(individuals), k, 3), np.nan)
    column_of = {t: c for c, t in enumerate(individuals)}
    cols = np.array([column_of[int(t)] for t in ids], np.int64)
    kp = rows[:, 5:5 + 2 * k].reshape(-1, k, 2)
    data[pos, cols, :, :2] = kp
    data[pos, cols, :, 2] = rows[:, 5 + 2 * k:]
    return pd.DataFrame(data.reshape(len(frames), -1), index=pd.Index(frames), columns=columns)


class DlcWriter(_PoseWriter):
    """``<stem>_dlc.h5`` and ``<stem>_dlc.csv``, DeepLabCut's multi-animal predictions."""

    FORMAT = "dlc"

    @staticmethod
    def default_names(stem: str) -> list[str]:
        return [f"{stem}_dlc.h5", f"{stem}_dlc.csv"]

    def _save(self, frames, pos, ids, rows) -> None:
        model = (self.info.get("models") or {}).get("pose") or {}
        df = dlc_dataframe(frames, pos, ids, rows, self.keypoint_names, f"aptrack_{model.get('model', 'pose')}")
        h5, csv = self._files.tmp
        import pandas as pd

        # no object times and no query index (whose nodes carry times): the same results, the same bytes
        with pd.HDFStore(h5, mode="w") as store:
            store.put("df_with_missing", df, format="table", track_times=False, index=False)
        df.to_csv(csv)


class SlpWriter(_PoseWriter):
    """``<stem>.slp``, a SLEAP labels file of predicted instances (sleap-io)."""

    FORMAT = "slp"

    @staticmethod
    def default_names(stem: str) -> list[str]:
        return [f"{stem}.slp"]

    def _save(self, frames, pos, ids, rows) -> None:
        import sleap_io as sio

        k = len(self.keypoint_names)
        names = self.keypoint_names
        skeleton = sio.Skeleton(nodes=list(names), edges=[(names[a], names[b]) for a, b in self.edges],
                                name="aptrack")
        video = sio.Video(filename=str(self.info.get("video", "")), open_backend=False)
        tracks = {int(t): sio.Track(name=f"track_{int(t)}") for t in np.unique(ids)}
        starts = np.searchsorted(pos, np.arange(len(frames)))
        ends = np.searchsorted(pos, np.arange(len(frames)), side="right")
        labeled = []
        for f, (a, b) in enumerate(zip(starts, ends)):
            if a == b:
                continue
            instances = [sio.PredictedInstance.from_numpy(
                rows[r, 5:5 + 2 * k].reshape(k, 2).astype(np.float64), skeleton=skeleton,
                point_scores=rows[r, 5 + 2 * k:].astype(np.float64), score=float(rows[r, 4]),
                track=tracks[int(ids[r])], tracking_score=1.0) for r in range(a, b)]
            labeled.append(sio.LabeledFrame(video=video, frame_idx=int(frames[f]), instances=instances))
        labels = sio.Labels(labeled_frames=labeled, videos=[video], skeletons=[skeleton],
                            tracks=list(tracks.values()))
        labels.provenance["software"] = "aptrack"
        sio.save_slp(labels, str(self._files.tmp[0]), verbose=False)


class NwbWriter(_PoseWriter):
    """``<stem>.nwb``: poses as ndx-pose's PoseEstimation per track, in a ``behavior`` module."""

    FORMAT = "nwb"

    @staticmethod
    def default_names(stem: str) -> list[str]:
        return [f"{stem}.nwb"]

    def _save(self, frames, pos, ids, rows) -> None:
        import datetime as dt

        from ndx_pose import PoseEstimation, PoseEstimationSeries, Skeleton, Skeletons
        from pynwb import NWBHDF5IO, NWBFile
        from pynwb.image import ImageSeries

        info = self.info
        k = len(self.keypoint_names)
        fps = float(info.get("fps") or 30.0)
        created = dt.datetime.fromisoformat(info["created"]) if info.get("created") else dt.datetime.now(dt.timezone.utc)
        nwb = NWBFile(session_description=f"aptrack {info.get('aptrack_version', '')} poses of {self.stem}",
                      identifier=f"aptrack-{self.stem}-{created.isoformat()}", session_start_time=created,
                      file_create_date=created)
        # the source video, linked as an external file (ndx-pose 0.4's source_video; its size as dimension)
        video = ImageSeries(name="video", description=f"the video aptrack read, {self.stem}",
                            external_file=[str(info.get("video", ""))], format="external", starting_frame=[0],
                            rate=fps, starting_time=0.0, num_samples=int(frames.max()) + 1 if len(frames) else 0,
                            dimension=[int(info.get("width") or 0), int(info.get("height") or 0)], unit="n/a")
        nwb.add_acquisition(video)
        skeleton = Skeleton(name="skeleton", nodes=list(self.keypoint_names),
                            edges=np.asarray(self.edges, dtype=np.uint8).reshape(-1, 2))
        behavior = nwb.create_processing_module(name="behavior", description="animal poses tracked by aptrack")
        behavior.add(Skeletons(skeletons=[skeleton]))
        model = ((info.get("models") or {}).get("pose") or {}).get("model", "pose")
        for track in np.unique(ids):
            mine = ids == track
            times = frames[pos[mine]] / fps
            kp = rows[mine, 5:5 + 2 * k].reshape(-1, k, 2)
            conf = rows[mine, 5 + 2 * k:]
            series = [PoseEstimationSeries(name=name, description=f"{name} of track {int(track)}",
                                           data=kp[:, q].astype(np.float64), unit="pixels",
                                           reference_frame="(0, 0) is the top-left corner of the video frame",
                                           timestamps=times, confidence=conf[:, q].astype(np.float64),
                                           confidence_definition="the pose model's keypoint score, in [0, 1]")
                      for q, name in enumerate(self.keypoint_names)]
            behavior.add(PoseEstimation(
                name=f"track_{int(track)}", pose_estimation_series=series,
                description=f"track {int(track)} by aptrack", source_video=video, scorer=str(model),
                source_software="aptrack", source_software_version=str(info.get("aptrack_version", "")),
                skeleton=skeleton))
        with NWBHDF5IO(str(self._files.tmp[0]), mode="w") as io:
            io.write(nwb)


WRITERS = {"mot": MotWriter, "dlc": DlcWriter, "slp": SlpWriter, "nwb": NwbWriter}


def make_writers(exports: tuple[str, ...], out_dir: Path, stem: str, info: dict) -> list:
    """The writers of the non-aptrack formats among ``exports`` (errors before any frame runs)."""
    writers = []
    try:
        for name in exports:
            if name in WRITERS:
                writers.append(WRITERS[name](out_dir, stem, info))
    except BaseException:
        for w in writers:
            w.close()
        raise
    return writers


def run_exports(exports: str | tuple[str, ...] | list[str], write_video: bool) -> tuple[str, ...]:
    """The formats a run writes: ``exports`` (:func:`parse_exports`) without ``mp4`` when no video is written."""
    return tuple(e for e in parse_exports(exports) if e != "mp4" or write_video)


def output_names(exports: tuple[str, ...], stem: str) -> list[str]:
    """The file names a run with these ``exports`` writes for an input named ``stem`` (``mp4``: the
    annotated video)."""
    own = {"json": [f"{stem}.json"], "csv": [f"{stem}.csv"], "mp4": [f"{stem}.mp4"]}
    return [name for e in exports for name in (own[e] if e in own else WRITERS[e].default_names(stem))]
