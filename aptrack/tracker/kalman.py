"""Constant-velocity Kalman filter on boxes in ``xyah`` space; stateless maths.

The state is ``[cx, cy, a, h, vcx, vcy, va, vh]``: box centre, aspect ratio
``w / h``, height, and their velocities in pixels (or ratio) per frame. Noise is
proportional to the box height, as in SORT/DeepSORT/ByteTrack, so the filter
behaves the same for near and far animals. The predict and update equations are
filterpy's; this class only builds the matrices.
"""

from __future__ import annotations

import numpy as np
from filterpy.kalman import predict as kf_predict
from filterpy.kalman import update as kf_update

NDIM = 4


class KalmanBoxMotion:
    """Builds the model matrices and runs ``initiate`` / ``predict`` / ``update``.

    Parameters
    ----------
    std_position : float
        Position noise as a fraction of the box height (per frame).
    std_velocity : float
        Velocity noise as a fraction of the box height (per frame).
    std_aspect, std_aspect_velocity, std_aspect_measurement : float
        Absolute noise of the aspect ratio, its velocity and its measurement.
    """

    def __init__(self, std_position: float = 1 / 20, std_velocity: float = 1 / 160,
                 std_aspect: float = 1e-2, std_aspect_velocity: float = 1e-5,
                 std_aspect_measurement: float = 1e-1):
        self.std_position = std_position
        self.std_velocity = std_velocity
        self.std_aspect = std_aspect
        self.std_aspect_velocity = std_aspect_velocity
        self.std_aspect_measurement = std_aspect_measurement
        self.F = np.eye(2 * NDIM)
        self.F[:NDIM, NDIM:] = np.eye(NDIM)
        self.H = np.eye(NDIM, 2 * NDIM)

    def _pos_std(self, h: float, factor: float = 1.0) -> np.ndarray:
        p = self.std_position * h * factor
        return np.array([p, p, self.std_aspect * factor, p])

    def _vel_std(self, h: float, factor: float = 1.0) -> np.ndarray:
        v = self.std_velocity * h * factor
        return np.array([v, v, self.std_aspect_velocity, v])

    def initiate(self, xyah) -> tuple[np.ndarray, np.ndarray]:
        """State from a first measurement: mean (8,) with zero velocity, covariance (8, 8)."""
        z = np.asarray(xyah, dtype=np.float64).reshape(NDIM)
        mean = np.concatenate([z, np.zeros(NDIM)])
        std = np.concatenate([self._pos_std(z[3], 2.0), self._vel_std(z[3], 10.0)])
        return mean, np.diag(std ** 2)

    def predict(self, mean, covariance) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead; returns new arrays."""
        h = float(mean[3])
        q = np.diag(np.concatenate([self._pos_std(h), self._vel_std(h)]) ** 2)
        return kf_predict(np.asarray(mean, np.float64), np.asarray(covariance, np.float64),
                          F=self.F, Q=q)

    def update(self, mean, covariance, xyah) -> tuple[np.ndarray, np.ndarray]:
        """Correct with a measured box ``xyah``; returns new arrays."""
        h = float(mean[3])
        std = np.array([self.std_position * h, self.std_position * h,
                        self.std_aspect_measurement, self.std_position * h])
        z = np.asarray(xyah, dtype=np.float64).reshape(NDIM)
        return kf_update(np.asarray(mean, np.float64), np.asarray(covariance, np.float64),
                         z, R=np.diag(std ** 2), H=self.H)
