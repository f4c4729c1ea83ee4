"""Annotators: each returns a new image and leaves its input untouched."""

from __future__ import annotations

import colorsys
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from aptrack.core.errors import ConfigError
from aptrack.core.instances import Instances
from aptrack.core.layout import KeypointLayout


@dataclass(frozen=True)
class DrawConfig:
    """What the annotated video shows."""

    keypoint_score_threshold: float = 0.3
    trail_length: int = 30
    line_thickness: int = 2
    keypoint_radius: int = 3

    def __post_init__(self) -> None:
        if not 0.0 <= self.keypoint_score_threshold <= 1.0:
            raise ConfigError(f"draw.keypoint_score_threshold must be in [0, 1], got {self.keypoint_score_threshold}")
        for name, least in (("trail_length", 0), ("line_thickness", 1), ("keypoint_radius", 1)):
            if getattr(self, name) < least:
                raise ConfigError(f"draw.{name} must be >= {least}, got {getattr(self, name)}")


GOLDEN_RATIO_CONJUGATE = 0.618033988749895


def track_color(track_id: int) -> tuple[int, int, int]:
    """A distinct, stable BGR colour per track id (golden-ratio hue walk)."""
    if track_id < 0:
        return (200, 200, 200)
    hue = (track_id * GOLDEN_RATIO_CONJUGATE) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


class TrailHistory:
    """Recent box-bottom-centre positions of each track, for motion trails."""

    def __init__(self, length: int):
        self.length = length
        self._points: dict[int, deque] = {}
        self._last_seen: dict[int, int] = {}

    def update(self, instances: Instances) -> None:
        for box, tid in zip(instances.boxes_xyxy, instances.track_ids):
            if tid < 0:
                continue
            point = (float((box[0] + box[2]) / 2), float(box[3]))
            self._points.setdefault(int(tid), deque(maxlen=self.length)).append(point)
            self._last_seen[int(tid)] = instances.frame_index
        # forget tracks not seen for a full trail length
        for tid in [t for t, f in self._last_seen.items() if instances.frame_index - f > self.length]:
            self._points.pop(tid, None)
            self._last_seen.pop(tid, None)

    def items(self):
        return self._points.items()


def annotate(frame: np.ndarray, instances: Instances, layout: KeypointLayout | None = None,
             config: DrawConfig = DrawConfig(), trails: TrailHistory | None = None) -> np.ndarray:
    """Draw boxes, ids, skeletons, keypoints and trails on a copy of ``frame``.

    Parameters
    ----------
    frame : (H, W, 3) uint8, BGR
    instances : Instances
    layout : KeypointLayout, optional
        Needed to draw the skeleton; keypoints alone are drawn without it.
    config : DrawConfig
    trails : TrailHistory, optional

    Returns
    -------
    (H, W, 3) uint8, a new image.
    """
    out = frame.copy()
    thick = config.line_thickness
    if trails is not None:
        for tid, pts in trails.items():
            if len(pts) > 1:
                poly = np.round(np.array(pts)).astype(np.int32).reshape(-1, 1, 2)
                cv2.polylines(out, [poly], False, track_color(tid), max(1, thick - 1), cv2.LINE_AA)
    for i in range(len(instances)):
        color = track_color(int(instances.track_ids[i]))
        x1, y1, x2, y2 = (int(round(v)) for v in instances.boxes_xyxy[i])
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick, cv2.LINE_AA)
        tid = int(instances.track_ids[i])
        label = (f"#{tid} " if tid >= 0 else "") + (instances.categories[i] or "animal")
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        ty = max(y1, th + base + 2)
        cv2.rectangle(out, (x1, ty - th - base - 2), (x1 + tw + 4, ty), color, -1)
        cv2.putText(out, label, (x1 + 2, ty - base - 1), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 0, 0), 1, cv2.LINE_AA)
        if not instances.has_pose:
            continue
        kp = instances.keypoints[i]
        ok = instances.keypoint_scores[i] >= config.keypoint_score_threshold
        if layout is not None:
            for a, b in layout.skeleton:
                if ok[a] and ok[b]:
                    cv2.line(out, tuple(int(round(v)) for v in kp[a]),
                             tuple(int(round(v)) for v in kp[b]), color, thick, cv2.LINE_AA)
        for j in np.flatnonzero(ok):
            centre = tuple(int(round(v)) for v in kp[j])
            cv2.circle(out, centre, config.keypoint_radius, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(out, centre, config.keypoint_radius, color, 1, cv2.LINE_AA)
    return out
