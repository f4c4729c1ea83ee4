"""Keypoint datasets: COCO keypoint json (AP-10K, APT-36K, APTv2) and Animal-Pose.

Every loader returns one :class:`KeypointDataset`: flat arrays with one row per
annotated animal, already in the model's keypoint layout. A dataset written in
another layout is mapped by keypoint name when it holds every keypoint of the
model's layout (a reordering, e.g. the Animal-Pose file's order into mmpose's),
else with a table from ``configs/mappings/`` (data, not code), the same table
for training and evaluation.

Two json dialects are read:

* standard COCO: ``images`` is a list of ``{id, file_name, width, height}``,
  ``bbox`` is ``[x, y, w, h]`` and ``keypoints`` is a flat ``[x, y, v] * K``;
* Animal-Pose: ``images`` is a dict ``{id: file_name}``, ``bbox`` is
  ``[x1, y1, x2, y2]`` and ``keypoints`` is a list of ``[x, y, v]`` triples.

Bad rows never stop a load: annotations whose image is missing, whose keypoint
array has the wrong length or whose box lies outside the image are skipped and
counted (``KeypointDataset.skipped``, logged as a warning). A file that is not
json, has no usable annotation, or needs a mapping that does not exist raises
:class:`~aptrack.core.errors.DatasetError`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aptrack.core import resources
from aptrack.core.boxes import xywh_to_xyxy
from aptrack.core.config import read_yaml
from aptrack.core.errors import ConfigError, DatasetError, malformed_data
from aptrack.core.layout import KeypointLayout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeypointMapping:
    """Source keypoints -> target layout; each target is the mean of its sources.

    Parameters
    ----------
    source, target : str
        Layout names.
    source_keypoints : tuple of str
        Source keypoint names in the source file's order.
    rules : tuple of (str, tuple of str)
        Target keypoint name -> source names. A target is labelled only when
        all its sources are.
    """

    source: str
    target: str
    source_keypoints: tuple[str, ...]
    rules: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def from_dict(cls, data: dict, where: str = "mapping") -> "KeypointMapping":
        try:
            source_kps = tuple(str(k) for k in data["source_keypoints"])
            rules = tuple((str(t), tuple(str(s) for s in srcs)) for t, srcs in data["map"].items())
            mapping = cls(str(data["source"]), str(data["target"]), source_kps, rules)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{where}: malformed keypoint mapping ({exc})") from None
        unknown = sorted({s for _, srcs in rules for s in srcs} - set(source_kps))
        if unknown:
            raise ConfigError(f"{where}: unknown source keypoint(s) {', '.join(unknown)}")
        return mapping

    def matrix(self, layout: KeypointLayout) -> np.ndarray:
        """(K_target, K_source) float64 averaging matrix for ``layout``."""
        unknown = sorted({t for t, _ in self.rules} - set(layout.keypoints))
        if unknown:
            raise ConfigError(f"mapping {self.source}->{self.target}: target keypoint(s) "
                              f"{', '.join(unknown)} not in layout {layout.name}")
        m = np.zeros((layout.num_keypoints, len(self.source_keypoints)))
        for target, sources in self.rules:
            for s in sources:
                m[layout.keypoints.index(target), self.source_keypoints.index(s)] = 1.0 / len(sources)
        return m

    def apply(self, keypoints: np.ndarray, visible: np.ndarray, layout: KeypointLayout):
        """Map keypoints ``(N, K_source, 2)`` and labels ``(N, K_source)`` into ``layout``.

        Returns
        -------
        keypoints : (N, K_target, 2) float32; unlabelled targets are 0
        visible : (N, K_target) bool
        """
        m = self.matrix(layout)
        kp = np.asarray(keypoints, np.float64)
        vis = np.asarray(visible) > 0
        used = m > 0
        out_vis = np.stack([np.all(vis[:, used[t]], axis=1) if used[t].any()
                            else np.zeros(len(vis), bool) for t in range(len(m))], axis=1)
        out_kp = np.einsum("ts,nsc->ntc", m, kp) * out_vis[..., None]
        return out_kp.astype(np.float32), out_vis


def load_mapping(path: str | Path) -> KeypointMapping:
    path = Path(path)
    return KeypointMapping.from_dict(read_yaml(path) or {}, str(path))


def mapping_by_name(source_keypoints, layout: KeypointLayout) -> KeypointMapping | None:
    """Each keypoint of ``layout`` taken from the source keypoint of the same name.

    Returns None unless every keypoint name of ``layout`` is among
    ``source_keypoints`` (extra source keypoints are dropped).
    """
    names = tuple(str(k) for k in source_keypoints)
    if not set(layout.keypoints) <= set(names):
        return None
    return KeypointMapping(source="file", target=layout.name, source_keypoints=names,
                           rules=tuple((k, (k,)) for k in layout.keypoints))


def find_mapping(source_keypoints, layout: KeypointLayout) -> KeypointMapping | None:
    """How to bring these source keypoint names into ``layout``.

    By name when the source holds every keypoint of ``layout``
    (:func:`mapping_by_name`), else the table in ``configs/mappings/`` from
    exactly these names to ``layout``; None when neither exists.
    """
    names = tuple(source_keypoints)
    by_name = mapping_by_name(names, layout)
    if by_name is not None:
        return by_name
    for path in sorted(resources.folder("mappings").glob("*.yaml")):
        mapping = load_mapping(path)
        if mapping.target == layout.name and mapping.source_keypoints == names:
            return mapping
    return None


@dataclass(frozen=True)
class KeypointDataset:
    """Annotated animals, one row each, keypoints in the model's layout.

    Attributes
    ----------
    image_ids : (N,) int64
    files : (N,) object, image paths
    image_sizes : (N, 2) int64, ``width, height`` in pixels
    boxes_xyxy : (N, 4) float32, frame pixels, clipped to the image
    keypoints : (N, K, 2) float32, frame pixels
    visible : (N, K) bool, keypoint is labelled
    categories : (N,) object, species name
    layout : KeypointLayout
    skipped : dict, reason -> number of annotations dropped at load time
    track_ids : (N,) int64, the annotation's ``track_id`` (-1 when the file has none)
    """

    image_ids: np.ndarray
    files: np.ndarray
    image_sizes: np.ndarray
    boxes_xyxy: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    categories: np.ndarray
    layout: KeypointLayout
    skipped: dict = field(default_factory=dict)
    track_ids: np.ndarray | None = None

    def __post_init__(self):
        if self.track_ids is None:
            object.__setattr__(self, "track_ids", np.full(len(self.image_ids), -1, np.int64))

    def __len__(self) -> int:
        return len(self.image_ids)

    def subset(self, index) -> "KeypointDataset":
        """Rows picked by an index array or boolean mask."""
        idx = np.asarray(index)
        return KeypointDataset(self.image_ids[idx], self.files[idx], self.image_sizes[idx],
                               self.boxes_xyxy[idx], self.keypoints[idx], self.visible[idx],
                               self.categories[idx], self.layout, dict(self.skipped),
                               self.track_ids[idx])

    @property
    def num_labelled(self) -> np.ndarray:
        """(N,) int, labelled keypoints per animal."""
        return self.visible.sum(axis=1)

    def to_coco(self) -> dict:
        """Standard COCO keypoint ground truth in the dataset's layout.

        ``area`` is the box area (the files give no segmentation); species are
        numbered 1.. in order of first appearance, sorted by name.
        """
        names = sorted(set(self.categories.tolist()))
        cat_id = {n: i + 1 for i, n in enumerate(names)}
        images, seen = [], set()
        for iid, f, (w, h) in zip(self.image_ids, self.files, self.image_sizes):
            if int(iid) not in seen:
                seen.add(int(iid))
                images.append({"id": int(iid), "file_name": Path(f).name,
                               "width": int(w), "height": int(h)})
        annotations = []
        for i in range(len(self)):
            x1, y1, x2, y2 = (float(v) for v in self.boxes_xyxy[i])
            kp = np.concatenate([self.keypoints[i], 2.0 * self.visible[i][:, None]], axis=1)
            kp[~self.visible[i]] = 0.0
            annotations.append({
                "id": i + 1, "image_id": int(self.image_ids[i]),
                "category_id": cat_id[self.categories[i]],
                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                "iscrowd": 0, "num_keypoints": int(self.visible[i].sum()),
                "keypoints": [round(float(v), 3) for v in kp.reshape(-1)]})
        categories = [{"id": cat_id[n], "name": n, "supercategory": "animal",
                       "keypoints": list(self.layout.keypoints),
                       "skeleton": [[a + 1, b + 1] for a, b in self.layout.skeleton]}
                      for n in names]
        return {"images": images, "annotations": annotations, "categories": categories}


def read_json(path: Path, what: str = "annotation file"):
    """Parse a json file; a missing or malformed file is one :class:`DatasetError` line."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise DatasetError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid json ({exc.__class__.__name__})") from None


def read_annotation_json(path: Path) -> dict:
    """A COCO-style keypoint file (any dialect aptrack reads): a mapping with images and annotations."""
    data = read_json(path)
    if not isinstance(data, dict) or "annotations" not in data or "images" not in data:
        raise DatasetError(f"{path}: not a COCO-style keypoint file (needs 'images' and 'annotations')")
    return data


def _image_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from the image header, or None if it cannot be read."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, UnidentifiedImageError):
        return None


def load_keypoint_dataset(annotations: str | Path, images_dir: str | Path | None,
                          layout: KeypointLayout, mapping: KeypointMapping | None = None,
                          min_box_size: float = 2.0, data: dict | None = None) -> KeypointDataset:
    """Load a COCO-style keypoint file (either dialect) into ``layout``.

    Parameters
    ----------
    annotations : path to the json file
    images_dir : folder holding the images named in the file, or None to score
        annotations without images (sizes then come from the json alone, and
        boxes are clipped only where the json gives them)
    layout : the model's keypoint layout
    mapping : optional table from the file's keypoints to ``layout``; when None
        and the file's keypoint names differ from the layout's, a table is looked
        up in ``configs/mappings/``.
    min_box_size : boxes narrower or lower than this (pixels, after clipping to
        the image) are skipped.
    data : the file's content when the caller has already parsed it (it is
        then not read again)

    Raises
    ------
    DatasetError
        Unreadable file, no mapping for its keypoints, or no usable annotation.
    """
    path = Path(annotations)
    data = read_annotation_json(path) if data is None else data
    with malformed_data(path, "keypoint file"):
        return _load_keypoint_dataset(path, data, images_dir, layout, mapping, min_box_size)


def _load_keypoint_dataset(path: Path, data: dict, images_dir, layout: KeypointLayout,
                           mapping: KeypointMapping | None, min_box_size: float) -> KeypointDataset:
    check_images = images_dir is not None
    images_dir = Path(images_dir) if check_images else Path(".")
    if check_images and not images_dir.is_dir():
        raise DatasetError(f"image folder not found: {images_dir}")
    animalpose = isinstance(data["images"], dict)
    cats = {int(c["id"]): c for c in data.get("categories", []) if "id" in c}
    if not cats:
        raise DatasetError(f"{path}: no categories")
    source_names = tuple(next(iter(cats.values())).get("keypoints", ()))
    if animalpose:
        images = {int(k): {"file_name": v} for k, v in data["images"].items()}
    else:
        images = {int(im["id"]): im for im in data["images"]}
    if mapping is None and source_names and source_names != layout.keypoints:
        mapping = find_mapping(source_names, layout)
        if mapping is None:
            raise DatasetError(f"{path}: its keypoints ({len(source_names)}: {', '.join(source_names[:3])}, …) "
                               f"are not layout '{layout.name}' and no table in {resources.folder('mappings')} maps them")
    k_src = len(mapping.source_keypoints) if mapping else layout.num_keypoints

    skipped: Counter = Counter()
    sizes: dict[int, tuple[int, int] | None] = {}
    rows = {"image_ids": [], "files": [], "sizes": [], "boxes": [], "kps": [], "vis": [], "cats": [],
            "tracks": []}
    for ann in data["annotations"]:
        try:
            iid = int(ann["image_id"])
            kp = np.asarray(ann["keypoints"], np.float64).reshape(-1)
            box = np.asarray(ann["bbox"], np.float64).reshape(4)
            cat = cats[int(ann["category_id"])]["name"]
            track = int(ann.get("track_id", -1))
        except (KeyError, TypeError, ValueError):
            skipped["malformed annotation"] += 1
            continue
        if kp.size != 3 * k_src:
            skipped[f"keypoint array of length {kp.size}, expected {3 * k_src}"] += 1
            continue
        if iid not in images:
            skipped["image id not in the file"] += 1
            continue
        if iid not in sizes:
            im = images[iid]
            file = images_dir / str(im.get("file_name", ""))
            if not check_images:
                sizes[iid] = (int(im.get("width", 0)), int(im.get("height", 0)))
            elif "width" in im and "height" in im and file.is_file():
                sizes[iid] = (int(im["width"]), int(im["height"]))
            else:
                sizes[iid] = _image_size(file) if file.is_file() else None
        if sizes[iid] is None:
            skipped["missing or unreadable image"] += 1
            continue
        w, h = sizes[iid]
        xyxy = box if animalpose else xywh_to_xyxy(box[None])[0]
        if w > 0 and h > 0:
            xyxy = np.clip(xyxy, [0, 0, 0, 0], [w, h, w, h])
        if xyxy[2] - xyxy[0] < min_box_size or xyxy[3] - xyxy[1] < min_box_size:
            skipped["box outside the image or empty"] += 1
            continue
        triples = kp.reshape(k_src, 3)
        rows["image_ids"].append(iid)
        rows["files"].append(str(images_dir / images[iid]["file_name"]))
        rows["sizes"].append((w, h))
        rows["boxes"].append(xyxy)
        rows["kps"].append(triples[:, :2])
        rows["vis"].append(triples[:, 2] > 0)
        rows["cats"].append(cat)
        rows["tracks"].append(track)
    for reason, n in sorted(skipped.items()):
        log.warning("%s: skipped %d annotation(s): %s", path.name, n, reason)
    if not rows["image_ids"]:
        raise DatasetError(f"{path}: no usable annotation"
                           + (f" (skipped: {dict(skipped)})" if skipped else ""))
    kps = np.asarray(rows["kps"], np.float32)
    vis = np.asarray(rows["vis"], bool)
    if mapping is not None:
        kps, vis = mapping.apply(kps, vis, layout)
    # a labelled keypoint at (0, 0) in COCO files means "unlabelled" in practice too
    vis &= ~np.all(kps == 0, axis=-1)
    kps[~vis] = 0.0
    return KeypointDataset(
        image_ids=np.asarray(rows["image_ids"], np.int64),
        files=np.asarray(rows["files"], object),
        image_sizes=np.asarray(rows["sizes"], np.int64),
        boxes_xyxy=np.asarray(rows["boxes"], np.float32),
        keypoints=kps, visible=vis,
        categories=np.asarray(rows["cats"], object),
        layout=layout, skipped=dict(skipped), track_ids=np.asarray(rows["tracks"], np.int64))


def split_by_image(dataset: KeypointDataset, val_instances: int, seed: int):
    """Seeded split by image: whole images go to validation until it holds
    at least ``val_instances`` animals.

    Returns
    -------
    train_index, val_index : (N_train,), (N_val,) int64 row indices, disjoint

    Raises
    ------
    DatasetError
        If either side would be empty.
    """
    ids = np.unique(dataset.image_ids)
    order = np.random.default_rng(seed).permutation(ids)
    counts = Counter(dataset.image_ids.tolist())
    val_ids, total = [], 0
    for iid in order:
        if total >= val_instances:
            break
        val_ids.append(int(iid))
        total += counts[int(iid)]
    is_val = np.isin(dataset.image_ids, val_ids)
    train_index, val_index = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if len(train_index) == 0 or len(val_index) == 0:
        raise DatasetError(f"split of {len(dataset)} animals with {val_instances} for validation "
                           f"leaves an empty side (train {len(train_index)}, val {len(val_index)})")
    return train_index, val_index


SPLITS = ("all", "train", "val")


def select_split(dataset: KeypointDataset, split: str, val_instances: int, seed: int) -> KeypointDataset:
    """``all``, or the ``train`` / ``val`` side of :func:`split_by_image`."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
    if split == "all":
        return dataset
    train_index, val_index = split_by_image(dataset, val_instances, seed)
    return dataset.subset(train_index if split == "train" else val_index)
