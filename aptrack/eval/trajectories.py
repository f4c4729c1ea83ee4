"""The pictures a behaviour researcher looks at first: paths, speed, confidence, occupancy.

:func:`track_table` turns a run's frames into per-track arrays (frame,
box centre, mean keypoint score); :func:`plot_results` draws four PNGs from
them with matplotlib, each written under a temporary name and renamed:

* ``paths.png``: each track's path (box centres) over the video's first frame
  (or a blank frame of the video's size when the video cannot be read);
* ``speed.png``: each track's speed over time, in pixels per second (the
  distance between box centres over consecutive observed frames);
* ``confidence.png``: each track's mean keypoint score over time (its box
  score without keypoints);
* ``occupancy.png``: where the animals were, a 2-D histogram of box centres
  over the frame (counts per cell, all tracks).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aptrack.core.errors import write_atomic
from aptrack.core.instances import Instances

OCCUPANCY_BINS = 48
"""Cells along the longer side of the occupancy histogram."""


def track_table(frames: list[Instances]) -> dict[int, dict[str, np.ndarray]]:
    """Per track id: ``frame`` (n,) int, ``centre`` (n, 2) pixels, ``confidence`` (n,) in [0, 1]."""
    rows: dict[int, list[tuple[int, float, float, float]]] = {}
    for f in frames:
        centres = 0.5 * (f.boxes_xyxy[:, :2] + f.boxes_xyxy[:, 2:])
        conf = f.keypoint_scores.mean(axis=1) if f.num_keypoints else f.scores
        for i, tid in enumerate(f.track_ids.tolist()):
            rows.setdefault(int(tid), []).append((f.frame_index, *centres[i].tolist(), float(conf[i])))
    out = {}
    for tid, r in sorted(rows.items()):
        a = np.array(sorted(r))
        out[tid] = {"frame": a[:, 0].astype(np.int64), "centre": a[:, 1:3], "confidence": a[:, 3]}
    return out


def speeds(track: dict[str, np.ndarray], fps: float) -> tuple[np.ndarray, np.ndarray]:
    """(times in s, speeds in px/s) between consecutive observations of one track."""
    if len(track["frame"]) < 2:
        return np.zeros(0), np.zeros(0)
    dt = np.diff(track["frame"]) / fps
    dist = np.linalg.norm(np.diff(track["centre"], axis=0), axis=1)
    return track["frame"][1:] / fps, dist / dt


def _first_frame(info: dict) -> np.ndarray | None:
    import cv2

    video = info.get("video")
    if not video or not Path(video).is_file():
        return None
    cap = cv2.VideoCapture(str(video))
    try:
        if info.get("start"):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(info["start"]))
        ok, frame = cap.read()
    finally:
        cap.release()
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok else None


def plot_results(info: dict, frames: list[Instances], out_dir: str | Path) -> list[Path]:
    """Write ``paths.png``, ``speed.png``, ``confidence.png`` and ``occupancy.png`` into ``out_dir``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    tracks = track_table(frames)
    fps = float(info.get("fps") or 30.0)
    background = _first_frame(info)
    width = int(info.get("width") or (background.shape[1] if background is not None else 0))
    height = int(info.get("height") or (background.shape[0] if background is not None else 0))
    if not width or not height:  # no size given: the extent of the boxes
        ends = np.concatenate([f.boxes_xyxy[:, 2:] for f in frames if len(f)] or [np.ones((1, 2))])
        width, height = int(np.ceil(ends[:, 0].max())), int(np.ceil(ends[:, 1].max()))
    colours = plt.get_cmap("tab10")
    written = []

    def save(fig, name: str) -> None:
        path = out_dir / name
        write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
        plt.close(fig)
        written.append(path)

    fig, ax = plt.subplots(figsize=(8, 8 * height / max(width, 1)))
    if background is not None:
        ax.imshow(background)
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    for n, (tid, t) in enumerate(tracks.items()):
        ax.plot(t["centre"][:, 0], t["centre"][:, 1], "-", lw=1.5, color=colours(n % 10), label=f"#{tid}")
        ax.plot(*t["centre"][0], "o", color=colours(n % 10))
    ax.set_title("paths (box centres; a dot where each track starts)")
    if tracks:
        ax.legend(loc="upper right", fontsize=8)
    save(fig, "paths.png")

    fig, ax = plt.subplots(figsize=(10, 4))
    for n, (tid, t) in enumerate(tracks.items()):
        times, v = speeds(t, fps)
        ax.plot(times, v, lw=1, color=colours(n % 10), label=f"#{tid}")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("speed (px/s)")
    ax.set_title("speed of each track")
    if tracks:
        ax.legend(fontsize=8)
    save(fig, "speed.png")

    fig, ax = plt.subplots(figsize=(10, 4))
    for n, (tid, t) in enumerate(tracks.items()):
        ax.plot(t["frame"] / fps, t["confidence"], lw=1, color=colours(n % 10), label=f"#{tid}")
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mean keypoint score" if any(f.num_keypoints for f in frames) else "detection score")
    ax.set_title("confidence of each track")
    if tracks:
        ax.legend(fontsize=8)
    save(fig, "confidence.png")

    centres = np.concatenate([t["centre"] for t in tracks.values()] or [np.zeros((0, 2))])
    scale = OCCUPANCY_BINS / max(width, height, 1)
    bins = (max(1, round(width * scale)), max(1, round(height * scale)))
    counts, _, _ = np.histogram2d(centres[:, 0], centres[:, 1], bins=bins, range=[[0, width], [0, height]])
    fig, ax = plt.subplots(figsize=(8, 8 * height / max(width, 1)))
    image = ax.imshow(counts.T, extent=(0, width, height, 0), cmap="magma", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="frames with an animal's centre in the cell")
    ax.set_title("occupancy")
    save(fig, "occupancy.png")
    return written
