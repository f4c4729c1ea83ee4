"""Pure functions on cost and similarity matrices for track-detection assignment."""

from __future__ import annotations

import lap
import numpy as np

from ..boxes import box_area_xyxy, box_iou_xyxy


def linear_assignment(cost: np.ndarray, thresh: float):
    """Minimum-cost one-to-one assignment, ignoring pairs that cost more than ``thresh``.

    Parameters
    ----------
    cost : (N, M) array_like
        Cost of assigning row ``i`` (a track) to column ``j`` (a detection).
    thresh : float
        Pairs with cost above this stay unassigned.

    Returns
    -------
    matches : (P, 2) int64 array of ``(row, col)``
    unmatched_rows : (N - P,) int64
    unmatched_cols : (M - P,) int64
    """
    cost = np.asarray(cost, dtype=np.float64)
    n, m = cost.shape
    if n == 0 or m == 0:
        return np.zeros((0, 2), np.int64), np.arange(n), np.arange(m)
    # When every row's cheapest column is a different column (or, with more rows
    # than columns, every column's cheapest row a different row), taking those
    # pairs is the optimum, as nothing beats each row's (column's) minimum: the
    # common case of well-separated animals, solved in plain Python without the
    # LAP solver (the matrices are a few tracks by a few animals).
    lines = cost.tolist() if n <= m else cost.T.tolist()
    best = [min(range(len(line)), key=line.__getitem__) for line in lines]
    if len(set(best)) == len(best):
        pairs = [(i, j) if n <= m else (j, i) for i, j in enumerate(best) if lines[i][j] <= thresh]
        pairs.sort()
        matched_rows = {i for i, _ in pairs}
        matched_cols = {j for _, j in pairs}
        return (np.array(pairs, np.int64).reshape(-1, 2),
                np.array([i for i in range(n) if i not in matched_rows], np.int64),
                np.array([j for j in range(m) if j not in matched_cols], np.int64))
    _, row_to_col, col_to_row = lap.lapjv(cost, extend_cost=True, cost_limit=thresh)
    rows = np.flatnonzero(row_to_col >= 0)
    matches = np.stack([rows, row_to_col[rows]], axis=1).astype(np.int64)
    return (matches, np.flatnonzero(row_to_col < 0).astype(np.int64),
            np.flatnonzero(col_to_row < 0).astype(np.int64))


def oks_matrix(kp_a, vis_a, kp_b, vis_b, areas_b, sigmas, min_common: int = 1) -> np.ndarray:
    """Object keypoint similarity between two sets of poses (COCO's formula).

    ``OKS = mean_k exp(-d_k^2 / (2 * area * (2 sigma_k)^2))`` over keypoints visible
    on both sides. ``area`` is that of the B side (its box area in pixels^2).

    Parameters
    ----------
    kp_a : (N, K, 2) array_like, pixels
    vis_a : (N, K) array_like of bool
    kp_b : (M, K, 2) array_like, pixels
    vis_b : (M, K) array_like of bool
    areas_b : (M,) array_like, pixels^2
    sigmas : (K,) array_like
    min_common : int
        Pairs with fewer keypoints visible on both sides get NaN.

    Returns
    -------
    (N, M) float64 in ``[0, 1]``, NaN where the pair has too few common keypoints.
    """
    kp_a, kp_b = np.asarray(kp_a, np.float64), np.asarray(kp_b, np.float64)
    va, vb = np.asarray(vis_a, bool), np.asarray(vis_b, bool)
    var = (2 * np.asarray(sigmas, np.float64)) ** 2                               # (K,)
    d2 = ((kp_a[:, None] - kp_b[None]) ** 2).sum(-1)                             # (N, M, K)
    area = np.maximum(np.asarray(areas_b, np.float64), np.finfo(float).eps)      # (M,)
    e = np.exp(-d2 / (2 * area[None, :, None] * var[None, None, :]))
    both = va[:, None, :] & vb[None, :, :]
    count = both.sum(-1)
    total = (e * both).sum(-1)
    out = np.full(count.shape, np.nan)
    ok = count >= max(1, min_common)
    out[ok] = total[ok] / count[ok]
    return out


def similarity_matrix(boxes_a, boxes_b, kp_a=None, vis_a=None, kp_b=None, vis_b=None,
                      sigmas=None, oks_weight: float = 0.5, min_common: int = 1,
                      iou: np.ndarray | None = None) -> np.ndarray:
    """IoU of boxes, mixed with OKS where both sides have enough visible keypoints.

    ``similarity = (1 - w) * IoU + w * OKS`` for pairs with keypoints, plain IoU
    otherwise. Inputs as in :func:`oks_matrix` and :func:`box_iou_xyxy`; ``iou``
    may pass the boxes' IoU matrix when the caller has it already.

    Returns
    -------
    (N, M) float64 in ``[0, 1]``.
    """
    iou = box_iou_xyxy(boxes_a, boxes_b) if iou is None else iou
    if (kp_a is None or kp_b is None or sigmas is None or oks_weight <= 0
            or np.asarray(kp_a).shape[1:2] == (0,) or iou.size == 0):
        return iou
    oks = oks_matrix(kp_a, vis_a, kp_b, vis_b, box_area_xyxy(boxes_b), sigmas, min_common)
    return np.where(np.isnan(oks), iou, (1 - oks_weight) * iou + oks_weight * oks)
