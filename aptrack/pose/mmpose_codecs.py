"""Re-implementations of mmpose 1.3.x top-down crop warps and keypoint codecs.

The goal is numerical parity with mmpose 1.3.2 at test time, so that models
trained with mmpose decode to the same keypoints in aptrack. The code here is
our own; only the formulas, constants and dtype conventions follow mmpose
(file names are given in each docstring, relative to the mmpose repository).

Conventions shared by every codec in this module:

* Keypoints given to ``encode`` are ``(K, 2)`` ``x, y`` in *input* (crop)
  pixels and are cast to float32 first, as mmpose's pipelines hold them.
  ``visible`` is ``(K,)``; a keypoint with ``visible < 0.5`` is unlabelled.
  The returned weights are a float32 copy of ``visible`` with keypoints whose
  target falls fully outside the map set to 0 (mmpose copies the visibility
  value; it does not binarise it).
* ``decode`` takes a single instance (no batch axis) and returns
  ``keypoints (K, 2)`` and ``scores (K,)`` without mmpose's leading instance
  axis. The decoded keypoints are mapped to the frame with mmpose's
  ``keypoints / input_size * scale + center - 0.5 * scale`` (see
  :func:`crop_to_frame`), for UDP as well as MSRA.
* Where mmpose's result depends on NumPy's type promotion, these functions
  reproduce NumPy 1.x semantics (the NumPy that mmcv 2.x / mmpose 1.3.2 run
  with) explicitly, so the result does not change under NumPy 2. This only
  affects encoded *targets* (ulp-level); every decode path is the same under
  both NumPy versions.
* Maxima ``<= 0`` are handled as mmpose does: the integer location is set to
  ``-1`` before refinement, so such keypoints decode to ``-1 * stride`` (MSRA),
  ``-1 / split_ratio`` (SimCC), or whatever the UDP refinement computes from
  the padded border (NaN for an all-zero heatmap, because mmpose's blur then
  divides 0 by 0).
* No public function changes its inputs: ``decode`` copies the heatmaps, and
  the private blur and refinement helpers then work in place on that copy.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = [
    "msra_warp_matrix",
    "udp_warp_matrix",
    "crop_to_frame",
    "heatmap_maximum",
    "simcc_maximum",
    "MSRAHeatmap",
    "UDPHeatmap",
    "SimCCLabel",
    "RTMPOSE_SIMCC_DEFAULTS",
    "WARP_FLAGS",
    "WARP_BORDER_MODE",
]

# OpenCV settings of mmpose's TopdownAffine (datasets/transforms/topdown_transforms.py)
WARP_FLAGS = cv2.INTER_LINEAR
"""``cv2.warpAffine`` flags mmpose uses for both warps."""
WARP_BORDER_MODE = cv2.BORDER_CONSTANT
"""Border mode: OpenCV's default (mmpose passes none), filled with 0."""


def _as_float(a) -> np.ndarray:
    """Array view keeping a floating dtype (float32 stays float32), else float64."""
    arr = np.asarray(a)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


# ---------------------------------------------------------------------------
# Warps (mmpose/structures/bbox/transforms.py)
# ---------------------------------------------------------------------------

def msra_warp_matrix(center, scale, output_size, rotation_deg: float = 0.0) -> np.ndarray:
    """Affine matrix of mmpose's ``get_warp_matrix`` (shift 0, ``inv=False``).

    Three point pairs define the map: the box centre goes to
    ``(w / 2, h / 2)``; the point half a box width above the centre (rotated
    by ``rotation_deg``) goes to half a crop width above the crop centre; the
    third point of each triple is the second rotated 90 degrees about the
    first. Points are stored as float32, as mmpose does, and the matrix is
    solved by ``cv2.getAffineTransform``. Only ``scale[0]`` (the box width)
    sets the zoom, so ``scale`` must already have the crop's aspect ratio.

    mmpose's ``TopdownAffine`` applies it with
    ``cv2.warpAffine(img, M, (w, h), flags=cv2.INTER_LINEAR)``: bilinear
    sampling, default border ``cv2.BORDER_CONSTANT`` with value 0.

    Parameters
    ----------
    center : (2,) array_like
        Box centre ``x, y`` in frame pixels (float32 in mmpose).
    scale : (2,) array_like
        Box ``width, height`` in frame pixels, already padded (x1.25) and
        fixed to the crop aspect ratio.
    output_size : (int, int)
        Crop ``width, height`` in pixels.
    rotation_deg : float
        Box rotation in degrees (counter-clockwise in image display).

    Returns
    -------
    (2, 3) float64
        Maps frame ``x, y`` to crop ``x, y``.
    """
    c = _as_float(center).reshape(2)
    s = _as_float(scale).reshape(2)
    w, h = output_size
    rad = np.deg2rad(rotation_deg)
    sn, cs = np.sin(rad), np.cos(rad)
    rot = np.array([[cs, -sn], [sn, cs]])
    src_dir = rot @ np.array([0.0, s[0] * -0.5])
    dst_dir = np.array([0.0, w * -0.5])

    src = np.zeros((3, 2), dtype=np.float32)
    src[0] = c
    src[1] = c + src_dir
    src[2] = _third_point(src[0], src[1])
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0] = [w * 0.5, h * 0.5]
    dst[1] = np.array([w * 0.5, h * 0.5]) + dst_dir
    dst[2] = _third_point(dst[0], dst[1])
    return cv2.getAffineTransform(src, dst).astype(np.float64)


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``b`` plus ``a - b`` turned by 90 degrees, in the dtype of ``a`` and ``b``."""
    d = a - b
    return b + np.array([-d[1], d[0]], dtype=d.dtype)


def udp_warp_matrix(center, scale, output_size, rotation_deg: float = 0.0) -> np.ndarray:
    """Affine matrix of mmpose's ``get_udp_warp_matrix`` (unbiased data processing).

    Zoom is ``(w - 1) / scale_w`` horizontally and ``(h - 1) / scale_h``
    vertically (pixel *centres* at both ends of the box map to pixel centres
    ``0`` and ``w - 1``), so the box centre maps to ``((w - 1) / 2,
    (h - 1) / 2)``: half a crop pixel up-left of :func:`msra_warp_matrix`'s
    ``(w / 2, h / 2)`` (and a zoom of ``(w - 1) / w`` times the MSRA one).
    Arithmetic follows mmpose's expression order in the dtype of ``center``
    and ``scale`` and the result is rounded to float32 as mmpose stores it,
    then returned as float64 (exactly representable).

    With a rotation the linear part is ``R(+rotation) * zoom``, so a frame
    point to the right of the centre goes *below* the crop centre for +90
    degrees, whereas :func:`msra_warp_matrix` sends it *above*: the two mmpose
    warps rotate in opposite senses (reproduced as is; test time uses 0).

    mmpose's ``TopdownAffine`` (``use_udp=True``) applies it with the same
    ``cv2.warpAffine(img, M, (w, h), flags=cv2.INTER_LINEAR)`` call: bilinear,
    ``cv2.BORDER_CONSTANT`` with value 0.

    Parameters
    ----------
    center : (2,) array_like
        Box centre ``x, y`` in frame pixels.
    scale : (2,) array_like
        Box ``width, height`` in frame pixels (padded, aspect fixed).
    output_size : (int, int)
        Crop ``width, height`` in pixels.
    rotation_deg : float
        Box rotation in degrees.

    Returns
    -------
    (2, 3) float64
        Maps frame ``x, y`` to crop ``x, y``.
    """
    c = _as_float(center).reshape(2)
    s = _as_float(scale).reshape(2)
    w, h = output_size
    twice_c = c * 2
    rad = np.deg2rad(rotation_deg)
    cos, sin = math.cos(rad), math.sin(rad)
    sx = (w - 1) / s[0]
    sy = (h - 1) / s[1]
    m = np.zeros((2, 3), dtype=np.float32)
    m[0, 0] = cos * sx
    m[0, 1] = -sin * sx
    m[0, 2] = sx * (-0.5 * twice_c[0] * cos + 0.5 * twice_c[1] * sin + 0.5 * s[0])
    m[1, 0] = sin * sy
    m[1, 1] = cos * sy
    m[1, 2] = sy * (-0.5 * twice_c[0] * sin - 0.5 * twice_c[1] * cos + 0.5 * s[1])
    return m.astype(np.float64)


def crop_to_frame(keypoints, center, scale, input_size) -> np.ndarray:
    """Decoded keypoints to frame pixels, as mmpose's ``TopdownPoseEstimator``.

    ``keypoints / input_size * scale + (center - 0.5 * scale)``
    (mmpose/models/pose_estimators/topdown.py, ``add_pred_to_datasample``).
    mmpose uses this for every codec; it inverts :func:`msra_warp_matrix`
    for MSRA/SimCC outputs, and for :class:`UDPHeatmap` outputs it inverts
    :func:`udp_warp_matrix` because UDP's decode scales by
    ``input / (heatmap - 1)``.

    Parameters
    ----------
    keypoints : (K, 2) array_like, decoded keypoints (input pixels)
    center, scale : (2,) array_like, the box the crop was cut from
    input_size : (int, int), crop ``width, height``

    Returns
    -------
    (K, 2) array, frame pixels (dtype from NumPy promotion of the inputs).
    """
    kp = np.asarray(keypoints)
    c = np.asarray(center)
    s = np.asarray(scale)
    out = kp / np.asarray(input_size) * s
    out = out + (c - 0.5 * s)
    return out


# ---------------------------------------------------------------------------
# Shared post-processing (mmpose/codecs/utils/post_processing.py, refinement.py)
# ---------------------------------------------------------------------------

def heatmap_maximum(heatmaps: np.ndarray):
    """Integer arg-max and value of each heatmap (mmpose ``get_heatmap_maximum``).

    Parameters
    ----------
    heatmaps : (K, H, W) ndarray

    Returns
    -------
    locations : (K, 2) float32
        ``x, y`` in heatmap cells; ``-1, -1`` where the maximum is ``<= 0``.
    values : (K,) ndarray, dtype of ``heatmaps``
    """
    k, h, w = heatmaps.shape
    flat = heatmaps.reshape(k, -1)
    idx = np.argmax(flat, axis=1)
    locs = np.stack((idx % w, idx // w), axis=-1).astype(np.float32)
    vals = np.amax(flat, axis=1)
    locs[vals <= 0.0] = -1
    return locs, vals


def simcc_maximum(simcc_x: np.ndarray, simcc_y: np.ndarray):
    """Arg-max bins and score of 1-D SimCC vectors (mmpose ``get_simcc_maximum``).

    Parameters
    ----------
    simcc_x : (K, Wx) ndarray
    simcc_y : (K, Wy) ndarray

    Returns
    -------
    locations : (K, 2) float32
        ``x, y`` in SimCC bins; ``-1, -1`` where the score is ``<= 0``.
    values : (K,) ndarray
        ``min(max(simcc_x), max(simcc_y))`` per keypoint.
    """
    locs = np.stack((np.argmax(simcc_x, axis=1), np.argmax(simcc_y, axis=1)),
                    axis=-1).astype(np.float32)
    vx = np.amax(simcc_x, axis=1)
    vy = np.amax(simcc_y, axis=1)
    vals = np.where(vx > vy, vy, vx)
    locs[vals <= 0.0] = -1
    return locs, vals


def _blur_heatmaps(heatmaps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """DARK modulation in place (mmpose ``gaussian_blur``); returns ``heatmaps``.

    Each map is zero-padded by ``(kernel - 1) // 2`` in float32, blurred with
    ``cv2.GaussianBlur((kernel, kernel), 0)`` (OpenCV's sigma for that kernel
    size, ``0.3 * ((kernel - 1) * 0.5 - 1) + 0.8``, i.e. 2 for 11), cropped
    back and rescaled so its maximum equals the original maximum. An all-zero
    map becomes NaN (0 / 0), as in mmpose.

    Parameters
    ----------
    heatmaps : (K, H, W) float ndarray, modified in place
    kernel : int, odd
    """
    if kernel % 2 != 1:
        raise ValueError(f"blur kernel size must be odd, got {kernel}")
    b = (kernel - 1) // 2
    k, h, w = heatmaps.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(k):
            peak = np.max(heatmaps[j])
            padded = np.zeros((h + 2 * b, w + 2 * b), dtype=np.float32)
            padded[b:b + h, b:b + w] = heatmaps[j]
            padded = cv2.GaussianBlur(padded, (kernel, kernel), 0)
            heatmaps[j] = padded[b:b + h, b:b + w]
            heatmaps[j] *= peak / np.max(heatmaps[j])
    return heatmaps


def _blur_simcc(simcc: np.ndarray, kernel: int) -> np.ndarray:
    """1-D DARK modulation in place (mmpose ``gaussian_blur1d``); ``simcc`` is (K, L)."""
    b = (kernel - 1) // 2
    k, n = simcc.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(k):
            peak = np.max(simcc[j])
            padded = np.zeros((1, n + 2 * b), dtype=np.float32)
            padded[0, b:b + n] = simcc[j]
            padded = cv2.GaussianBlur(padded, (kernel, 1), 0)
            simcc[j] = padded[0, b:b + n]
            simcc[j] *= peak / np.max(simcc[j])
    return simcc


def _refine_quarter_offset(locations: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
    """Move each maximum 0.25 cell toward its higher neighbour (mmpose ``refine_keypoints``).

    Along x the shift is ``0.25 * sign(hm[y, x+1] - hm[y, x-1])`` when
    ``1 < x < W - 1`` and ``0 < y < H`` (note: ``x = 1`` is not refined, as in
    mmpose); along y likewise with the roles swapped. Ties give no shift.

    Parameters
    ----------
    locations : (K, 2) float32, integer ``x, y`` maxima; modified in place
    heatmaps : (K, H, W) ndarray

    Returns
    -------
    (K, 2) float32, ``locations``
    """
    _, h, w = heatmaps.shape
    for j in range(locations.shape[0]):
        x, y = locations[j, :2].astype(int)
        dx = dy = 0.0
        if 1 < x < w - 1 and 0 < y < h:
            dx = heatmaps[j, y, x + 1] - heatmaps[j, y, x - 1]
        if 1 < y < h - 1 and 0 < x < w:
            dy = heatmaps[j, y + 1, x] - heatmaps[j, y - 1, x]
        locations[j] += np.sign([dx, dy], dtype=np.float32) * 0.25
    return locations


def _refine_dark(locations: np.ndarray, heatmaps: np.ndarray, blur_kernel_size: int) -> np.ndarray:
    """DARK sub-cell refinement (mmpose ``refine_keypoints_dark``).

    ``heatmaps`` is blurred in place (:func:`_blur_heatmaps`), floored at
    ``1e-10`` and logged. For maxima with ``1 < x < W - 2`` and
    ``1 < y < H - 2`` one Newton step ``-H^-1 g`` is added, with central
    differences: gradient over a 2-cell span times 0.5, and second
    derivatives over a 4-cell span times 0.25 (``dxx = (l[x+2] - 2 l[x] +
    l[x-2]) / 4``), mixed term ``(l[y+1,x+1] - l[y-1,x+1] - l[y+1,x-1] +
    l[y-1,x-1]) / 4``; skipped when the Hessian determinant is exactly 0.
    Arithmetic is float32 for float32 heatmaps, as in mmpose.

    Parameters
    ----------
    locations : (K, 2) float32, modified in place
    heatmaps : (K, H, W) float ndarray, modified in place
    blur_kernel_size : int, odd

    Returns
    -------
    (K, 2) float32, ``locations``
    """
    _, h, w = heatmaps.shape
    _blur_heatmaps(heatmaps, blur_kernel_size)
    np.maximum(heatmaps, 1e-10, out=heatmaps)
    np.log(heatmaps, out=heatmaps)
    for j in range(locations.shape[0]):
        x, y = locations[j, :2].astype(int)
        if not (1 < x < w - 2 and 1 < y < h - 2):
            continue
        m = heatmaps[j]
        dx = 0.5 * (m[y, x + 1] - m[y, x - 1])
        dy = 0.5 * (m[y + 1, x] - m[y - 1, x])
        dxx = 0.25 * (m[y, x + 2] - 2 * m[y, x] + m[y, x - 2])
        dxy = 0.25 * (m[y + 1, x + 1] - m[y - 1, x + 1] - m[y + 1, x - 1] + m[y - 1, x - 1])
        dyy = 0.25 * (m[y + 2, x] - 2 * m[y, x] + m[y - 2, x])
        if dxx * dyy - dxy ** 2 != 0:
            hess_inv = np.linalg.inv(np.array([[dxx, dxy], [dxy, dyy]]))
            step = -hess_inv @ np.array([[dx], [dy]])
            locations[j, :2] += step[:, 0]
    return locations


def _refine_dark_udp(locations: np.ndarray, heatmaps: np.ndarray,
                    blur_kernel_size: int) -> np.ndarray:
    """DARK refinement as UDP does it (mmpose ``refine_keypoints_dark_udp``).

    ``heatmaps`` is blurred in place, clipped to ``[1e-3, 50]`` and logged,
    then edge-padded by one cell. Derivatives use one-cell differences
    (``dxx = l[x+1] - 2 l[x] + l[x-1]``, gradient ``0.5 (l[x+1] - l[x-1])``,
    mixed ``0.5 (l[+1,+1] - l[x+1] - l[y+1] + 2 l - l[x-1] - l[y-1] +
    l[-1,-1])``) and every keypoint takes the Newton step with the Hessian
    regularised by ``float32 eps * I`` (inverse in float64). Neighbours are
    read from the flattened padded stack exactly as mmpose indexes it, so a
    ``-1`` location reads the padded corner and (for the first keypoint) wraps
    to the end of the array, as in mmpose.

    Parameters
    ----------
    locations : (K, 2) float32, modified in place
    heatmaps : (K, H, W) float ndarray, modified in place
    blur_kernel_size : int, odd

    Returns
    -------
    (K, 2) float32, ``locations``
    """
    k, h, w = heatmaps.shape
    _blur_heatmaps(heatmaps, blur_kernel_size)
    np.clip(heatmaps, 1e-3, 50.0, out=heatmaps)
    np.log(heatmaps, out=heatmaps)
    flat = np.pad(heatmaps, ((0, 0), (1, 1), (1, 1)), mode="edge").flatten()
    row = w + 2
    index = locations[:, 0] + 1 + (locations[:, 1] + 1) * row
    index += row * (h + 2) * np.arange(0, k)
    index = index.astype(int).reshape(-1, 1)
    c = flat[index]
    xp, xm = flat[index + 1], flat[index - 1]
    yp, ym = flat[index + row], flat[index - row]
    xpyp, xmym = flat[index + row + 1], flat[index - row - 1]
    grad = np.concatenate([0.5 * (xp - xm), 0.5 * (yp - ym)], axis=1).reshape(k, 2, 1)
    dxx = xp - 2 * c + xm
    dyy = yp - 2 * c + ym
    dxy = 0.5 * (xpyp - xp - yp + c + c - xm - ym + xmym)
    hess = np.concatenate([dxx, dxy, dxy, dyy], axis=1).reshape(k, 2, 2)
    with np.errstate(invalid="ignore"):
        hess_inv = np.linalg.inv(hess + np.finfo(np.float32).eps * np.eye(2))
        locations -= np.einsum("imn,ink->imk", hess_inv, grad).reshape(k, 2)
    return locations


def _refine_simcc_dark(locs: np.ndarray, simcc: np.ndarray, blur_kernel_size: int) -> np.ndarray:
    """1-D DARK on SimCC bins (mmpose ``refine_simcc_dark``); ``locs`` (K,) float32."""
    simcc = _blur_simcc(simcc, blur_kernel_size)
    np.clip(simcc, 1e-3, 50.0, out=simcc)
    np.log(simcc, out=simcc)
    padded = np.pad(simcc, ((0, 0), (2, 2)), "edge")
    px = (locs + 2.5).astype(np.int64).reshape(-1, 1)
    v0 = np.take_along_axis(padded, px, axis=1)
    v1 = np.take_along_axis(padded, px + 1, axis=1)
    vm1 = np.take_along_axis(padded, px - 1, axis=1)
    v2 = np.take_along_axis(padded, px + 2, axis=1)
    vm2 = np.take_along_axis(padded, px - 2, axis=1)
    dx = 0.5 * (v1 - vm1)
    dxx = 1e-9 + 0.25 * (v2 - 2 * v0 + vm2)
    return locs - (dx / dxx).reshape(-1)


def _prepare(keypoints, visible):
    kp = np.asarray(keypoints, dtype=np.float32).reshape(-1, 2)
    if visible is None:
        vis = np.ones(len(kp), dtype=np.float32)
    else:
        vis = np.asarray(visible, dtype=np.float32).reshape(-1)
    if len(vis) != len(kp):
        raise ValueError(f"{len(kp)} keypoints but {len(vis)} visibility flags")
    return kp, vis


def _patch_window(position, radius: float, width: int, height: int):
    """Cell ``int(p + 0.5)`` and the window ``left, top, right, bottom`` of a ``2r + 1`` patch
    around it, as mmpose computes them; None when the patch lies fully outside the map."""
    mu = (position + 0.5).astype(np.int64)
    left, top = (mu - radius).astype(np.int64)
    right, bottom = (mu + radius + 1).astype(np.int64)
    if left >= width or top >= height or right < 0 or bottom < 0:
        return None
    return mu, (left, top, right, bottom)


def _paste_max(heatmap: np.ndarray, patch: np.ndarray, window) -> None:
    """``heatmap = max(heatmap, patch)`` over the part of ``window`` inside the map, in place."""
    left, top, right, bottom = window
    h, w = heatmap.shape
    region = heatmap[max(0, top):min(h, bottom), max(0, left):min(w, right)]
    part = patch[max(0, -top):min(h, bottom) - top, max(0, -left):min(w, right) - left]
    np.maximum(region, part, out=region)


def _float_copy(a) -> np.ndarray:
    arr = np.array(a, copy=True)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
    return arr


# ---------------------------------------------------------------------------
# Codecs
# ---------------------------------------------------------------------------

class MSRAHeatmap:
    """Gaussian heatmaps, mmpose ``MSRAHeatmap`` (mmpose/codecs/msra_heatmap.py).

    Heatmap cell ``i`` is at input pixel ``i * stride`` with
    ``stride = input / heatmap`` (float32); there is no half-cell offset.

    Parameters
    ----------
    input_size : (int, int)
        Crop ``width, height`` in pixels.
    heatmap_size : (int, int)
        Heatmap ``width, height``.
    sigma : float
        Gaussian standard deviation in heatmap cells.
    unbiased : bool
        DARK: sub-pixel Gaussian centres at encode and DARK refinement at
        decode; otherwise integer centres and the 0.25-cell shift.
    blur_kernel_size : int
        Odd kernel of the DARK modulation (11 matches sigma 2).
    """

    def __init__(self, input_size, heatmap_size, sigma: float, unbiased: bool = False,
                 blur_kernel_size: int = 11) -> None:
        self.input_size = tuple(int(v) for v in input_size)
        self.heatmap_size = tuple(int(v) for v in heatmap_size)
        self.sigma = float(sigma)
        self.unbiased = bool(unbiased)
        self.blur_kernel_size = int(blur_kernel_size)
        self.scale_factor = (np.array(self.input_size) / self.heatmap_size).astype(np.float32)
        """(2,) float32 input pixels per heatmap cell."""

    def encode(self, keypoints, visible=None):
        """Target heatmaps (mmpose ``generate_gaussian_heatmaps`` / ``..._unbiased_...``).

        Biased: a ``(2r+1)``-wide patch, ``r = 3 sigma``, of an un-normalised
        Gaussian (peak 1) centred on the cell ``int(p + 0.5)``, pasted with
        ``max``; a keypoint whose patch lies fully outside gets weight 0.
        Unbiased: the Gaussian is centred on the exact position ``p`` and
        evaluated over the whole map (no truncation); weight 0 when
        ``p - r >= size`` or ``p + r + 1 < 0``.

        Parameters
        ----------
        keypoints : (K, 2) array_like, input pixels
        visible : (K,) array_like or None (all visible)

        Returns
        -------
        heatmaps : (K, H, W) float32
        weights : (K,) float32
        """
        kp, vis = _prepare(keypoints, visible)
        kp = kp / self.scale_factor
        w, h = self.heatmap_size
        heatmaps = np.zeros((len(kp), h, w), dtype=np.float32)
        weights = vis.copy()
        radius = self.sigma * 3
        two_var = 2 * self.sigma ** 2
        if self.unbiased:
            xs = np.arange(0, w, 1, dtype=np.float32)
            ys = np.arange(0, h, 1, dtype=np.float32)[:, None]
            for j, mu in enumerate(kp):
                if vis[j] < 0.5:
                    continue
                left, top = mu - radius
                right, bottom = mu + radius + 1
                if left >= w or top >= h or right < 0 or bottom < 0:
                    weights[j] = 0
                    continue
                g = np.exp(-((xs - mu[0]) ** 2 + (ys - mu[1]) ** 2) / two_var)
                np.maximum(g, heatmaps[j], out=heatmaps[j])
            return heatmaps, weights

        size = 2 * radius + 1
        gx = np.arange(0, size, 1, dtype=np.float32)
        gy = gx[:, None]
        g0 = size // 2
        patch = np.exp(-((gx - g0) ** 2 + (gy - g0) ** 2) / two_var)
        for j in range(len(kp)):
            if vis[j] < 0.5:
                continue
            found = _patch_window(kp[j], radius, w, h)
            if found is None:
                weights[j] = 0
                continue
            _paste_max(heatmaps[j], patch, found[1])
        return heatmaps, weights

    def decode(self, heatmaps):
        """Keypoints and scores from heatmaps (mmpose ``MSRAHeatmap.decode``).

        Integer arg-max (``-1`` where the maximum is ``<= 0``), refined by
        the 0.25-cell shift or DARK, then times the float32 stride. A maximum
        ``<= 0`` therefore decodes to ``-stride`` on both axes.

        Parameters
        ----------
        heatmaps : (K, H, W) array_like (float32 from a network)

        Returns
        -------
        keypoints : (K, 2) float32, input pixels
        scores : (K,) heatmap maxima, dtype of ``heatmaps``
        """
        hm = _float_copy(heatmaps)
        locs, scores = heatmap_maximum(hm)
        if self.unbiased:
            locs = _refine_dark(locs, hm, self.blur_kernel_size)
        else:
            locs = _refine_quarter_offset(locs, hm)
        return locs * self.scale_factor, scores


class UDPHeatmap:
    """Gaussian heatmaps with unbiased data processing, mmpose ``UDPHeatmap``.

    From mmpose/codecs/udp_heatmap.py (``heatmap_type='gaussian'`` only).
    Encoding divides input pixels by ``scale_factor = (input - 1) /
    (heatmap - 1)`` (float32), so input pixel 0 and ``input - 1`` land on
    cells 0 and ``heatmap - 1``. Decoding, exactly as mmpose, multiplies by
    ``input / (heatmap - 1)`` instead (in float64): the decoded value is *not*
    the crop pixel of the UDP warp but ``crop_px * input / (input - 1)``,
    which :func:`crop_to_frame` (mmpose's back-mapping) turns into the right
    frame pixel. Consequently ``decode(encode(p)) == p * input / (input - 1)``.

    Parameters
    ----------
    input_size : (int, int)
        Crop ``width, height`` in pixels.
    heatmap_size : (int, int)
        Heatmap ``width, height``.
    sigma : float
        Gaussian standard deviation in heatmap cells (mmpose default 2).
    blur_kernel_size : int
        Odd kernel of the DARK modulation.
    """

    def __init__(self, input_size, heatmap_size, sigma: float = 2.0,
                 blur_kernel_size: int = 11) -> None:
        self.input_size = tuple(int(v) for v in input_size)
        self.heatmap_size = tuple(int(v) for v in heatmap_size)
        self.sigma = float(sigma)
        self.blur_kernel_size = int(blur_kernel_size)
        self.scale_factor = ((np.array(self.input_size) - 1)
                             / (np.array(self.heatmap_size) - 1)).astype(np.float32)
        """(2,) float32 ``(input - 1) / (heatmap - 1)`` used by ``encode``."""

    def encode(self, keypoints, visible=None):
        """Target heatmaps (mmpose ``generate_udp_gaussian_heatmaps``).

        A ``(2r+1)``-wide patch (``r = 3 sigma``) around the cell
        ``int(p + 0.5)`` holding a Gaussian centred at the exact sub-cell
        position ``p``; pasted with ``max``; weight 0 if the patch is fully
        outside. The Gaussian is evaluated in float32 with the centre rounded
        to float32 (NumPy 1.x promotion, as mmpose runs).

        Parameters
        ----------
        keypoints : (K, 2) array_like, input pixels
        visible : (K,) array_like or None

        Returns
        -------
        heatmaps : (K, H, W) float32
        weights : (K,) float32
        """
        kp, vis = _prepare(keypoints, visible)
        kp = kp / self.scale_factor
        w, h = self.heatmap_size
        heatmaps = np.zeros((len(kp), h, w), dtype=np.float32)
        weights = vis.copy()
        radius = self.sigma * 3
        size = 2 * radius + 1
        gx = np.arange(0, size, 1, dtype=np.float32)
        gy = gx[:, None]
        two_var = 2 * self.sigma ** 2
        for j in range(len(kp)):
            if vis[j] < 0.5:
                continue
            found = _patch_window(kp[j], radius, w, h)
            if found is None:
                weights[j] = 0
                continue
            mu, window = found
            x0 = np.float32(size // 2 + (np.float64(kp[j, 0]) - mu[0]))
            y0 = np.float32(size // 2 + (np.float64(kp[j, 1]) - mu[1]))
            patch = np.exp(-((gx - x0) ** 2 + (gy - y0) ** 2) / two_var)
            _paste_max(heatmaps[j], patch, window)
        return heatmaps, weights

    def decode(self, heatmaps):
        """Keypoints and scores (mmpose ``UDPHeatmap.decode``, gaussian type).

        Integer arg-max (``-1`` where the maximum is ``<= 0``), UDP DARK
        refinement (:func:`_refine_dark_udp`), then
        ``cell / (heatmap - 1) * input`` in float64.

        Parameters
        ----------
        heatmaps : (K, H, W) array_like

        Returns
        -------
        keypoints : (K, 2) float64, mmpose's input-pixel convention (see class)
        scores : (K,) heatmap maxima, dtype of ``heatmaps``
        """
        hm = _float_copy(heatmaps)
        locs, scores = heatmap_maximum(hm)
        locs = _refine_dark_udp(locs, hm, self.blur_kernel_size)
        w, h = self.heatmap_size
        return locs / np.array([w - 1, h - 1]) * np.array(self.input_size), scores


RTMPOSE_SIMCC_DEFAULTS = dict(sigma=(5.66, 5.66), simcc_split_ratio=2.0, normalize=False,
                              use_dark=False)
"""SimCCLabel settings of mmpose's RTMPose configs for square (256x256) inputs.

(The 192x256 body configs use ``sigma=(4.9, 5.66)``.)"""


class SimCCLabel:
    """1-D coordinate classification labels, mmpose ``SimCCLabel`` (gaussian smoothing).

    From mmpose/codecs/simcc_label.py. Bin ``i`` of the x vector is input
    pixel ``i / simcc_split_ratio``; there are ``round(w * ratio)`` x bins
    and ``round(h * ratio)`` y bins. RTMPose configs use
    ``sigma=(5.66, 5.66)`` (square inputs), ``simcc_split_ratio=2.0``,
    ``normalize=False``, ``use_dark=False`` (see
    :data:`RTMPOSE_SIMCC_DEFAULTS`).

    Parameters
    ----------
    input_size : (int, int)
        Crop ``width, height`` in pixels.
    sigma : float or (float, float)
        Gaussian standard deviation in bins, one value or ``(x, y)``.
    simcc_split_ratio : float
        Bins per input pixel.
    normalize : bool
        Divide labels by ``sigma * sqrt(2 pi)`` (unit area).
    use_dark : bool
        1-D DARK refinement at decode, blur kernel
        ``int((20 sigma - 7) // 3)`` made odd by subtracting 1.
    """

    def __init__(self, input_size, sigma=6.0, simcc_split_ratio: float = 2.0,
                 normalize: bool = False, use_dark: bool = False) -> None:
        self.input_size = tuple(int(v) for v in input_size)
        if isinstance(sigma, (int, float)):
            self.sigma = np.array([sigma, sigma], dtype=np.float64)
        else:
            self.sigma = np.array(sigma, dtype=np.float64).reshape(2)
        self.simcc_split_ratio = float(simcc_split_ratio)
        self.normalize = bool(normalize)
        self.use_dark = bool(use_dark)

    @property
    def label_size(self) -> tuple[int, int]:
        """``(Wx, Wy)`` number of x and y bins."""
        w, h = self.input_size
        return (int(np.around(w * self.simcc_split_ratio)),
                int(np.around(h * self.simcc_split_ratio)))

    def encode(self, keypoints, visible=None):
        """Gaussian labels centred on the rounded bin (mmpose ``_generate_gaussian``).

        The centre bin is ``round_half_even(p * ratio)``; weight 0 when the
        centre is more than ``3 sigma`` bins outside (``mu - 3 sigma >= size``
        or ``mu + 3 sigma + 1 < 0``) or the keypoint is unlabelled.

        Parameters
        ----------
        keypoints : (K, 2) array_like, input pixels
        visible : (K,) array_like or None

        Returns
        -------
        target_x : (K, Wx) float32
        target_y : (K, Wy) float32
        weights : (K,) float32
        """
        kp, vis = _prepare(keypoints, visible)
        wx, wy = self.label_size
        mu_all = np.around(kp * self.simcc_split_ratio).astype(np.int64)
        weights = vis.copy()
        tx = np.zeros((len(kp), wx), dtype=np.float32)
        ty = np.zeros((len(kp), wy), dtype=np.float32)
        radius = self.sigma * 3
        xs = np.arange(0, wx, 1, dtype=np.float32)
        ys = np.arange(0, wy, 1, dtype=np.float32)
        den_x = np.float32(2 * self.sigma[0] ** 2)
        den_y = np.float32(2 * self.sigma[1] ** 2)
        for j, mu in enumerate(mu_all):
            if vis[j] < 0.5:
                continue
            left, top = mu - radius
            right, bottom = mu + radius + 1
            if left >= wx or top >= wy or right < 0 or bottom < 0:
                weights[j] = 0
                continue
            tx[j] = np.exp(-((xs - np.float32(mu[0])) ** 2) / den_x)
            ty[j] = np.exp(-((ys - np.float32(mu[1])) ** 2) / den_y)
        if self.normalize:
            norm = self.sigma * np.sqrt(np.pi * 2)
            tx /= np.float32(norm[0])
            ty /= np.float32(norm[1])
        return tx, ty, weights

    def decode(self, simcc_x, simcc_y):
        """Keypoints and scores (mmpose ``SimCCLabel.decode``, no visibility decoding).

        Arg-max bin per axis (``-1`` where the score is ``<= 0``), optional
        1-D DARK, then divided by ``simcc_split_ratio`` (float32). Score is
        ``min(max(simcc_x), max(simcc_y))``.

        Parameters
        ----------
        simcc_x : (K, Wx) array_like
        simcc_y : (K, Wy) array_like

        Returns
        -------
        keypoints : (K, 2) float32, input pixels
        scores : (K,) dtype of the inputs
        """
        sx = np.asarray(simcc_x)
        sy = np.asarray(simcc_y)
        locs, scores = simcc_maximum(sx, sy)
        if self.use_dark:
            for axis, simcc in ((0, sx), (1, sy)):
                ks = int((self.sigma[axis] * 20 - 7) // 3)
                ks -= int(ks % 2 == 0)
                locs[:, axis] = _refine_simcc_dark(locs[:, axis].copy(), _float_copy(simcc), ks)
        locs /= self.simcc_split_ratio
        return locs, scores
