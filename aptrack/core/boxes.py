"""Box formats and their conversions; the only place that converts boxes.

Formats (all in pixels of the original frame, arrays of shape ``(N, 4)``):

``xyxy``
    ``x1, y1, x2, y2``: top-left and bottom-right corners.
``xywh``
    ``x1, y1, w, h``: top-left corner, width and height (COCO ``bbox``).
``cxcywh``
    ``cx, cy, w, h``: centre, width and height.
``xyah``
    ``cx, cy, a, h``: centre, aspect ratio ``a = w / h`` and height (the
    Kalman filter's measurement space, as in SORT/ByteTrack).

The ``*_scalar`` functions and the IoU loops are compiled (numba) for the
tracker's own compiled loops, which handle a few boxes per frame.
"""

from __future__ import annotations

import numba
import numpy as np


def _f(boxes) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def xyxy_to_xywh(boxes) -> np.ndarray:
    out = _f(boxes).copy()
    out[:, 2:] -= out[:, :2]
    return out


def xywh_to_xyxy(boxes) -> np.ndarray:
    out = _f(boxes).copy()
    out[:, 2:] += out[:, :2]
    return out


# The linear conversions are one (4, 4) matrix product each, ``out = boxes @ M``
# (rows of M: input coordinates, columns: output coordinates): the tracker
# converts a few boxes per call, where each NumPy call's overhead, not the
# arithmetic, sets the cost.
_XYXY_TO_CXCYWH = np.array([[0.5, 0.0, -1.0, 0.0],
                            [0.0, 0.5, 0.0, -1.0],
                            [0.5, 0.0, 1.0, 0.0],
                            [0.0, 0.5, 0.0, 1.0]])
_CXCYWH_TO_XYXY = np.array([[1.0, 0.0, 1.0, 0.0],
                            [0.0, 1.0, 0.0, 1.0],
                            [-0.5, 0.0, 0.5, 0.0],
                            [0.0, -0.5, 0.0, 0.5]])


def xyxy_to_cxcywh(boxes) -> np.ndarray:
    return _f(boxes) @ _XYXY_TO_CXCYWH


def cxcywh_to_xyxy(boxes) -> np.ndarray:
    return _f(boxes) @ _CXCYWH_TO_XYXY


def xyxy_to_xyah(boxes) -> np.ndarray:
    """Corners to centre, aspect ratio ``w / h`` and height; ``h`` of 0 gives ``a`` of 0."""
    out = xyxy_to_cxcywh(boxes)
    h = out[:, 3]
    out[:, 2] *= np.reciprocal(h, out=np.zeros_like(h), where=h > 0)
    return out


def xyah_to_xyxy(boxes) -> np.ndarray:
    out = _f(boxes).copy()
    out[:, 2] *= out[:, 3]
    return out @ _CXCYWH_TO_XYXY


def box_area_xyxy(boxes) -> np.ndarray:
    """Areas (N,) in pixels^2; boxes with corners swapped have area 0."""
    wh = np.maximum(_f(boxes) @ _XYXY_TO_CXCYWH[:, 2:], 0.0)
    return wh[:, 0] * wh[:, 1]


def box_diagonal_xyxy(boxes) -> np.ndarray:
    """Diagonal lengths (N,) float64 in pixels."""
    b = _f(boxes)
    return np.hypot(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])


def box_centre_distance_xyxy(a, b) -> np.ndarray:
    """Pairwise distances between box centres.

    Parameters
    ----------
    a : (N, 4) array_like, ``xyxy``
    b : (M, 4) array_like, ``xyxy``

    Returns
    -------
    (N, M) float64, pixels.
    """
    a, b = _f(a), _f(b)
    d = 0.5 * (b[:, :2] + b[:, 2:])[None] - 0.5 * (a[:, :2] + a[:, 2:])[:, None]  # (N, M, 2)
    return np.hypot(d[..., 0], d[..., 1])


def at_least_xyxy(boxes_xyxy, side: float) -> np.ndarray:
    """Boxes (N, 4) widened about their centres to at least ``side`` pixels wide and high."""
    b = np.asarray(boxes_xyxy, np.float64)
    centre, size = (b[:, :2] + b[:, 2:]) / 2, np.maximum(b[:, 2:] - b[:, :2], side)
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def grown_xyxy(box_xyxy, growth) -> np.ndarray:
    """``box_xyxy`` (4,) scaled about its centre by ``growth`` (scalar, or (2,) for width and height)."""
    b = np.asarray(box_xyxy, np.float64)
    centre, size = (b[:2] + b[2:]) / 2, np.maximum(b[2:] - b[:2], 1.0) * np.asarray(growth, np.float64)
    return np.concatenate([centre - size / 2, centre + size / 2])


def mirrored_xyxy(boxes, width: float) -> np.ndarray:
    """Boxes (N, 4) ``xyxy`` of an image mirrored left to right, in the pixels of the unmirrored one.

    ``width`` is the image's width in pixels; ``x`` becomes ``width - x``, so
    the left and right edges swap. Applying it twice gives the boxes back.
    """
    b = _f(boxes)
    return np.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], axis=1)


def widened_xyxy(boxes, buffer: float) -> np.ndarray:
    """Boxes (N, 4) grown by ``buffer`` times their width and height on each side."""
    b = _f(boxes)
    grow = (b[:, 2:] - b[:, :2]) * buffer
    return np.concatenate([b[:, :2] - grow, b[:, 2:] + grow], axis=1)


@numba.njit(cache=True)
def xyxy_to_xyah_scalar(x1, y1, x2, y2):  # pragma: no cover - compiled
    """:func:`xyxy_to_xyah` of one box, for compiled code."""
    h = y2 - y1
    return 0.5 * (x1 + x2), 0.5 * (y1 + y2), (x2 - x1) / h if h > 0 else 0.0, h


@numba.njit(cache=True)
def xyah_to_xyxy_scalar(cx, cy, a, h):  # pragma: no cover - compiled
    """:func:`xyah_to_xyxy` of one box, for compiled code."""
    half_w, half_h = 0.5 * a * h, 0.5 * h
    return cx - half_w, cy - half_h, cx + half_w, cy + half_h


@numba.njit(cache=True)
def box_area_scalar(x1, y1, x2, y2):  # pragma: no cover - compiled
    """:func:`box_area_xyxy` of one box, for compiled code (pass float64 values)."""
    return max(x2 - x1, 0.0) * max(y2 - y1, 0.0)


@numba.njit(cache=True)
def box_intersection_scalar(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2):  # pragma: no cover - compiled
    """The intersection area of two boxes (pixels^2, 0 when apart), for compiled code (float64 values)."""
    return max(min(ax2, bx2) - max(ax1, bx1), 0.0) * max(min(ay2, by2) - max(ay1, by1), 0.0)


@numba.njit(cache=True)
def box_iou_loops(a, b):  # pragma: no cover - compiled
    """:func:`box_iou_xyxy` of float64 (N, 4) and (M, 4) arrays, for compiled code."""
    iou = np.zeros((a.shape[0], b.shape[0]))
    for i in range(a.shape[0]):
        area_a = box_area_scalar(a[i, 0], a[i, 1], a[i, 2], a[i, 3])
        for j in range(b.shape[0]):
            area_b = box_area_scalar(b[j, 0], b[j, 1], b[j, 2], b[j, 3])
            inter = box_intersection_scalar(a[i, 0], a[i, 1], a[i, 2], a[i, 3], b[j, 0], b[j, 1], b[j, 2], b[j, 3])
            union = area_a + area_b - inter
            if union > 0:
                iou[i, j] = inter / union
    return iou


def box_iou_xyxy(a, b) -> np.ndarray:
    """Pairwise intersection over union.

    Parameters
    ----------
    a : (N, 4) array_like, ``xyxy``
    b : (M, 4) array_like, ``xyxy``

    Returns
    -------
    (N, M) float64 in ``[0, 1]``; 0 where both boxes have zero area.
    """
    return box_iou_loops(_f(a), _f(b))


def box_intersection_xyxy(a, b) -> np.ndarray:
    """Pairwise intersection areas.

    Parameters
    ----------
    a : (N, 4) array_like, ``xyxy``
    b : (M, 4) array_like, ``xyxy``

    Returns
    -------
    (N, M) float64, pixels^2 (0 for boxes that do not overlap).
    """
    a, b = _f(a).reshape(-1, 4), _f(b).reshape(-1, 4)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def box_share_inside_xyxy(a, b) -> np.ndarray:
    """Pairwise share of each box of ``a`` that lies inside each box of ``b`` (intersection over ``a``'s area).

    Parameters
    ----------
    a : (N, 4) array_like, ``xyxy``
    b : (M, 4) array_like, ``xyxy``

    Returns
    -------
    (N, M) float64 in ``[0, 1]``; 0 for a box of ``a`` with zero area.
    """
    a = _f(a).reshape(-1, 4)
    return box_intersection_xyxy(a, b) / np.maximum(box_area_xyxy(a), 1e-9)[:, None]


def xyxy_to_center_scale(boxes, aspect_ratio: float, padding: float = 1.25):
    """Box corners to the centre and size of a top-down crop.

    The box is grown to the crop's aspect ratio (``w / h``), never shrunk, then
    multiplied by ``padding``.

    Parameters
    ----------
    boxes : (N, 4) array_like, ``xyxy`` pixels
    aspect_ratio : float
        Width over height of the network input.
    padding : float
        Scale factor applied to the box (1.25 in SimpleBaseline/HRNet).

    Returns
    -------
    center : (N, 2) float64, pixels
    scale : (N, 2) float64, width and height in pixels of the region cropped
    """
    c = xyxy_to_cxcywh(boxes)
    w, h = c[:, 2].copy(), c[:, 3].copy()
    wide = w > h * aspect_ratio
    h[wide] = w[wide] / aspect_ratio
    w[~wide] = h[~wide] * aspect_ratio
    return c[:, :2], np.stack([w, h], axis=1) * padding


def xyxy_to_center_scale_float32(boxes_xyxy, aspect_ratio: float, padding: float = 1.25):
    """:func:`xyxy_to_center_scale` in float32 and in mmpose's order of operations.

    mmpose's ``GetBBoxCenterScale`` and ``TopdownAffine`` compute the region in
    float32 (padding first, then the aspect ratio); its UDP warp matrix is built
    in that dtype, so the UDP presets need these exact values.

    ``scale = (x2y2 - x1y1) * padding``, ``center = (x2y2 + x1y1) * 0.5``, then the
    size grown to ``aspect_ratio`` (``w / h``): ``(w, w / a)`` where ``w > h a``,
    else ``(h a, h)``.

    Parameters
    ----------
    boxes_xyxy : (N, 4) array_like, pixels
    aspect_ratio : float
    padding : float

    Returns
    -------
    centers : (N, 2) float32
    scales : (N, 2) float32
    """
    boxes = np.asarray(boxes_xyxy, np.float32).reshape(-1, 4)
    scales = (boxes[:, 2:] - boxes[:, :2]) * np.float32(padding)
    centers = (boxes[:, 2:] + boxes[:, :2]) * np.float32(0.5)
    w, h = scales[:, :1], scales[:, 1:]
    a = np.float32(aspect_ratio)
    scales = np.where(w > h * a, np.hstack([w, w / a]), np.hstack([h * a, h]))
    return centers, scales
