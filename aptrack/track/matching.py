"""Pure functions on cost and similarity matrices for track-detection assignment.

:func:`similarity_matrix` (with :func:`aptrack.core.oks.oks_matrix`) is the NumPy reference;
:func:`track_similarities`, which the tracker runs every frame, computes the
same numbers in one compiled loop (numba), because for a handful of tracks and
animals NumPy's per-call overhead, not arithmetic, would set the cost.
"""

from __future__ import annotations

import math

import lap
import numba
import numpy as np

from aptrack.core.boxes import (box_area_scalar, box_area_xyxy, box_centre_distance_xyxy, box_diagonal_xyxy,
                                box_iou_loops, box_iou_xyxy)
from aptrack.core.oks import oks_matrix, oks_variances


@numba.njit(cache=True)
def _distinct_minima(values, row_ids, col_ids, thresh, similarity):  # pragma: no cover - compiled
    """The assignment of :func:`linear_assignment` when each line's minimum is distinct.

    The cost of pair ``(i, j)`` is ``values[row_ids[i], col_ids[j]]``, or 1 minus
    that when ``similarity``. Lines are rows, or columns when there are more
    rows than columns. Returns ``ok``, then matches (P, 2) as ``(row id, col
    id)`` in row order, unmatched row ids and unmatched col ids; ``ok`` is
    False (and the arrays empty) when two lines share their cheapest partner.
    """
    n, m = row_ids.shape[0], col_ids.shape[0]
    by_row = n <= m
    lines, others = (n, m) if by_row else (m, n)
    partner = np.full(lines, -1, np.int64)
    taken = np.zeros(others, np.bool_)
    for i in range(lines):
        best, best_cost = 0, np.inf
        for j in range(others):
            c = values[row_ids[i], col_ids[j]] if by_row else values[row_ids[j], col_ids[i]]
            if similarity:
                c = 1.0 - c
            if c < best_cost:
                best, best_cost = j, c
        if taken[best]:
            return False, np.zeros((0, 2), np.int64), row_ids[:0].copy(), col_ids[:0].copy()
        taken[best] = True
        partner[i] = best if best_cost <= thresh else -1
    row_col = np.full(n, -1, np.int64)
    col_matched = np.zeros(m, np.bool_)
    for i in range(lines):
        if partner[i] >= 0:
            r, c = (i, partner[i]) if by_row else (partner[i], i)
            row_col[r] = c
            col_matched[c] = True
    matched = row_col >= 0
    matches = np.empty((matched.sum(), 2), np.int64)
    p = 0
    for r in range(n):
        if matched[r]:
            matches[p, 0], matches[p, 1] = row_ids[r], col_ids[row_col[r]]
            p += 1
    return True, matches, row_ids[~matched], col_ids[~col_matched]


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
    # common case of well-separated animals, solved by a compiled loop without
    # the LAP solver.
    distinct, matches, unmatched_rows, unmatched_cols = _distinct_minima(
        np.ascontiguousarray(cost), np.arange(n), np.arange(m), float(thresh), False)
    if distinct:
        return matches, unmatched_rows, unmatched_cols
    return _solve(cost, thresh)


def _solve(cost: np.ndarray, thresh: float):
    """:func:`linear_assignment` by the LAP solver, for a non-empty float64 ``cost``."""
    _, row_to_col, col_to_row = lap.lapjv(cost, extend_cost=True, cost_limit=thresh)
    rows = np.flatnonzero(row_to_col >= 0)
    matches = np.stack([rows, row_to_col[rows]], axis=1).astype(np.int64)
    return (matches, np.flatnonzero(row_to_col < 0).astype(np.int64),
            np.flatnonzero(col_to_row < 0).astype(np.int64))


def assign_subsets(similarity: np.ndarray, row_ids: np.ndarray, col_ids: np.ndarray, thresh: float):
    """:func:`linear_assignment` of some rows against some columns of a similarity matrix.

    The cost is ``1 - similarity[row_ids][:, col_ids]``; the tracker calls this
    with track and detection indices into one matrix per frame.

    Parameters
    ----------
    similarity : (T, N) array_like
    row_ids : (n,) int64 array
        Rows of ``similarity`` taking part.
    col_ids : (m,) int64 array
        Columns of ``similarity`` taking part.
    thresh : float
        Pairs costing more than this stay unassigned.

    Returns
    -------
    matches : (P, 2) int64 array of ``(row id, col id)``, in the order of ``row_ids``
    unmatched_row_ids : int64 array
    unmatched_col_ids : int64 array
    """
    if not len(row_ids) or not len(col_ids):
        return np.zeros((0, 2), np.int64), row_ids, col_ids
    distinct, matches, unmatched_rows, unmatched_cols = _distinct_minima(
        similarity, row_ids, col_ids, float(thresh), True)
    if distinct:
        return matches, unmatched_rows, unmatched_cols
    # two lines share their cheapest partner (the shortcut just found that): the solver
    pairs, unmatched_rows, unmatched_cols = _solve(1.0 - similarity[row_ids][:, col_ids], thresh)
    return (np.stack([row_ids[pairs[:, 0]], col_ids[pairs[:, 1]]], axis=1), row_ids[unmatched_rows],
            col_ids[unmatched_cols])


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


@numba.njit(cache=True)
def _track_similarities(pred, means, last, last_kp, last_scores, boxes, kp, scores, var, threshold,
                        oks_weight, min_common):  # pragma: no cover - compiled
    """Loops of :func:`track_similarities`; float64 arrays of any memory layout."""
    t_count, n_count, k_count = pred.shape[0], boxes.shape[0], last_kp.shape[1]
    iou = box_iou_loops(pred, boxes)
    mixed = iou.copy()
    if k_count == 0 or oks_weight <= 0:
        return iou, mixed
    # each track's last pose, moved with its box to the predicted state (see moved_keypoints)
    moved = np.empty((t_count, k_count, 2))
    for i in range(t_count):
        h = last[i, 3] - last[i, 1]
        cx, cy = 0.5 * (last[i, 0] + last[i, 2]), 0.5 * (last[i, 1] + last[i, 3])
        scale, sx, sy = 1.0, cx, cy
        if h > 0:
            scale, sx, sy = means[i, 3] / h, means[i, 0], means[i, 1]
        for q in range(k_count):
            moved[i, q, 0] = (last_kp[i, q, 0] - cx) * scale + sx
            moved[i, q, 1] = (last_kp[i, q, 1] - cy) * scale + sy
    eps = np.finfo(np.float64).eps
    for j in range(n_count):
        area = max(box_area_scalar(boxes[j, 0], boxes[j, 1], boxes[j, 2], boxes[j, 3]), eps)
        for i in range(t_count):
            total, count = 0.0, 0
            for q in range(k_count):
                if last_scores[i, q] >= threshold and scores[j, q] >= threshold:
                    dx, dy = moved[i, q, 0] - kp[j, q, 0], moved[i, q, 1] - kp[j, q, 1]
                    total += math.exp(-(dx * dx + dy * dy) / (2.0 * area * var[q]))
                    count += 1
            if count >= max(1, min_common):
                mixed[i, j] = (1.0 - oks_weight) * iou[i, j] + oks_weight * total / count
    return iou, mixed


_NO_KEYPOINTS, _NO_SCORES, _NO_SIGMAS = np.zeros((0, 0, 2)), np.zeros((0, 0)), np.zeros(0)


def track_similarities(pred_xyxy, means_xyah, last_xyxy, boxes_xyxy, last_keypoints=None,
                       last_scores=None, keypoints=None, scores=None, sigmas=None,
                       score_threshold: float = 0.3, oks_weight: float = 0.5, min_common: int = 1):
    """IoU, and IoU mixed with OKS, of predicted tracks against detections.

    Each track's last pose is first moved with its box to the predicted state
    (as :func:`aptrack.track.tracker.moved_keypoints`), then compared with
    the detections' poses as :func:`similarity_matrix` does, a keypoint being
    visible where its score is at least ``score_threshold``. Without
    keypoints, sigmas or weight the second matrix equals the first.

    Parameters
    ----------
    pred_xyxy : (T, 4) array_like
        Predicted track boxes, pixels.
    means_xyah : (T, 4) array_like
        Predicted ``cx, cy, a, h`` of the tracks (Kalman means).
    last_xyxy : (T, 4) array_like
        Boxes the tracks' last poses were observed with, pixels.
    boxes_xyxy : (N, 4) array_like
        Detection boxes, pixels.
    last_keypoints, keypoints : (T, K, 2) and (N, K, 2) array_like, optional
        Poses in pixels.
    last_scores, scores : (T, K) and (N, K) array_like, optional
        Keypoint scores.
    sigmas : (K,) array_like, optional
        OKS constants; None gives IoU only.
    score_threshold, oks_weight : float
    min_common : int
        Pairs with fewer keypoints visible on both sides keep plain IoU.

    Returns
    -------
    iou, mixed : (T, N) float64 each, in ``[0, 1]``.
    """
    f64 = np.float64
    use_pose = sigmas is not None and keypoints is not None and oks_weight > 0 and len(sigmas) > 0
    if use_pose:
        var = oks_variances(sigmas)
        poses = (np.asarray(last_keypoints, f64), np.asarray(last_scores, f64),
                 np.asarray(keypoints, f64), np.asarray(scores, f64))
    else:
        var, poses = _NO_SIGMAS, (_NO_KEYPOINTS, _NO_SCORES, _NO_KEYPOINTS, _NO_SCORES)
    return _track_similarities(np.asarray(pred_xyxy, f64), np.asarray(means_xyah, f64),
                               np.asarray(last_xyxy, f64), poses[0], poses[1], np.asarray(boxes_xyxy, f64),
                               poses[2], poses[3], var, float(score_threshold), float(oks_weight),
                               int(min_common))


def known_animal_similarity(expected_xyxy, frames_lost, boxes_xyxy, appearance=None, growth: float = 0.1,
                            appearance_weight: float = 0.5) -> np.ndarray:
    """How likely each detection is each of a fixed set of lost animals, in (0, 1].

    Parameters
    ----------
    expected_xyxy : (T, 4) array_like
        Where each animal is expected (its predicted box), pixels.
    frames_lost : (T,) array_like
        Frames since each animal was last seen (>= 0).
    boxes_xyxy : (N, 4) array_like
        The detections, pixels.
    appearance : (T, N) array_like, optional
        Cosine similarities of the animals' embeddings with the detections'
        (NaN where a side has none).
    growth : float
        The distance scale, the animal's box diagonal, grows by this per frame lost.
    appearance_weight : float
        Weight of the appearance (clipped to [0, 1]) against the proximity.

    Returns
    -------
    (T, N) float64: ``exp(-distance / scale)`` between box centres, mixed with
    the appearance where both sides have one; never 0, so that every pair may
    be assigned.
    """
    exp = np.asarray(expected_xyxy, np.float64).reshape(-1, 4)
    det = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    lost = np.asarray(frames_lost, np.float64).reshape(-1)
    distance = box_centre_distance_xyxy(exp, det)
    diagonal = np.maximum(box_diagonal_xyxy(exp), 1.0)
    proximity = np.exp(-distance / (diagonal * (1.0 + growth * np.maximum(lost, 0.0)))[:, None])
    out = proximity
    if appearance is not None:
        app = np.asarray(appearance, np.float64)
        mixed = (1.0 - appearance_weight) * proximity + appearance_weight * np.clip(app, 0.0, 1.0)
        out = np.where(np.isnan(app), proximity, mixed)
    return np.maximum(out, 1e-9)
