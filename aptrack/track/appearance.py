"""Cheap appearance embeddings for re-identification: a small colour thumbnail of each box.

An animal that comes back from behind cover far from where it went in has no
box overlap with its lost track; its look is what is left to know it by. The
embedding is the box's central part (``inner_fraction`` of its width and
height, which leaves out most of the background) shrunk to ``width`` x
``height`` pixels, minus its mean colour per channel, as a unit vector. It
keeps the animal's layout, so it tells an animal from its mirror image (two
look-alikes facing opposite ways), which a colour histogram or a pooled CNN
feature would not. One resize per box: about 20 us.
"""

from __future__ import annotations

import cv2
import numpy as np

from aptrack.core.instances import Instances
from aptrack.track.config import AppearanceConfig


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
    h_img, w_img, channels = frame.shape
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    out = np.zeros((len(boxes), width * height * channels), np.float32)
    centres = 0.5 * (boxes[:, :2] + boxes[:, 2:])
    half = 0.5 * inner_fraction * (boxes[:, 2:] - boxes[:, :2])
    lo = np.floor(np.clip(centres - half, 0, [w_img, h_img])).astype(np.int64)
    hi = np.ceil(np.clip(centres + half, 0, [w_img, h_img])).astype(np.int64)
    for i in range(len(boxes)):
        (x1, y1), (x2, y2) = lo[i], hi[i]
        if x2 <= x1 or y2 <= y1:
            continue
        thumb = cv2.resize(frame[y1:y2, x1:x2], (width, height), interpolation=cv2.INTER_AREA)
        thumb = thumb.reshape(height * width, channels).astype(np.float32)
        thumb -= thumb.mean(axis=0)
        norm = float(np.linalg.norm(thumb))
        if norm > 1e-6:
            out[i] = thumb.reshape(-1) / norm
    return out


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
