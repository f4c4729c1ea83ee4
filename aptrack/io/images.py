"""Still images in."""

from __future__ import annotations

import cv2
import numpy as np


def load_image(path) -> np.ndarray:
    """Read a BGR uint8 image; raises OSError when it cannot be decoded."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"cannot read image {path}")
    return img
