"""Constant-velocity Kalman filter on boxes in ``xyah`` space; stateless maths.

The state is ``[cx, cy, a, h, vcx, vcy, va, vh]``: box centre, aspect ratio
``w / h``, height, and their velocities in pixels (or ratio) per frame. Noise is
proportional to the box height, as in SORT/DeepSORT/ByteTrack, so the filter
behaves the same for near and far animals. The single-track ``predict`` and
``update`` run filterpy's equations; this class builds the matrices.
``predict_blocks`` / ``update_blocks`` (and ``multi_*`` on full matrices)
apply the same equations, filterpy's Joseph-form update included, to all
tracks at once; the tracker uses them every frame, and tests hold them equal
to the filterpy path.
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

    def _process_var(self, h: np.ndarray) -> np.ndarray:
        """Diagonal of the process noise for heights ``h`` (N,): (N, 8) variances."""
        p, v = self.std_position, self.std_velocity
        per_height = np.array([p, p, 0.0, p, v, v, 0.0, v])
        fixed = np.array([0.0, 0.0, self.std_aspect, 0.0, 0.0, 0.0, self.std_aspect_velocity, 0.0])
        return (h[:, None] * per_height + fixed) ** 2

    def _measurement_var(self, h: np.ndarray) -> np.ndarray:
        """Diagonal of the measurement noise for heights ``h`` (N,): (N, 4) variances."""
        p = self.std_position
        per_height = np.array([p, p, 0.0, p])
        fixed = np.array([0.0, 0.0, self.std_aspect_measurement, 0.0])
        return (h[:, None] * per_height + fixed) ** 2

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

    # The four coordinates move independently (F, Q, H and R are block-diagonal
    # and initiate() starts from a diagonal covariance), so every covariance is
    # four 2 x 2 (value, velocity) blocks. The compact form keeps those blocks
    # as (N, 3, 4): variances of the values, value-velocity covariances and
    # variances of the velocities, per coordinate; the *_blocks methods work on
    # it element-wise, which is what the tracker runs every frame.
    _P, _V = np.arange(NDIM), np.arange(NDIM) + NDIM
    # flat (row * 8 + col) positions of the pp, pv, vp and vv entries
    _FLAT = np.concatenate([_P * 2 * NDIM + _P, _P * 2 * NDIM + _V, _V * 2 * NDIM + _P, _V * 2 * NDIM + _V])
    _TAKE = np.concatenate([_FLAT[:2 * NDIM], _FLAT[3 * NDIM:]])  # pp, pv, vv

    @classmethod
    def to_blocks(cls, covariances) -> np.ndarray:
        """(N, 8, 8) block-diagonal covariances -> compact (N, 3, 4)."""
        c = np.asarray(covariances, np.float64).reshape(-1, 4 * NDIM * NDIM)
        return c[:, cls._TAKE].reshape(-1, 3, NDIM)

    @classmethod
    def from_blocks(cls, blocks) -> np.ndarray:
        """Compact (N, 3, 4) -> full (N, 8, 8) covariances."""
        b = np.asarray(blocks, np.float64).reshape(-1, 3, NDIM)
        out = np.zeros((len(b), 4 * NDIM * NDIM))
        out[:, cls._FLAT] = np.concatenate([b[:, 0], b[:, 1], b[:, 1], b[:, 2]], axis=1)
        return out.reshape(-1, 2 * NDIM, 2 * NDIM)

    def predict_blocks(self, means, blocks) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` for N tracks in compact form.

        Parameters
        ----------
        means : (N, 8) array_like
        blocks : (N, 3, 4) array_like, see :meth:`to_blocks`

        Returns
        -------
        New (N, 8) means and (N, 3, 4) blocks, float64.
        """
        x = np.array(means, np.float64).reshape(-1, 2 * NDIM)
        pp, pv, vv = np.asarray(blocks, np.float64).reshape(-1, 3, NDIM).transpose(1, 0, 2)
        q = self._process_var(x[:, 3])
        x[:, :NDIM] += x[:, NDIM:]
        out = np.empty((len(x), 3, NDIM))
        out[:, 0] = pp + 2 * pv + vv + q[:, :NDIM]
        out[:, 1] = pv + vv
        out[:, 2] = vv + q[:, NDIM:]
        return x, out

    def update_blocks(self, means, blocks, xyah) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`update` for N tracks in compact form, each with its measured box.

        Parameters
        ----------
        means : (N, 8) array_like
        blocks : (N, 3, 4) array_like, see :meth:`to_blocks`
        xyah : (N, 4) array_like
            Measured boxes as centre x, centre y (pixels), aspect ``w / h``, height (pixels).

        Returns
        -------
        New (N, 8) means and (N, 3, 4) blocks, float64.
        """
        x = np.array(means, np.float64).reshape(-1, 2 * NDIM)
        pp, pv, vv = np.asarray(blocks, np.float64).reshape(-1, 3, NDIM).transpose(1, 0, 2)
        z = np.asarray(xyah, np.float64).reshape(-1, NDIM)
        r = self._measurement_var(x[:, 3])
        s = pp + r
        k_p, k_v = pp / s, pv / s                     # Kalman gain of value and velocity
        innovation = z - x[:, :NDIM]
        x[:, :NDIM] += k_p * innovation
        x[:, NDIM:] += k_v * innovation
        # Joseph form, as filterpy: (I - KH) P (I - KH)^T + K R K^T
        one = 1.0 - k_p
        out = np.empty((len(x), 3, NDIM))
        out[:, 0] = one * one * pp + k_p * k_p * r
        out[:, 1] = one * (pv - k_v * pp) + k_p * k_v * r
        out[:, 2] = vv - 2 * k_v * pv + k_v * k_v * (pp + r)
        return x, out

    def multi_predict(self, means, covariances) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` for a stack of (N, 8) means and (N, 8, 8) covariances."""
        x, b = self.predict_blocks(means, self.to_blocks(covariances))
        return x, self.from_blocks(b)

    def multi_update(self, means, covariances, xyah) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`update` for a stack of (N, 8) means, (N, 8, 8) covariances and (N, 4) boxes."""
        x, b = self.update_blocks(means, self.to_blocks(covariances), xyah)
        return x, self.from_blocks(b)
