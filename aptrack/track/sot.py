"""Single-object trackers: one per animal, carrying its box from frame to frame by appearance.

APTv2's tracking track starts each animal from its first-frame box and carries
it through the clip with a single-object tracker (SOT). aptrack's is OpenCV
zoo's VitTrack (``cv2.TrackerVit``, weights ``vittrack`` in the registry): a
small ViT that matches a template of the animal against a search region
around its last box, about 7 ms per animal and frame on a 2-core CPU. Its
tracking score says how well the template matched; on a long video it drifts,
which is why :mod:`aptrack.track.propagate` fuses it with the pose and the
detector rather than trusting it alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aptrack.core.boxes import xyxy_to_xywh
from aptrack.core.errors import WeightsError


def _xywh_int(box_xyxy, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer ``x, y, w, h`` of a box clipped to the frame (at least 2 x 2 pixels)."""
    clipped = np.clip(np.asarray(box_xyxy, np.float64), 0, [width - 1, height - 1, width - 1, height - 1])
    x, y, w, h = np.round(xyxy_to_xywh(clipped[None])[0]).astype(int).tolist()
    return x, y, max(2, w), max(2, h)


class VitSingleObjectTracker:
    """One animal's VitTrack (``cv2.TrackerVit``).

    Parameters
    ----------
    weights : str or Path
        The VitTrack ONNX file.
    """

    def __init__(self, weights: str | Path):
        import cv2

        if not hasattr(cv2, "TrackerVit"):
            raise WeightsError(f"OpenCV {cv2.__version__} has no TrackerVit; install opencv-python >= 4.9")
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # its DNN backend warns per net
        params = cv2.TrackerVit_Params()
        params.net = str(weights)
        params.tracking_score_threshold = 0.0  # always report the box; the caller judges the score
        try:
            self._tracker = cv2.TrackerVit.create(params)
        except cv2.error as exc:
            raise WeightsError(f"cannot load the single-object tracker {weights}: "
                               f"{str(exc).strip().splitlines()[-1]}") from None

    def init(self, frame: np.ndarray, box_xyxy) -> None:
        """Start (or restart) on ``box_xyxy`` (4,) pixels of the (H, W, 3) uint8 BGR ``frame``."""
        h, w = frame.shape[:2]
        self._tracker.init(frame, _xywh_int(box_xyxy, w, h))

    def update(self, frame: np.ndarray) -> tuple[np.ndarray, float]:
        """The box (4,) float64 xyxy in ``frame`` and the tracking score in [0, 1]."""
        _, (x, y, w, h) = self._tracker.update(frame)
        score = float(self._tracker.getTrackingScore())
        return np.array([x, y, x + w, y + h], np.float64), float(np.clip(score, 0.0, 1.0))


class SotFactory:
    """Makes one :class:`VitSingleObjectTracker` per animal from one weights file.

    The file is found (and sha256-checked) once, through the weight registry.
    """

    def __init__(self, weights: str):
        from aptrack.core import hub

        self.weights = hub.resolve(weights)

    def __call__(self) -> VitSingleObjectTracker:
        return VitSingleObjectTracker(self.weights.path)
