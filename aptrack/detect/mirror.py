"""Detection on a frame and on its mirror image, merged: a detector's flip test.

A small detector misses some partly hidden animals in one view that it finds
in the mirrored one. The known-animals mode (``aptrack run --init-boxes``,
``aptrack bench --boxes gt-first-frame``) matches detections to animals it
already knows and starts no track from them, so the extra boxes cost it
little; see ``propagation.detector_flip_test`` in ``pipelines/default.yaml``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from aptrack.core.boxes import mirrored_xyxy
from aptrack.core.instances import Instances

Detector = Callable[[np.ndarray, int], Instances]


def detect_mirrored_too(detector: Detector, frame: np.ndarray, frame_index: int,
                        nms_iou_threshold: float) -> Instances:
    """The detections of ``frame`` and of its mirror image (boxes mapped back), overlaps removed.

    Parameters
    ----------
    detector : callable (frame, frame_index) -> Instances
    frame : (H, W, 3) uint8 BGR
    frame_index : int
    nms_iou_threshold : float in [0, 1]
        Of two boxes of the merged set overlapping by more than this IoU, the
        lower-scoring one is dropped (class-agnostic non-maximum suppression).

    Returns
    -------
    Instances
        The kept detections, the unmirrored frame's first, each set in its
        detector's order; an empty instance when neither view has any.
    """
    import torch
    from torchvision.ops import nms

    plain = detector(frame, frame_index)
    mirrored = detector(np.ascontiguousarray(frame[:, ::-1]), frame_index)
    if not len(mirrored):
        return plain
    mirrored = mirrored.with_(boxes_xyxy=mirrored_xyxy(mirrored.boxes_xyxy, frame.shape[1])
                              .astype(mirrored.boxes_xyxy.dtype))
    both = Instances.concatenate([plain, mirrored], frame_index) if len(plain) else mirrored
    keep = nms(torch.from_numpy(np.array(both.boxes_xyxy, np.float32)),  # copies: Instances' arrays are read-only
               torch.from_numpy(np.array(both.scores, np.float32)), float(nms_iou_threshold)).numpy()
    return both.take(np.sort(keep))
