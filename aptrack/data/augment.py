"""Training-time augmentation for top-down pose: one affine warp per sample.

Random scale, rotation, shift and horizontal flip are folded into the single
affine matrix that cuts the crop, so an image is resampled once. Keypoints go
through the same matrix, and a flip swaps the layout's left/right pairs. All
randomness comes from the ``numpy.random.Generator`` passed in, so a seeded run
repeats exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aptrack.core.boxes import xyxy_to_center_scale
from aptrack.pose.transforms import apply_affine, crop, swap_pairs, warp_matrix


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the training augmentation.

    ``scale_range`` multiplies the padded box size (``> 1`` zooms out);
    ``rotate_deg`` is the largest rotation, applied with ``rotate_prob``;
    ``shift`` moves the centre by up to this fraction of the box size;
    ``half_body_*``: with this probability, if at least ``min_keypoints`` are
    labelled, crop only the upper or the lower body;
    colour jitter scales brightness, contrast and saturation by up to ``±x``.
    """

    box_padding: float = 1.25
    flip_prob: float = 0.5
    scale_range: tuple[float, float] = (0.75, 1.25)
    rotate_deg: float = 40.0
    rotate_prob: float = 0.6
    shift: float = 0.16
    half_body_prob: float = 0.3
    half_body_min_keypoints: int = 8
    half_body_padding: float = 1.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    color_prob: float = 0.8


def half_body_box(keypoints, visible, part, padding: float, min_size: float = 1.0):
    """Box around the labelled keypoints of one body part.

    Parameters
    ----------
    keypoints : (K, 2) array_like, pixels
    visible : (K,) bool
    part : sequence of int, keypoint indices of the part
    padding : float, growth factor of the tight box

    Returns
    -------
    (4,) float64 ``xyxy`` or None when fewer than two keypoints of the part are labelled.
    """
    kp = np.asarray(keypoints, np.float64)
    idx = [i for i in part if visible[i]]
    if len(idx) < 2:
        return None
    pts = kp[idx]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    center, size = (lo + hi) / 2, np.maximum(hi - lo, min_size) * padding
    return np.concatenate([center - size / 2, center + size / 2])


def color_jitter(image: np.ndarray, rng: np.random.Generator, brightness: float,
                 contrast: float, saturation: float) -> np.ndarray:
    """Return a new uint8 BGR image with random brightness, contrast and saturation."""
    img = image.astype(np.float32)
    img *= 1.0 + rng.uniform(-brightness, brightness)
    mean = img.mean()
    img = (img - mean) * (1.0 + rng.uniform(-contrast, contrast)) + mean
    gray = img @ np.array([0.114, 0.587, 0.299], np.float32)
    img = (img - gray[..., None]) * (1.0 + rng.uniform(-saturation, saturation)) + gray[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


class TopDownTrainTransform:
    """Cut one augmented training crop around an annotated animal.

    Parameters
    ----------
    input_size : (int, int), crop ``width, height`` in pixels
    flip_pairs : sequence of (int, int)
    upper_body, lower_body : sequences of int, for half-body crops
    config : AugmentConfig
    train : bool
        False gives the plain evaluation crop (no randomness).
    """

    def __init__(self, input_size, flip_pairs, upper_body=(), lower_body=(),
                 config: AugmentConfig = AugmentConfig(), train: bool = True):
        self.input_size = tuple(int(v) for v in input_size)
        self.flip_pairs = tuple(tuple(p) for p in flip_pairs)
        self.upper_body, self.lower_body = tuple(upper_body), tuple(lower_body)
        self.config = config
        self.train = train

    def matrix(self, box_xyxy, keypoints, visible, rng: np.random.Generator | None):
        """The frame -> crop affine matrix and whether the crop is mirrored."""
        cfg = self.config
        w, h = self.input_size
        box = np.asarray(box_xyxy, np.float64)
        if self.train and rng is not None:
            if (self.upper_body and rng.random() < cfg.half_body_prob
                    and int(np.sum(visible)) >= cfg.half_body_min_keypoints):
                part = self.upper_body if rng.random() < 0.5 else self.lower_body
                hb = half_body_box(keypoints, visible, part, cfg.half_body_padding)
                if hb is not None:
                    box = hb
        center, scale = xyxy_to_center_scale(box[None], w / h, cfg.box_padding)
        center, scale = center[0], scale[0]
        rotation, flip = 0.0, False
        if self.train and rng is not None:
            center = center + rng.uniform(-cfg.shift, cfg.shift, 2) * scale / cfg.box_padding
            scale = scale * rng.uniform(*cfg.scale_range)
            if rng.random() < cfg.rotate_prob:
                rotation = rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)
            flip = rng.random() < cfg.flip_prob
        m = warp_matrix(center, scale, (w, h), rotation)
        if flip:  # mirror the crop: x -> (w - 1) - x
            m = np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([m, [0, 0, 1]])
        return m, flip

    def __call__(self, image: np.ndarray, box_xyxy, keypoints, visible,
                 rng: np.random.Generator | None = None):
        """Crop and keypoints for one animal.

        Parameters
        ----------
        image : (H, W, 3) uint8 BGR, not modified
        box_xyxy : (4,) pixels
        keypoints : (K, 2) pixels
        visible : (K,) bool, labelled
        rng : random generator (training only)

        Returns
        -------
        crop : (h, w, 3) uint8 BGR
        keypoints : (K, 2) float64, crop pixels
        visible : (K,) bool, labelled and inside the crop
        """
        m, flip = self.matrix(box_xyxy, keypoints, visible, rng)
        w, h = self.input_size
        out = crop(image, m, (w, h))
        kp = apply_affine(np.asarray(keypoints, np.float64), m)
        vis = np.asarray(visible, bool).copy()
        if flip:
            kp = swap_pairs(kp, self.flip_pairs, axis=0)
            vis = swap_pairs(vis, self.flip_pairs, axis=0)
        vis &= (kp[:, 0] >= 0) & (kp[:, 0] <= w - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= h - 1)
        if self.train and rng is not None and rng.random() < self.config.color_prob:
            out = color_jitter(out, rng, self.config.brightness, self.config.contrast,
                               self.config.saturation)
        return out, kp, vis
