"""Video keypoint datasets: APTv2 (and APT-36K / AP-10K json) grouped into clips.

APTv2 is COCO keypoint json (AP-10K's 17 keypoints) whose images carry
``video_id`` and whose annotations carry ``video_id`` and ``track_id``. It is
distributed in two folder layouts, both accepted by :func:`find_annotation_file`:

* ``{train,val,test}_annotations.json`` with ``{val,test}_annotations_{easy,hard}.json``
  beside them (the dataset's own layout);
* ``annotations_easy/`` and ``annotations_hard/`` folders holding
  ``{train,val,test}_annotations.json`` (mmpose's configs).

Images are grouped into clips by ``video_id`` and ordered by ``frame_id``
(or ``frame_index`` / ``frame``), falling back to the file name. A file with no
``video_id`` at all (AP-10K) loads as one-frame clips, one per image, so the
per-frame metrics still apply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aptrack.core.errors import DatasetError, malformed_data
from aptrack.core.layout import KeypointLayout
from aptrack.data.datasets import KeypointDataset, load_keypoint_dataset, read_annotation_json

log = logging.getLogger(__name__)

SPLITS = ("easy", "hard", "all")
FRAME_KEYS = ("frame_id", "frame_index", "frame")


@dataclass(frozen=True)
class Clip:
    """One video clip: ordered frames and their annotated animals.

    Attributes
    ----------
    video_id : int
    image_ids : (T,) int64, frame order
    files : tuple of str, image paths in frame order
    rows : tuple of (n_t,) int64 arrays, the dataset rows of each frame's animals
    """

    video_id: int
    image_ids: np.ndarray
    files: tuple[str, ...]
    rows: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.image_ids)


@dataclass(frozen=True)
class ClipDataset:
    """Annotated animals (:class:`KeypointDataset`) plus their track ids and clips."""

    animals: KeypointDataset
    track_ids: np.ndarray  # (N,) int64
    clips: tuple[Clip, ...]
    source: str

    @property
    def layout(self) -> KeypointLayout:
        return self.animals.layout


def find_annotation_file(data: str | Path, split: str, subset: str = "test") -> Path:
    """The annotation json of ``subset`` (train/val/test) and ``split`` (easy/hard/all).

    ``data`` may be the json itself or an APTv2 folder in either layout.

    Raises
    ------
    DatasetError
        Unknown split, or no matching file in the folder.
    """
    if split not in SPLITS:
        raise DatasetError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
    path = Path(data)
    if path.is_file():
        return path
    if not path.is_dir():
        raise DatasetError(f"dataset not found: {path}")
    if split == "all":
        candidates = [path / f"{subset}_annotations.json", path / "annotations" / f"{subset}_annotations.json"]
    else:
        candidates = [path / f"{subset}_annotations_{split}.json",
                      path / "annotations" / f"{subset}_annotations_{split}.json",
                      path / f"annotations_{split}" / f"{subset}_annotations.json"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DatasetError(f"no {subset} annotations for split '{split}' in {path} (looked for "
                       + ", ".join(str(c.relative_to(path)) for c in candidates) + ")")


def load_clips(annotations: str | Path, images_dir: str | Path | None, layout: KeypointLayout) -> ClipDataset:
    """Load a video keypoint file and group its frames into clips.

    ``images_dir`` None loads the annotations alone (to score a results file).

    Raises
    ------
    DatasetError
        Malformed file; annotations without ``track_id`` in a file with
        ``video_id``; images of one file only partly carrying ``video_id``;
        or no usable annotation.
    """
    path = Path(annotations)
    data = read_annotation_json(path)
    with malformed_data(path, "video keypoint file"):
        return _load_clips(path, data, images_dir, layout)


def _load_clips(path: Path, data: dict, images_dir, layout: KeypointLayout) -> ClipDataset:
    if isinstance(data["images"], dict):
        raise DatasetError(f"{path}: Animal-Pose style files have no videos; use aptrack eval on it")
    images = {int(im["id"]): im for im in data["images"]}
    with_video = [im for im in images.values() if "video_id" in im]
    if with_video and len(with_video) != len(images):
        raise DatasetError(f"{path}: {len(images) - len(with_video)} of {len(images)} images have no video_id")
    has_video = bool(with_video)
    if has_video:
        missing = sum(1 for a in data["annotations"] if "track_id" not in a)
        if missing:
            raise DatasetError(f"{path}: {missing} annotation(s) have no track_id; "
                               "a video keypoint file needs track_id on every annotation")
    else:
        log.warning("%s has no video_id: every image is a one-frame clip (per-frame metrics only)", path.name)
    animals = load_keypoint_dataset(path, images_dir, layout, data=data)
    track_ids = animals.track_ids if has_video else np.arange(len(animals), dtype=np.int64)

    def frame_key(im):
        for key in FRAME_KEYS:
            if key in im:
                return (0, float(im[key]), str(im.get("file_name", "")))
        return (1, 0.0, str(im.get("file_name", "")))

    groups: dict[int, list[dict]] = {}
    for im in images.values():
        vid = int(im["video_id"]) if has_video else int(im["id"])
        groups.setdefault(vid, []).append(im)
    rows_by_image: dict[int, list[int]] = {}
    for r, iid in enumerate(animals.image_ids):
        rows_by_image.setdefault(int(iid), []).append(r)
    clips = []
    check_images = images_dir is not None
    images_dir = Path(images_dir) if check_images else Path(".")
    for vid in sorted(groups):
        frames = sorted(groups[vid], key=frame_key)
        ids = np.array([int(im["id"]) for im in frames], np.int64)
        files = tuple(str(images_dir / im["file_name"]) for im in frames)
        missing = [f for f in files if not Path(f).is_file()] if check_images else []
        if missing:
            log.warning("clip %d: %d of %d frame images missing; clip skipped", vid, len(missing), len(files))
            continue
        rows = tuple(np.array(rows_by_image.get(int(i), []), np.int64) for i in ids)
        clips.append(Clip(vid, ids, files, rows))
    if not clips:
        raise DatasetError(f"{path}: no clip with all its frame images in {images_dir}")
    return ClipDataset(animals, track_ids, tuple(clips), str(path))
