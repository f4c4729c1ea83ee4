"""Affine crops for top-down pose estimation.

Pixel convention: integer coordinates are pixel centres (OpenCV's), so an
image of width ``W`` spans ``[-0.5, W - 0.5]`` and its centre is
``(W - 1) / 2``. With this convention a horizontal flip maps ``x`` to
``W - 1 - x`` exactly, for images and for keypoints.
"""

from __future__ import annotations

import cv2
import numpy as np


def warp_matrix(center, scale, output_size, rotation_deg: float = 0.0) -> np.ndarray:
    """Affine matrix that maps a frame region onto a crop.

    Parameters
    ----------
    center : (2,) array_like
        Region centre ``x, y`` in frame pixels.
    scale : (2,) array_like
        Region width and height in frame pixels. Only the width sets the zoom
        (the caller keeps ``scale`` at the crop's aspect ratio).
    output_size : (int, int)
        Crop ``width, height`` in pixels.
    rotation_deg : float
        Counter-clockwise rotation of the content, in degrees.

    Returns
    -------
    (2, 3) float64 matrix ``M`` with ``crop_xy = M @ [x, y, 1]``.
    """
    cx, cy = float(center[0]), float(center[1])
    out_w, out_h = output_size
    zoom = out_w / float(scale[0])
    theta = np.deg2rad(rotation_deg)
    cos, sin = np.cos(theta) * zoom, np.sin(theta) * zoom
    # rotate + zoom about the region centre, then move it to the crop centre.
    # y points down, so a counter-clockwise rotation on screen uses +sin on x.
    linear = np.array([[cos, sin], [-sin, cos]])
    offset = np.array([(out_w - 1) / 2.0, (out_h - 1) / 2.0]) - linear @ np.array([cx, cy])
    return np.hstack([linear, offset[:, None]])


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine matrix."""
    m = np.asarray(matrix, dtype=np.float64)
    linear_inv = np.linalg.inv(m[:, :2])
    return np.hstack([linear_inv, -(linear_inv @ m[:, 2])[:, None]])


def apply_affine(points, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to points of shape ``(..., 2)``; returns float64."""
    p = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    return p @ m[:, :2].T + m[:, 2]


def crop(image: np.ndarray, matrix: np.ndarray, output_size,
         border_value=(0, 0, 0)) -> np.ndarray:
    """Warp ``image`` (H, W, C) uint8 into a new crop of ``output_size`` (w, h)."""
    return cv2.warpAffine(image, np.asarray(matrix, np.float64), tuple(int(v) for v in output_size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=border_value)


def flip_keypoints_x(keypoints, width: int, flip_pairs) -> np.ndarray:
    """Mirror keypoints ``(..., K, 2)`` across a crop of ``width`` and swap left/right.

    Returns a new array; the input is not modified.
    """
    out = np.array(keypoints, dtype=np.float64, copy=True)
    out[..., 0] = (width - 1) - out[..., 0]
    return swap_pairs(out, flip_pairs, axis=-2)


def swap_pairs(array, flip_pairs, axis: int) -> np.ndarray:
    """Return a copy of ``array`` with the entries of each flip pair exchanged along ``axis``."""
    arr = np.asarray(array)
    order = np.arange(arr.shape[axis])
    for a, b in flip_pairs:
        order[a], order[b] = b, a
    return np.take(arr, order, axis=axis)
