"""Object keypoint similarity (COCO's OKS), written once.

For a keypoint at distance ``d`` from its reference on an animal of area
``s`` (box area, pixels^2), with the layout's constant ``sigma``::

    ks = exp(-d^2 / (2 * s * (2 * sigma)^2))

OKS is the mean of ``ks`` over the keypoints both sides have. Matching,
keypoint AP's prediction-to-animal pairing and keypoint MOTA all use these
functions; the tracker's compiled association loop evaluates the same
expression through :func:`oks_variances` (and is tested equal to
:func:`oks_matrix`).
"""

from __future__ import annotations

import numpy as np


def oks_variances(sigmas) -> np.ndarray:
    """``(2 * sigma) ** 2`` per keypoint, (K,) float64."""
    return (2.0 * np.asarray(sigmas, np.float64)) ** 2


def keypoint_similarities(kp_a, kp_b, areas_b, sigmas, min_area: float = np.finfo(float).eps) -> np.ndarray:
    """Per-keypoint similarity ``ks`` of every pose of A with every pose of B.

    Parameters
    ----------
    kp_a : (N, K, 2) array_like, pixels
    kp_b : (M, K, 2) array_like, pixels
    areas_b : (M,) array_like, pixels^2
        Areas of the B side (the reference); floored at ``min_area``.
    sigmas : (K,) array_like

    Returns
    -------
    (N, M, K) float64 in ``[0, 1]``.
    """
    kp_a, kp_b = np.asarray(kp_a, np.float64), np.asarray(kp_b, np.float64)
    d2 = ((kp_a[:, None] - kp_b[None]) ** 2).sum(-1)                            # (N, M, K)
    area = np.maximum(np.asarray(areas_b, np.float64), min_area)                # (M,)
    return np.exp(-d2 / (2 * area[None, :, None] * oks_variances(sigmas)[None, None, :]))


def oks_matrix(kp_a, vis_a, kp_b, vis_b, areas_b, sigmas, min_common: int = 1) -> np.ndarray:
    """OKS between two sets of poses, over keypoints visible on both sides.

    Parameters
    ----------
    kp_a : (N, K, 2) array_like, pixels
    vis_a : (N, K) array_like of bool
    kp_b : (M, K, 2) array_like, pixels
    vis_b : (M, K) array_like of bool
    areas_b : (M,) array_like, pixels^2 (the B side's box areas)
    sigmas : (K,) array_like
    min_common : int
        Pairs with fewer keypoints visible on both sides get NaN.

    Returns
    -------
    (N, M) float64 in ``[0, 1]``, NaN where the pair has too few common keypoints.
    """
    e = keypoint_similarities(kp_a, kp_b, areas_b, sigmas)
    both = np.asarray(vis_a, bool)[:, None, :] & np.asarray(vis_b, bool)[None, :, :]
    count = both.sum(-1)
    total = (e * both).sum(-1)
    out = np.full(count.shape, np.nan)
    ok = count >= max(1, min_common)
    out[ok] = total[ok] / count[ok]
    return out


def keypoint_oks(gt_xy, pred_xy, area, sigma: float) -> np.ndarray:
    """``ks`` of one keypoint type between N reference and M predicted points.

    Parameters
    ----------
    gt_xy : (N, 2), pred_xy : (M, 2) pixels
    area : (N,) reference box areas, pixels^2 (floored at 1e-9)
    sigma : float

    Returns
    -------
    (N, M) float64 in [0, 1]
    """
    g = np.asarray(gt_xy, np.float64).reshape(-1, 1, 2)
    p = np.asarray(pred_xy, np.float64).reshape(-1, 1, 2)
    return keypoint_similarities(p, g, area, [sigma], min_area=1e-9)[..., 0].T
