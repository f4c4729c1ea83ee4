"""Cheap appearance embeddings for re-identification: a small colour thumbnail of each box.

An animal that comes back from behind cover far from where it went in has no
box overlap with its lost track; its look is what is left to know it by. The
embedding is the box's central part (``inner_fraction`` of its width and
height, which leaves out most of the background) shrunk to ``width`` x
``height`` pixels, minus its mean colour per channel, as a unit vector. It
keeps the animal's layout, so it tells an animal from its mirror image (two
look-alikes facing opposite ways), which a colour histogram or a pooled CNN
feature would not. One resize per box: about 20 us.

:func:`colour_histograms` is the other way round: a hue-saturation histogram
knows no layout, so the part of an animal in view still matches its whole.
The propagator of known animals (:mod:`aptrack.track.propagate`) uses it to
tell whether an animal's box shows that animal or whatever covers it.
"""

from __future__ import annotations

import cv2
import numpy as np

from aptrack.core.instances import Instances
from aptrack.track.config import AppearanceConfig


def _unit_rows(frame: np.ndarray, boxes_xyxy, length: int, describe) -> np.ndarray:
    """(N, length) float32: row i is ``describe(crop)`` (a centred vector of ``length``) of box i's pixels,
    scaled to unit length; all zeros where the box, clipped to the frame, holds no pixel or the vector is
    flat."""
    h_img, w_img = frame.shape[:2]
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    out = np.zeros((len(boxes), length), np.float32)
    lo = np.floor(np.clip(boxes[:, :2], 0, [w_img, h_img])).astype(np.int64)
    hi = np.ceil(np.clip(boxes[:, 2:], 0, [w_img, h_img])).astype(np.int64)
    for i in range(len(boxes)):
        (x1, y1), (x2, y2) = lo[i], hi[i]
        if x2 <= x1 or y2 <= y1:
            continue
        vector = describe(frame[y1:y2, x1:x2])
        norm = float(np.linalg.norm(vector))
        if norm > 1e-6:
            out[i] = vector / norm
    return out


def thumbnail_embeddings(frame: np.ndarray, boxes_xyxy: np.ndarray, width: int = 8, height: int = 8,
                         inner_fraction: float = 0.8) -> np.ndarray:
    """Unit-length thumbnail embeddings of boxes.

    Parameters
    ----------
    frame : (H, W, C) uint8 array
        The image (BGR or grey with C = 1).
    boxes_xyxy : (N, 4) array_like
        Boxes in pixels of ``frame``.
    width, height : int
        Thumbnail size in pixels.
    inner_fraction : float in (0, 1]
        Part of the box's width and height kept about its centre.

    Returns
    -------
    (N, width * height * C) float32
        Each row has unit length, or is all zeros where the box holds no pixel
        of the frame or is of one colour (no embedding).
    """
    frame = frame if frame.ndim == 3 else frame[:, :, None]
    channels = frame.shape[2]
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    centres = 0.5 * (boxes[:, :2] + boxes[:, 2:])
    half = 0.5 * inner_fraction * (boxes[:, 2:] - boxes[:, :2])

    def thumbnail(crop: np.ndarray) -> np.ndarray:
        thumb = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
        thumb = thumb.reshape(height * width, channels).astype(np.float32)
        return (thumb - thumb.mean(axis=0)).reshape(-1)  # each channel less its mean

    return _unit_rows(frame, np.concatenate([centres - half, centres + half], axis=1),
                      width * height * channels, thumbnail)


def colour_histograms(frame: np.ndarray, boxes_xyxy: np.ndarray, hue_bins: int = 16,
                      saturation_bins: int = 8, grey: bool = False) -> np.ndarray:
    """Hue-saturation histograms of boxes, centred and of unit length.

    The dot product of two rows is the Pearson correlation of the two
    histograms (OpenCV's ``HISTCMP_CORREL``). A histogram does not know where
    in the box a colour lies, so a part of an animal (the sliver of one
    coming out from cover) matches the whole animal.

    Parameters
    ----------
    frame : (H, W, 3) uint8 array
        BGR image.
    boxes_xyxy : (N, 4) array_like
        Boxes in pixels of ``frame``.
    hue_bins, saturation_bins : int
        Bins over OpenCV's hue range [0, 180) and saturation range [0, 256).
    grey : bool
        Histograms of the grey level instead (``hue_bins * saturation_bins``
        bins over [0, 256)), for a grey video, where every pixel has hue and
        saturation 0 (see :func:`has_colour`).

    Returns
    -------
    (N, hue_bins * saturation_bins) float32
        Unit rows; all zeros where the box holds no pixel of the frame.
    """
    def histogram(crop: np.ndarray) -> np.ndarray:
        crop = np.ascontiguousarray(crop)
        if grey:
            hist = cv2.calcHist([crop], [0], None, [hue_bins * saturation_bins], [0, 256]).reshape(-1)
        else:
            hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
            hist = cv2.calcHist([hsv], [0, 1], None, [hue_bins, saturation_bins], [0, 180, 0, 256]).reshape(-1)
        return hist - hist.mean()

    return _unit_rows(frame, boxes_xyxy, hue_bins * saturation_bins, histogram)


def has_colour(frame: np.ndarray) -> bool:
    """Whether a (H, W, 3) BGR frame has a pixel whose channels differ (False for a grey video)."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        return False
    return bool((frame[..., 0] != frame[..., 1]).any() or (frame[..., 1] != frame[..., 2]).any())


class AppearanceEmbedder:
    """Adds ``embeddings`` to a frame's Instances (a pipeline stage between pose and tracking).

    Parameters
    ----------
    config : AppearanceConfig
        ``kind`` ``"thumbnail"`` (see :func:`thumbnail_embeddings`); ``"none"``
        returns the instances unchanged.
    """

    def __init__(self, config: AppearanceConfig = AppearanceConfig()):
        self.config = config

    @property
    def enabled(self) -> bool:
        return self.config.kind != "none"

    def __call__(self, frame: np.ndarray, instances: Instances) -> Instances:
        if not self.enabled:
            return instances
        cfg = self.config
        return instances.with_(embeddings=thumbnail_embeddings(frame, instances.boxes_xyxy, cfg.width, cfg.height,
                                                               cfg.inner_fraction))
