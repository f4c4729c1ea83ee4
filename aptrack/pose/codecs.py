"""Gaussian heatmap codec for top-down pose estimation.

``encode`` turns keypoints in crop pixels into target heatmaps; ``decode``
turns predicted heatmaps back into keypoints in crop pixels. The maths lives in
pure helpers so that each piece can be tested on tiny arrays.

Coordinates: integer coordinates are pixel centres. Heatmap cell ``i`` covers
crop pixels ``[i * s, (i + 1) * s)`` for stride ``s``, so its centre is at crop
coordinate ``i * s + (s - 1) / 2``. This makes a horizontal flip exact in both
spaces (no one-pixel shift is needed after flip testing).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from aptrack.core.errors import ConfigError
from aptrack.pose.mmpose_codecs import MSRAHeatmap, SimCCLabel, UDPHeatmap


def gaussian_heatmaps(centers_hm: np.ndarray, heatmap_size, sigma: float) -> np.ndarray:
    """Unnormalised Gaussians (peak 1) at sub-pixel heatmap coordinates.

    Parameters
    ----------
    centers_hm : (K, 2) array_like
        ``x, y`` in heatmap cells (float).
    heatmap_size : (int, int)
        ``width, height`` of the heatmap.
    sigma : float
        Standard deviation in heatmap cells.

    Returns
    -------
    (K, H, W) float32 in ``[0, 1]``.
    """
    w, h = heatmap_size
    c = np.asarray(centers_hm, dtype=np.float64).reshape(-1, 2)
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)
    gx = np.exp(-((xs[None, :] - c[:, :1]) ** 2) / (2 * sigma ** 2))  # (K, W)
    gy = np.exp(-((ys[None, :] - c[:, 1:]) ** 2) / (2 * sigma ** 2))  # (K, H)
    return (gy[:, :, None] * gx[:, None, :]).astype(np.float32)


def heatmap_argmax(heatmaps: np.ndarray):
    """Integer location and value of each heatmap's maximum.

    Parameters
    ----------
    heatmaps : (..., K, H, W) array_like

    Returns
    -------
    locations : (..., K, 2) float64, ``x, y`` in heatmap cells
    values : (..., K) float64
    """
    hm = np.asarray(heatmaps)
    *lead, h, w = hm.shape
    flat = hm.reshape(*lead, h * w)
    idx = np.argmax(flat, axis=-1)
    values = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0].astype(np.float64)
    locations = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)
    return locations, values


def refine_dark(heatmaps: np.ndarray, locations: np.ndarray, blur_kernel: int) -> np.ndarray:
    """Sub-pixel refinement by distribution-aware modulation (DARK, Zhang et al. 2020).

    The heatmap is smoothed with a Gaussian, its logarithm is taken, and the
    peak is moved by one Newton step ``-H^-1 g`` using central differences at
    the integer maximum. For an exact Gaussian the log is quadratic, so the
    step recovers the true centre.

    Parameters
    ----------
    heatmaps : (K, H, W) array_like
    locations : (K, 2) array_like
        Integer ``x, y`` maxima in heatmap cells.
    blur_kernel : int
        Odd Gaussian kernel size for the smoothing; 1 disables it.

    Returns
    -------
    (K, 2) float64 refined ``x, y``; peaks on the border are left as given.
    """
    hm = np.asarray(heatmaps, dtype=np.float32)
    k, h, w = hm.shape
    out = np.array(locations, dtype=np.float64, copy=True)
    for j in range(k):
        x, y = int(out[j, 0]), int(out[j, 1])
        if not (1 <= x < w - 1 and 1 <= y < h - 1):
            continue
        m = hm[j]
        if blur_kernel > 1:
            peak = float(m.max())
            m = cv2.GaussianBlur(m, (blur_kernel, blur_kernel), 0)
            blurred_peak = float(m.max())
            if blurred_peak > 0:
                m = m * (peak / blurred_peak)
        logm = np.log(np.maximum(m[y - 1:y + 2, x - 1:x + 2], 1e-10).astype(np.float64))
        dx = 0.5 * (logm[1, 2] - logm[1, 0])
        dy = 0.5 * (logm[2, 1] - logm[0, 1])
        dxx = logm[1, 2] - 2 * logm[1, 1] + logm[1, 0]
        dyy = logm[2, 1] - 2 * logm[1, 1] + logm[0, 1]
        dxy = 0.25 * (logm[2, 2] - logm[2, 0] - logm[0, 2] + logm[0, 0])
        det = dxx * dyy - dxy * dxy
        if dxx >= 0 or det <= 1e-12:  # not a proper maximum: keep the integer peak
            continue
        step = np.array([dyy * dx - dxy * dy, dxx * dy - dxy * dx]) / det
        if np.all(np.abs(step) <= 1.0):
            out[j] -= step
    return out


@dataclass(frozen=True)
class HeatmapCodec:
    """Keypoints in crop pixels <-> Gaussian heatmaps.

    Parameters
    ----------
    input_size : (int, int)
        Crop ``width, height`` in pixels (e.g. 256, 256).
    heatmap_size : (int, int)
        Heatmap ``width, height`` (e.g. 64, 64); the stride is their ratio.
    sigma : float
        Gaussian standard deviation in heatmap cells.
    blur_kernel : int
        Odd kernel size for DARK smoothing at decode time.
    """

    input_size: tuple[int, int] = (256, 256)
    heatmap_size: tuple[int, int] = (64, 64)
    sigma: float = 2.0
    blur_kernel: int = 11

    @property
    def stride(self) -> np.ndarray:
        return np.array([self.input_size[0] / self.heatmap_size[0],
                         self.input_size[1] / self.heatmap_size[1]])

    def to_heatmap(self, xy_input) -> np.ndarray:
        s = self.stride
        return (np.asarray(xy_input, dtype=np.float64) - (s - 1) / 2) / s

    def to_input(self, xy_heatmap) -> np.ndarray:
        s = self.stride
        return np.asarray(xy_heatmap, dtype=np.float64) * s + (s - 1) / 2

    def encode(self, keypoints, visible):
        """Target heatmaps and per-keypoint weights.

        Parameters
        ----------
        keypoints : (K, 2) array_like, crop pixels
        visible : (K,) array_like of bool or {0, 1}
            Labelled keypoints; others get an all-zero heatmap and weight 0.

        Returns
        -------
        heatmaps : (K, H, W) float32
        weights : (K,) float32, 1 for labelled keypoints inside the heatmap, else 0
        """
        kp = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
        vis = np.asarray(visible).reshape(-1) > 0
        centers = self.to_heatmap(kp)
        w, h = self.heatmap_size
        margin = 3 * self.sigma
        inside = ((centers[:, 0] > -margin) & (centers[:, 0] < w - 1 + margin)
                  & (centers[:, 1] > -margin) & (centers[:, 1] < h - 1 + margin))
        weights = (vis & inside).astype(np.float32)
        heatmaps = gaussian_heatmaps(centers, self.heatmap_size, self.sigma)
        heatmaps *= weights[:, None, None]
        return heatmaps, weights

    def decode(self, heatmaps):
        """Keypoints in crop pixels and their scores (the heatmap peak).

        Parameters
        ----------
        heatmaps : (K, H, W) array_like

        Returns
        -------
        keypoints : (K, 2) float64, crop pixels
        scores : (K,) float64, peak value clipped to ``[0, 1]``
        """
        hm = np.asarray(heatmaps, dtype=np.float32)
        locations, values = heatmap_argmax(hm)
        refined = refine_dark(hm, locations, self.blur_kernel)
        return self.to_input(refined), np.clip(values, 0.0, 1.0)


CODECS = {"aptrack-heatmap": HeatmapCodec, "msra-heatmap": MSRAHeatmap, "udp-heatmap": UDPHeatmap,
          "simcc": SimCCLabel}
"""Codec class of each codec type a model preset may name: aptrack's own, and mmpose's
MSRA and UDP heatmaps and SimCC labels (:mod:`aptrack.pose.mmpose_codecs`), whose decoding
is mmpose's. A heatmap codec decodes one ``(K, h, w)`` array, ``simcc`` the pair of
``(K, Wx)``, ``(K, Wy)`` vectors of an RTMPose head."""


def build_codec(input_size, params: dict):
    """The codec a model preset describes.

    Parameters
    ----------
    input_size : (int, int)
        Crop ``width, height`` in pixels.
    params : dict
        ``type`` (a key of :data:`CODECS`) and the codec's other parameters.

    Raises
    ------
    ConfigError
        On an unknown type or parameters the codec does not take.
    """
    params = dict(params)
    kind = params.pop("type", None)
    if kind not in CODECS:
        raise ConfigError(f"unknown codec type '{kind}'; known: {', '.join(sorted(CODECS))}")
    try:
        return CODECS[kind](input_size=tuple(int(v) for v in input_size),
                            **{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
    except TypeError as exc:
        raise ConfigError(f"codec {kind}: {exc}") from None


def codec_params(codec: HeatmapCodec) -> dict:
    """The preset ``codec`` entry of a :class:`HeatmapCodec` (inverse of :func:`build_codec`)."""
    return {"type": "aptrack-heatmap", "heatmap_size": list(codec.heatmap_size), "sigma": float(codec.sigma),
            "blur_kernel": int(codec.blur_kernel)}
