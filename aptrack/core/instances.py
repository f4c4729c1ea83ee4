"""The one record that flows through every stage of the pipeline.

A detector creates an :class:`Instances`, the pose estimator returns a copy with
keypoints filled in, the tracker returns a copy with track ids.  An empty
result is an empty :class:`Instances`, never ``None`` or ``[]``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

UNTRACKED = -1
"""Track id of an instance that no tracker has assigned yet."""


def _as(array, dtype, shape_tail: tuple[int, ...], name: str) -> np.ndarray:
    out = np.asarray(array, dtype=dtype)
    if out.ndim != 1 + len(shape_tail) or tuple(out.shape[1:]) != shape_tail:
        want = "(N" + "".join(f", {d}" for d in shape_tail) + ")"
        raise ValueError(f"{name} must have shape {want}, got {out.shape}")
    return out


def _stack_embeddings(parts: list[np.ndarray]) -> np.ndarray:
    """Rows of several (N_i, D_i) embedding arrays; parts without embeddings (D 0, or another D
    than the first non-empty part's) get zero rows, as an embedding is optional per instance."""
    dims = [e.shape[1] for e in parts if e.shape[1]]
    d = dims[0] if dims else 0
    return np.concatenate([e if e.shape[1] == d else np.zeros((len(e), d), np.float32) for e in parts])


_ARRAY_FIELDS = ("boxes_xyxy", "scores", "labels", "categories", "keypoints", "keypoint_scores", "track_ids",
                 "embeddings", "interpolated", "extents")


@dataclass(frozen=True, eq=False)
class Instances:
    """Animals found in one video frame.

    Parameters
    ----------
    boxes_xyxy : (N, 4) float32
        Boxes as ``x1, y1, x2, y2`` in pixels of the original frame.
    scores : (N,) float32
        Detection confidence in ``[0, 1]``.
    labels : (N,) int64
        Class index; ``0`` is the merged "animal" class.
    categories : (N,) object
        Species name per instance (e.g. ``"dog"``), ``""`` if unknown.
    keypoints : (N, K, 2) float32
        Keypoint ``x, y`` in pixels of the original frame. ``K`` is 0 when no
        pose was estimated.
    keypoint_scores : (N, K) float32
        Confidence of each keypoint in ``[0, 1]``.
    track_ids : (N,) int64
        Track identity, :data:`UNTRACKED` (-1) before tracking.
    frame_index : int
        0-based index of the frame in its video.
    embeddings : (N, D) float32
        Appearance embedding per instance (unit length), for re-identification;
        ``D`` is 0 when none was computed.
    interpolated : (N,) bool
        True where the instance was not observed but filled in over a gap of
        its track (see :mod:`aptrack.track.interpolate`).
    extents : (N,) float32
        The fraction of the box that the detector's foreground mask fills, in
        ``[0, 1]`` (the background detector's blobs); NaN where the detector
        gives no mask.
    """

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    labels: np.ndarray | None = None
    categories: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    keypoint_scores: np.ndarray | None = None
    track_ids: np.ndarray | None = None
    frame_index: int = 0
    embeddings: np.ndarray | None = None
    interpolated: np.ndarray | None = None
    extents: np.ndarray | None = None

    def __post_init__(self) -> None:
        boxes = _as(self.boxes_xyxy, np.float32, (4,), "boxes_xyxy")
        n = len(boxes)
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        labels = (np.zeros(n, np.int64) if self.labels is None
                  else np.asarray(self.labels, dtype=np.int64).reshape(-1))
        categories = (np.full(n, "", dtype=object) if self.categories is None
                      else np.asarray(list(self.categories), dtype=object).reshape(-1))
        if self.keypoints is None:
            keypoints = np.zeros((n, 0, 2), np.float32)
        else:
            keypoints = np.asarray(self.keypoints, dtype=np.float32)
            if keypoints.ndim != 3 or keypoints.shape[2] != 2:
                raise ValueError(f"keypoints must have shape (N, K, 2), got {keypoints.shape}")
        k = keypoints.shape[1]
        kp_scores = (np.ones((n, k), np.float32) if self.keypoint_scores is None
                     else _as(self.keypoint_scores, np.float32, (k,), "keypoint_scores"))
        track_ids = (np.full(n, UNTRACKED, np.int64) if self.track_ids is None
                     else np.asarray(self.track_ids, dtype=np.int64).reshape(-1))
        embeddings = (np.zeros((n, 0), np.float32) if self.embeddings is None
                      else np.asarray(self.embeddings, dtype=np.float32))
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings must have shape (N, D), got {embeddings.shape}")
        interpolated = (np.zeros(n, np.bool_) if self.interpolated is None
                        else np.asarray(self.interpolated, dtype=np.bool_).reshape(-1))
        extents = (np.full(n, np.nan, np.float32) if self.extents is None
                   else np.asarray(self.extents, dtype=np.float32).reshape(-1))
        for name, arr in (("scores", scores), ("labels", labels), ("categories", categories),
                          ("keypoints", keypoints), ("keypoint_scores", kp_scores),
                          ("track_ids", track_ids), ("embeddings", embeddings), ("interpolated", interpolated),
                          ("extents", extents)):
            if len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} rows but boxes_xyxy has {n}")
        set_ = object.__setattr__
        set_(self, "boxes_xyxy", boxes)
        set_(self, "scores", scores)
        set_(self, "labels", labels)
        set_(self, "categories", categories)
        set_(self, "keypoints", keypoints)
        set_(self, "keypoint_scores", kp_scores)
        set_(self, "track_ids", track_ids)
        set_(self, "frame_index", int(self.frame_index))
        set_(self, "embeddings", embeddings)
        set_(self, "interpolated", interpolated)
        set_(self, "extents", extents)
        for arr in (boxes, scores, labels, categories, keypoints, kp_scores, track_ids, embeddings, interpolated,
                    extents):
            arr.flags.writeable = False

    # -- construction -------------------------------------------------------
    @classmethod
    def empty(cls, num_keypoints: int = 0, frame_index: int = 0) -> "Instances":
        """An instance set with no animals, keypoint dimension ``num_keypoints``."""
        return cls(
            boxes_xyxy=np.zeros((0, 4), np.float32),
            scores=np.zeros(0, np.float32),
            keypoints=np.zeros((0, num_keypoints, 2), np.float32),
            keypoint_scores=np.zeros((0, num_keypoints), np.float32),
            frame_index=frame_index,
        )

    def with_(self, **changes) -> "Instances":
        """Return a copy with some fields replaced (inputs are never mutated)."""
        return replace(self, **changes)

    @classmethod
    def concatenate(cls, parts: Sequence["Instances"], frame_index: int | None = None) -> "Instances":
        """Stack several instance sets of the same frame and keypoint count."""
        if not parts:
            return cls.empty(frame_index=frame_index or 0)
        return cls(
            boxes_xyxy=np.concatenate([p.boxes_xyxy for p in parts]),
            scores=np.concatenate([p.scores for p in parts]),
            labels=np.concatenate([p.labels for p in parts]),
            categories=np.concatenate([p.categories for p in parts]),
            keypoints=np.concatenate([p.keypoints for p in parts]),
            keypoint_scores=np.concatenate([p.keypoint_scores for p in parts]),
            track_ids=np.concatenate([p.track_ids for p in parts]),
            frame_index=parts[0].frame_index if frame_index is None else frame_index,
            embeddings=_stack_embeddings([p.embeddings for p in parts]),
            interpolated=np.concatenate([p.interpolated for p in parts]),
            extents=np.concatenate([p.extents for p in parts]),
        )

    # -- access ---------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.boxes_xyxy)

    @property
    def num_keypoints(self) -> int:
        return self.keypoints.shape[1]

    @property
    def has_pose(self) -> bool:
        return self.num_keypoints > 0

    def __getitem__(self, index) -> "Instances":
        """Select instances by boolean mask, integer array or slice."""
        return self.take(index)

    def take(self, index, **changes) -> "Instances":
        """Select instances (boolean mask, integer array or slice) and replace
        some fields of the selection in the same step, e.g. ``track_ids``."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        fields = {name: getattr(self, name)[index] for name in _ARRAY_FIELDS if name not in changes}
        fields["frame_index"] = self.frame_index
        if not changes.keys() - {"track_ids"}:
            # rows of a validated set are valid: only new track ids need checking
            if "track_ids" in changes:
                ids = np.array(changes["track_ids"], dtype=np.int64).reshape(-1)
                if len(ids) != len(fields["boxes_xyxy"]):
                    raise ValueError(f"track_ids has {len(ids)} rows but the selection has "
                                     f"{len(fields['boxes_xyxy'])}")
                fields["track_ids"] = ids
            return Instances._from_valid(fields)
        fields.update(changes)
        return Instances(**fields)

    @classmethod
    def _from_valid(cls, fields: dict) -> "Instances":
        """Build from arrays already known to have the right dtypes and shapes (no copies, no checks)."""
        out = object.__new__(cls)
        for value in fields.values():
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
        out.__dict__.update(fields)  # a frozen dataclass refuses setattr, not its __dict__
        return out
