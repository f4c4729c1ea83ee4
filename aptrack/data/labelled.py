"""A lab's own labels as a training set: DeepLabCut projects and SLEAP files.

``aptrack train --data`` takes, besides a COCO-style file:

* a DeepLabCut project (its folder or ``config.yaml``): every
  ``labeled-data/*/CollectedData_*.csv`` (or ``.h5``, when a folder has no
  CSV), single- or multi-animal, with the project's own bodyparts in the
  project's order;
* a SLEAP labels file (``.slp``), its user-labelled instances.

Both are read by sleap-io (the ``formats`` extra), which knows the two
formats' layouts, and become a :class:`~aptrack.data.datasets.KeypointDataset`
whose :class:`~aptrack.core.layout.KeypointLayout` is built from the labels:
names, the skeleton's edges, and flip pairs matched by left/right names. The
layout travels in the trained checkpoint, so ``aptrack run --pose model.pt``
draws and exports that skeleton. Boxes come from the labelled keypoints,
padded (:class:`LabelsConfig`).
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from aptrack.core.errors import ConfigError, DatasetError, malformed_data
from aptrack.core.layout import KeypointLayout
from aptrack.data.datasets import KeypointDataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelsConfig:
    """How a lab's labels become a training set (the ``labels`` section of a training config).

    ``box_padding``: each animal's box is the box around its labelled
    keypoints grown by this fraction of its longer side on every side, and at
    least ``min_box_size`` pixels a side. ``sigma``: the OKS constant of every
    keypoint (for validation AP), as a fraction of the animal's scale.
    ``min_keypoints``: animals with fewer labelled keypoints are left out.
    """

    box_padding: float = 0.25
    min_box_size: float = 16.0
    sigma: float = 0.05
    min_keypoints: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.box_padding <= 2.0:
            raise ConfigError(f"labels.box_padding must be in [0, 2], got {self.box_padding}")
        if self.min_box_size < 1:
            raise ConfigError(f"labels.min_box_size must be >= 1 pixel, got {self.min_box_size}")
        if not 0.0 < self.sigma <= 1.0:
            raise ConfigError(f"labels.sigma must be in (0, 1], got {self.sigma}")
        if self.min_keypoints < 1:
            raise ConfigError(f"labels.min_keypoints must be >= 1, got {self.min_keypoints}")


def is_lab_labels(path: str | Path) -> bool:
    """Whether ``path`` is a DeepLabCut project (folder or ``config.yaml``) or a SLEAP ``.slp``."""
    p = Path(path)
    return p.suffix.lower() == ".slp" or (p.is_dir() and (p / "config.yaml").is_file()) or (
        p.name == "config.yaml" and (p.parent / "labeled-data").is_dir())


_SIDE = re.compile(r"(?i)(?<![a-z])(left|right|l|r)(?![a-z])|^(left|right)|(left|right)$")


def flip_pairs_by_name(names) -> tuple[tuple[int, int], ...]:
    """Index pairs of keypoints whose names differ only by left/right (``left_ear``/``right_ear``,
    ``LeftEar``/``RightEar``, ``ear_l``/``ear_r``, ``l_paw``/``r_paw``), each pair once."""
    def mirrored(name: str) -> str | None:
        swap = {"left": "right", "right": "left", "l": "r", "r": "l"}
        out, n = _SIDE.subn(lambda m: _keep_case(m.group(0), swap[m.group(0).lower()]), name)
        return out if n else None

    index = {n: i for i, n in enumerate(names)}
    pairs = set()
    for i, n in enumerate(names):
        other = mirrored(n)
        j = index.get(other) if other else None
        if j is not None and j != i:
            pairs.add((min(i, j), max(i, j)))
    return tuple(sorted(pairs))


def _keep_case(old: str, new: str) -> str:
    if old.isupper():
        return new.upper()
    if old[0].isupper():
        return new.capitalize()
    return new


def layout_from_labels(name: str, keypoints, edges, sigma: float) -> KeypointLayout:
    """A keypoint layout from label names and skeleton edges (index pairs), flip pairs by name."""
    keypoints = tuple(str(k) for k in keypoints)
    if len(set(keypoints)) != len(keypoints):
        raise DatasetError(f"{name}: bodypart names repeat: {', '.join(keypoints)}")
    return KeypointLayout(name=name, keypoints=keypoints, flip_pairs=flip_pairs_by_name(keypoints),
                          skeleton=tuple((int(a), int(b)) for a, b in edges), sigmas=(sigma,) * len(keypoints))


def load_lab_labels(path: str | Path, frames_dir: str | Path, config: LabelsConfig = LabelsConfig()) -> KeypointDataset:
    """A DeepLabCut project or SLEAP file as a :class:`KeypointDataset` in the labels' own layout.

    Parameters
    ----------
    path : a DeepLabCut project folder or its ``config.yaml``, or a ``.slp`` file
    frames_dir : where the labelled frames of a SLEAP file's videos are written as
        images (DeepLabCut's ``labeled-data`` images are used in place)
    config : LabelsConfig

    Raises
    ------
    DatasetError
        A missing or malformed project or file, or no labelled animal in it.
    """
    try:
        import sleap_io as sio
    except ImportError:
        raise DatasetError("reading DeepLabCut and SLEAP labels needs sleap-io: pip install 'aptrack[formats]'") \
            from None
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"labels not found: {p}")
    with malformed_data(p, "labels"):
        if p.suffix.lower() == ".slp":
            return _dataset([sio.load_slp(str(p))], None, p.stem, Path(frames_dir), config)
        with tempfile.TemporaryDirectory() as tmp:
            parts, order, name = _load_dlc(sio, p if p.is_dir() else p.parent, Path(tmp))
            return _dataset(parts, order, name, Path(frames_dir), config)


def _load_dlc(sio, project: Path, tmp: Path):
    """The labels of a DeepLabCut project (one sleap-io Labels per labelled video), and its
    bodyparts in the project's order."""
    import yaml

    try:
        cfg = yaml.safe_load((project / "config.yaml").read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DatasetError(f"{project / 'config.yaml'}: not valid YAML ({exc.__class__.__name__})") from None
    multi = bool(cfg.get("multianimalproject"))
    order = cfg.get("multianimalbodyparts") if multi else cfg.get("bodyparts")
    if not isinstance(order, list) or not order:
        raise DatasetError(f"{project / 'config.yaml'}: no bodyparts")
    folders = sorted(d for d in (project / "labeled-data").glob("*") if d.is_dir())
    if not any(folders):
        raise DatasetError(f"{project}: no labeled-data folder")
    for folder in folders:  # a folder with only DeepLabCut's .h5: its table as the CSV sleap-io reads
        if not list(folder.glob("CollectedData_*.csv")):
            for h5 in folder.glob("CollectedData_*.h5"):
                _h5_as_csv(h5, tmp)
    csvs = sorted(project.glob("labeled-data/*/CollectedData_*.csv")) + sorted(tmp.glob("labeled-data/*/*.csv"))
    if not csvs:
        raise DatasetError(f"{project}: no CollectedData_*.csv or .h5 under labeled-data/")
    parts = [sio.load_dlc(str(c), config=str(project / "config.yaml")) for c in csvs]
    return parts, [str(b) for b in order], str(cfg.get("Task") or project.name)


def _h5_as_csv(h5: Path, tmp: Path) -> None:
    """DeepLabCut's table in ``h5`` written as its CSV under ``tmp/labeled-data/<video>/``, beside
    links to the video's images (the project itself is not written to)."""
    import pandas as pd

    out = tmp / "labeled-data" / h5.parent.name
    out.mkdir(parents=True, exist_ok=True)
    for image in h5.parent.iterdir():
        if image.suffix.lower() in (".png", ".jpg", ".jpeg") and not (out / image.name).exists():
            (out / image.name).symlink_to(image.resolve())
    pd.read_hdf(h5).to_csv(out / (h5.stem + ".csv"))


def _dataset(parts, order, name: str, frames_dir: Path, config: LabelsConfig) -> KeypointDataset:
    skeletons = [sk for labels in parts for sk in labels.skeletons]
    if not skeletons:
        raise DatasetError(f"{name}: no skeleton in the labels")
    nodes = [str(n) for n in skeletons[0].node_names]
    order = order or nodes
    missing = sorted(set(order) - set(nodes))
    if missing:
        raise DatasetError(f"{name}: bodyparts {', '.join(missing)} are not in the labels")
    edges = [(order.index(nodes[a]), order.index(nodes[b])) for a, b in skeletons[0].edge_inds
             if nodes[a] in order and nodes[b] in order]
    layout = layout_from_labels(name, order, edges, config.sigma)
    rows, skipped, image_id = [], {"too few keypoints": 0}, 0
    for labels in parts:
        for lf in labels.labeled_frames:
            instances = [i for i in lf.instances if type(i).__name__ == "Instance"]  # user labels, not predictions
            if not instances:
                continue
            file = _frame_file(lf, frames_dir)
            h, w = _size_of(file)
            for inst in instances:
                own = [str(n) for n in inst.skeleton.node_names]  # each file's skeleton has its own node order
                pts = np.full((len(order), 2), np.nan)
                found = np.asarray(inst.numpy(), np.float64)
                for q, part in enumerate(order):
                    if part in own:
                        pts[q] = found[own.index(part)]
                ok = np.isfinite(pts).all(axis=1)
                if ok.sum() < config.min_keypoints:
                    skipped["too few keypoints"] += 1
                    continue
                rows.append((image_id, file, (w, h), pts, ok))
            image_id += 1
    if not rows:
        raise DatasetError(f"{name}: no labelled animal")
    keypoints = np.stack([np.where(r[4][:, None], r[3], 0.0) for r in rows]).astype(np.float32)
    visible = np.stack([r[4] for r in rows])
    sizes = np.array([r[2] for r in rows], np.int64)
    boxes = keypoint_boxes(keypoints, visible, sizes, config.box_padding, config.min_box_size)
    log.info("%s: %d labelled animals in %d frames, keypoints %s", name, len(rows), len({r[0] for r in rows}),
             ", ".join(layout.keypoints))
    return KeypointDataset(np.array([r[0] for r in rows], np.int64), np.array([str(r[1]) for r in rows], object),
                           sizes, boxes, keypoints, visible, np.array(["animal"] * len(rows), object), layout,
                           {k: v for k, v in skipped.items() if v})


def keypoint_boxes(keypoints, visible, sizes, padding: float, min_size: float) -> np.ndarray:
    """(N, 4) float32 xyxy boxes around each animal's labelled keypoints, padded, clipped to the image.

    Parameters
    ----------
    keypoints : (N, K, 2) pixels; visible : (N, K) bool; sizes : (N, 2) image width, height
    padding : fraction of the box's longer side added on each side
    min_size : the least box side, pixels
    """
    kp = np.asarray(keypoints, np.float64)
    vis = np.asarray(visible, bool)
    big = np.where(vis[..., None], kp, np.inf)
    small = np.where(vis[..., None], kp, -np.inf)
    lo, hi = big.min(axis=1), small.max(axis=1)
    centre, side = (lo + hi) / 2, (hi - lo)
    half = np.maximum(side / 2 + padding * side.max(axis=1, keepdims=True), min_size / 2)
    x1y1 = np.clip(centre - half, 0, None)
    x2y2 = np.minimum(centre + half, np.asarray(sizes, np.float64))
    return np.concatenate([x1y1, x2y2], axis=1).astype(np.float32)


def _frame_file(lf, frames_dir: Path) -> Path:
    """The image of a labelled frame: the file itself for an image sequence, else written under ``frames_dir``."""
    filename = lf.video.filename
    if isinstance(filename, list) and 0 <= lf.frame_idx < len(filename) and Path(filename[lf.frame_idx]).is_file():
        return Path(filename[lf.frame_idx]).resolve()
    frames_dir.mkdir(parents=True, exist_ok=True)
    out = frames_dir / f"{Path(str(filename if not isinstance(filename, list) else 'images')).stem}_{lf.frame_idx:06d}.png"
    if not out.is_file():
        image = lf.image
        if image is None:
            raise DatasetError(f"frame {lf.frame_idx} of {filename} cannot be read")
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        elif image.ndim == 3:
            image = image[:, :, ::-1]  # sleap-io gives RGB; OpenCV writes BGR
        cv2.imwrite(str(out), image)
    return out


def _size_of(file: Path) -> tuple[int, int]:
    """(height, width) of an image file."""
    image = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"image not readable: {file}")
    return image.shape[:2]
