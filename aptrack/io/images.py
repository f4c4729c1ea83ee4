"""Still images in."""

from __future__ import annotations

import cv2
import numpy as np


def spread_indices(start: int, stop: int, count: int) -> np.ndarray:
    """Up to ``count`` distinct frame indices spread evenly over ``[start, stop)``, both ends
    included (int64, ascending); ``[start]`` for an empty or one-frame range."""
    return np.unique(np.linspace(start, stop - 1, min(count, max(stop - start, 1))).round().astype(np.int64))


def load_image(path) -> np.ndarray:
    """Read a BGR uint8 image; raises OSError when it cannot be decoded."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"cannot read image {path}")
    return img
