"""Keypoint smoothing per track and keypoint: the One-Euro filter (Casiez, Roussel and Vogel, CHI 2012).

A low-pass filter whose cutoff rises with speed: still keypoints lose their
jitter, fast ones keep up. Per keypoint, with ``dt`` the time since the
track's last frame (seconds):

* the speed is the low-passed (cutoff ``d_cutoff`` Hz) derivative of the
  position, in pixels per second;
* the cutoff is ``min_cutoff + beta * |speed|`` Hz;
* the position is low-passed with that cutoff, by the exponential smoothing
  factor ``alpha = 1 / (1 + 1 / (2 pi cutoff dt))``.

:class:`KeypointSmoother` keeps one state per track id; a track starts afresh
when it was unseen for more than ``max_gap`` seconds. It returns new
Instances, leaving its input (the raw keypoints) alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from aptrack.core.errors import ConfigError
from aptrack.core.instances import Instances

SMOOTHING_KINDS = ("none", "one-euro")


@dataclass(frozen=True)
class SmoothingConfig:
    """``kind``: ``none`` or ``one-euro``. ``min_cutoff`` (Hz): the cutoff of a still keypoint, lower is
    smoother. ``beta`` (s/px): how fast the cutoff rises with speed, higher lags less. ``d_cutoff`` (Hz):
    the cutoff of the speed estimate. ``max_gap`` (s): a track unseen longer restarts its filter."""

    kind: str = "none"
    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0
    max_gap: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in SMOOTHING_KINDS:
            raise ConfigError(f"smoothing.kind must be one of {', '.join(SMOOTHING_KINDS)}, got {self.kind!r}")
        for name in ("min_cutoff", "d_cutoff", "max_gap"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"smoothing.{name} must be > 0, got {getattr(self, name)}")
        if self.beta < 0:
            raise ConfigError(f"smoothing.beta must be >= 0, got {self.beta}")


def smoothing_factor(cutoff, dt: float):
    """The exponential smoothing factor of a first-order low-pass at ``cutoff`` Hz over ``dt`` s."""
    return 1.0 / (1.0 + 1.0 / (2.0 * math.pi * np.asarray(cutoff, np.float64) * dt))


class KeypointSmoother:
    """One-Euro filtering of each track's keypoints, frame by frame.

    Parameters
    ----------
    config : SmoothingConfig
    fps : float
        Frames per second of the video (``frame_index / fps`` is the time).
    """

    def __init__(self, config: SmoothingConfig, fps: float):
        self.config = config
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._state: dict[int, tuple[float, np.ndarray, np.ndarray]] = {}  # id -> (time, x_hat, dx_hat)

    def state(self) -> dict:
        """Each track's filter (time in s, smoothed keypoints, their speed), for a resumable run."""
        return dict(self._state)

    def load_state(self, state: dict) -> None:
        """Continue from a :meth:`state`."""
        self._state = {int(k): (float(t), np.asarray(x, np.float64), np.asarray(dx, np.float64))
                       for k, (t, x, dx) in state.items()}

    @property
    def enabled(self) -> bool:
        return self.config.kind != "none"

    def __call__(self, tracked: Instances) -> Instances:
        """``tracked`` with smoothed keypoints (the same object when off or without keypoints)."""
        if not self.enabled or not tracked.num_keypoints or not len(tracked):
            return tracked
        cfg = self.config
        now = tracked.frame_index / self.fps
        out = np.array(tracked.keypoints, np.float64)
        for i, tid in enumerate(tracked.track_ids.tolist()):
            x = out[i]
            state = self._state.get(tid)
            if state is None or not 0 < now - state[0] <= cfg.max_gap:
                self._state[tid] = (now, x.copy(), np.zeros_like(x))
                continue
            then, x_hat, dx_hat = state
            dt = now - then
            dx = (x - x_hat) / dt
            a_d = smoothing_factor(cfg.d_cutoff, dt)
            dx_hat = a_d * dx + (1.0 - a_d) * dx_hat
            cutoff = cfg.min_cutoff + cfg.beta * np.linalg.norm(dx_hat, axis=1, keepdims=True)
            a = smoothing_factor(cutoff, dt)
            x_hat = a * x + (1.0 - a) * x_hat
            self._state[tid] = (now, x_hat, dx_hat)
            out[i] = x_hat
        if len(self._state) > 4 * len(tracked) + 16:  # forget tracks gone for good
            self._state = {k: v for k, v in self._state.items() if now - v[0] <= cfg.max_gap}
        return tracked.with_(keypoints=out)
