"""Synthetic top-view lab recordings: dark (or bright) animals in a fixed-camera arena.

The case of issue-style lab tests and benchmarks that no real video here
covers: a light open field on a darker floor, seen from above, with animals
drawn as a body ellipse, a head and a thin tail, walking smooth random paths
that bounce off the walls. Each frame comes with every animal's box and its
four top-view keypoints (``TOP_VIEW_KEYPOINTS``), so the same scenes serve the
background detector's tests, the lab benchmark and the DeepLabCut / SLEAP
training fixtures.

Nothing here holds a whole video: :meth:`TopViewScene.frames` yields one
frame at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from aptrack.core.errors import ConfigError

TOP_VIEW_KEYPOINTS = ("snout", "left_ear", "right_ear", "tail_base")
"""Keypoints of a top-view animal, as in DeepLabCut's open-field example."""

TOP_VIEW_SKELETON = (("snout", "left_ear"), ("snout", "right_ear"), ("left_ear", "tail_base"),
                     ("right_ear", "tail_base"))

# each keypoint in the animal's own frame, in body lengths: x forward, y to its left
_KEYPOINT_OFFSETS = np.array([[0.62, 0.0], [0.28, 0.17], [0.28, -0.17], [-0.5, 0.0]])


@dataclass(frozen=True)
class TopViewConfig:
    """A synthetic arena (pixels, grey levels in [0, 255], speeds in pixels per frame).

    ``arena_margin`` is the fraction of each side outside the arena (the
    floor). ``still`` animals (their indices) never move. ``light_drift`` is
    the amplitude of a slow sinusoidal change of the whole image's brightness
    (a fraction, over ``light_period`` frames). ``dark`` animals on a light
    arena, else bright ones on a dark arena.
    """

    width: int = 640
    height: int = 480
    animals: int = 1
    body_length: float = 64.0
    speed: float = 3.0
    turn_std: float = 0.15
    arena_margin: float = 0.08
    arena_level: int = 205
    floor_level: int = 70
    animal_level: int = 35
    noise_std: float = 3.0
    light_drift: float = 0.0
    light_period: int = 600
    dark: bool = True
    still: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.animals < 0:
            raise ConfigError(f"top view: animals must be >= 0, got {self.animals}")
        if self.width < 64 or self.height < 64:
            raise ConfigError(f"top view: frames must be at least 64x64, got {self.width}x{self.height}")
        if not 0.0 <= self.arena_margin < 0.5:
            raise ConfigError(f"top view: arena_margin must be in [0, 0.5), got {self.arena_margin}")


class TopViewScene:
    """A seeded top-view recording; :meth:`frames` yields ``(frame, boxes_xyxy, keypoints)``.

    Parameters
    ----------
    config : TopViewConfig
    seed : int
    """

    def __init__(self, config: TopViewConfig = TopViewConfig(), seed: int = 0):
        self.config = config
        self.seed = seed
        c = config
        mx, my = int(round(c.width * c.arena_margin)), int(round(c.height * c.arena_margin))
        self.arena_xywh = (mx, my, c.width - 2 * mx, c.height - 2 * my)

    def background(self) -> np.ndarray:
        """(H, W) uint8: the empty arena without noise."""
        c = self.config
        arena = c.arena_level if c.dark else c.floor_level
        floor = c.floor_level if c.dark else c.arena_level
        img = np.full((c.height, c.width), floor, np.uint8)
        x, y, w, h = self.arena_xywh
        img[y:y + h, x:x + w] = arena
        return img

    def _draw(self, img: np.ndarray, centre: np.ndarray, heading: float, level: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw one animal on ``img`` in place; returns its box (4,) xyxy and keypoints (4, 2)."""
        length = self.config.body_length
        forward = np.array([np.cos(heading), np.sin(heading)])
        left = np.array([forward[1], -forward[0]])  # seen from above with y down
        mask = np.zeros(img.shape, np.uint8)
        angle = float(np.degrees(heading))
        cx, cy = centre
        cv2.ellipse(mask, (int(round(cx)), int(round(cy))), (int(length * 0.42), int(length * 0.2)), angle, 0, 360,
                    255, -1, cv2.LINE_AA)
        head = centre + forward * length * 0.38
        cv2.ellipse(mask, (int(round(head[0])), int(round(head[1]))), (int(length * 0.2), int(length * 0.14)),
                    angle, 0, 360, 255, -1, cv2.LINE_AA)
        tail_start, tail_end = centre - forward * length * 0.45, centre - forward * length * 1.0
        cv2.line(mask, tuple(int(round(v)) for v in tail_start), tuple(int(round(v)) for v in tail_end), 255,
                 max(1, int(length * 0.04)), cv2.LINE_AA)
        alpha = mask.astype(np.float32) / 255.0
        img[:] = np.round(img * (1.0 - alpha) + level * alpha).astype(np.uint8)
        keypoints = centre + length * (_KEYPOINT_OFFSETS[:, :1] * forward + _KEYPOINT_OFFSETS[:, 1:] * left)
        ys, xs = np.nonzero(mask > 127)
        box = (np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64) if len(xs)
               else np.array([cx, cy, cx, cy], np.float64))
        return box, keypoints

    def frames(self, count: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield ``count`` frames: (H, W, 3) uint8 BGR, boxes (A, 4) xyxy float64, keypoints (A, 4, 2) float64."""
        c = self.config
        rng = np.random.default_rng(self.seed)
        x, y, w, h = self.arena_xywh
        pad = c.body_length * 0.8
        pos = np.stack([rng.uniform(x + pad, x + w - pad, c.animals), rng.uniform(y + pad, y + h - pad, c.animals)],
                       axis=1)
        heading = rng.uniform(-np.pi, np.pi, c.animals)
        base = self.background().astype(np.float32)
        level = c.animal_level if c.dark else 255 - c.animal_level
        for t in range(count):
            img = base.copy()
            boxes = np.zeros((c.animals, 4))
            keypoints = np.zeros((c.animals, len(TOP_VIEW_KEYPOINTS), 2))
            for a in range(c.animals):
                boxes[a], keypoints[a] = self._draw(img, pos[a], float(heading[a]), level)
            if c.light_drift:
                img *= 1.0 + c.light_drift * np.sin(2 * np.pi * t / max(c.light_period, 1))
            img += rng.normal(0.0, c.noise_std, img.shape).astype(np.float32)
            grey = np.clip(np.round(img), 0, 255).astype(np.uint8)
            yield cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), boxes, keypoints
            for a in range(c.animals):  # move, turning smoothly, bouncing off the walls
                if a in c.still:
                    continue
                heading[a] += rng.normal(0.0, c.turn_std)
                step = pos[a] + c.speed * np.array([np.cos(heading[a]), np.sin(heading[a])])
                if not x + pad <= step[0] <= x + w - pad:
                    heading[a] = np.pi - heading[a]
                if not y + pad <= step[1] <= y + h - pad:
                    heading[a] = -heading[a]
                pos[a] = np.clip(pos[a] + c.speed * np.array([np.cos(heading[a]), np.sin(heading[a])]),
                                 [x + pad, y + pad], [x + w - pad, y + h - pad])


def write_top_view_video(path, scene: TopViewScene, count: int, fps: float = 30.0):
    """Write ``count`` frames of ``scene`` as an MJPG video (atomically); returns boxes (F, A, 4) and keypoints (F, A, 4, 2)."""
    from aptrack.io.video import AtomicVideoWriter

    c = scene.config
    writer = AtomicVideoWriter(path, fps, (c.width, c.height), fourcc="MJPG")
    boxes, keypoints = [], []
    try:
        for frame, b, k in scene.frames(count):
            writer.write(frame)
            boxes.append(b)
            keypoints.append(k)
        writer.commit()
    finally:
        writer.close()
    return np.array(boxes), np.array(keypoints)


def write_dlc_project(root, scene: TopViewScene, frames: int, scorer: str = "aptrack", every: int = 1,
                      files: tuple[str, ...] = ("csv", "h5")):
    """A DeepLabCut project of ``scene``'s frames as its labels: ``config.yaml`` (bodyparts and
    skeleton; multi-animal when the scene has more than one), ``labeled-data/synthetic/img*.png``
    and ``CollectedData_<scorer>.csv`` / ``.h5`` in DeepLabCut's layout (columns scorer,
    [individuals,] bodyparts, coords; rows labeled-data, video, image). Every ``every``-th frame
    is labelled. Returns the project folder."""
    import pandas as pd
    import yaml

    root = Path(root)
    video = root / "labeled-data" / "synthetic"
    video.mkdir(parents=True, exist_ok=True)
    animals = scene.config.animals
    multi = animals > 1
    individuals = [f"animal{i + 1}" for i in range(animals)]
    rows, values = [], []
    for t, (frame, _, keypoints) in enumerate(scene.frames(frames)):
        if t % every:
            continue
        name = f"img{t:04d}.png"
        cv2.imwrite(str(video / name), frame)
        rows.append(("labeled-data", "synthetic", name))
        values.append(keypoints.reshape(-1))
    if multi:
        columns = pd.MultiIndex.from_tuples(
            [(scorer, ind, part, c) for ind in individuals for part in TOP_VIEW_KEYPOINTS for c in ("x", "y")],
            names=["scorer", "individuals", "bodyparts", "coords"])
    else:
        columns = pd.MultiIndex.from_tuples([(scorer, part, c) for part in TOP_VIEW_KEYPOINTS for c in ("x", "y")],
                                            names=["scorer", "bodyparts", "coords"])
    df = pd.DataFrame(np.array(values), index=pd.MultiIndex.from_tuples(rows), columns=columns)
    if "csv" in files:
        df.to_csv(video / f"CollectedData_{scorer}.csv")
    if "h5" in files:
        df.to_hdf(video / f"CollectedData_{scorer}.h5", key="df_with_missing", mode="w")
    config = {"Task": "synthetic", "scorer": scorer, "date": "Dec3", "multianimalproject": multi,
              "identity": False, "project_path": str(root.resolve()),
              "video_sets": {str((root / "videos" / "synthetic.avi").resolve()): {"crop": "0, 640, 0, 480"}},
              "skeleton": [list(e) for e in TOP_VIEW_SKELETON]}
    if multi:
        config.update(individuals=individuals, uniquebodyparts=[], multianimalbodyparts=list(TOP_VIEW_KEYPOINTS),
                      bodyparts="MULTI!")
    else:
        config["bodyparts"] = list(TOP_VIEW_KEYPOINTS)
    (root / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def write_slp(path, scene: TopViewScene, frames: int, embed: bool = False):
    """A SLEAP labels file of ``scene``'s frames, one user instance per animal (sleap-io), its images
    as PNGs beside it (``<stem>_frames/``) or, with ``embed``, inside the file. Returns the path."""
    import sleap_io as sio

    path = Path(path)
    folder = path.parent / f"{path.stem}_frames"
    folder.mkdir(parents=True, exist_ok=True)
    skeleton = sio.Skeleton(nodes=list(TOP_VIEW_KEYPOINTS), edges=[list(e) for e in TOP_VIEW_SKELETON])
    files, points = [], []
    for t, (frame, _, keypoints) in enumerate(scene.frames(frames)):
        file = folder / f"img{t:04d}.png"
        cv2.imwrite(str(file), frame)
        files.append(str(file))
        points.append(keypoints)
    video = sio.Video.from_filename(files)
    labelled = [sio.LabeledFrame(video=video, frame_idx=t,
                                 instances=[sio.Instance.from_numpy(k, skeleton=skeleton) for k in kps])
                for t, kps in enumerate(points)]
    labels = sio.Labels(labeled_frames=labelled, videos=[video], skeletons=[skeleton])
    sio.save_slp(labels, str(path), embed=embed, verbose=False)
    return path
