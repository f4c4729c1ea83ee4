"""Constant-velocity Kalman filter on boxes in ``xyah`` space; stateless maths.

The state is ``[cx, cy, a, h, vcx, vcy, va, vh]``: box centre, aspect ratio
``w / h``, height, and their velocities in pixels (or ratio) per frame. Noise is
proportional to the box height, as in SORT/DeepSORT/ByteTrack, so the filter
behaves the same for near and far animals. The single-track ``predict`` and
``update`` run filterpy's equations; this class builds the matrices.
``initiate_packed`` / ``predict_packed`` / ``update_packed`` (and ``multi_*`` on
full matrices) apply the same equations, filterpy's Joseph-form update
included, to all tracks at once in a packed row per track; the tracker uses
them every frame, and tests hold them equal to the filterpy path. The packed
predict and update are compiled loops (numba): a frame holds a handful of
tracks, where NumPy's per-call overhead, not arithmetic, would set the cost.
"""

from __future__ import annotations

import numba
import numpy as np
from filterpy.kalman import predict as kf_predict
from filterpy.kalman import update as kf_update

NDIM = 4
# Columns of a packed row: the mean (values, then velocities), then three diagonal blocks
# of the covariance (value-value, value-velocity, velocity-velocity), NDIM columns each.
MEAN, VEL, PP, PV, VV = (i * NDIM for i in range(5))
PACKED = 5 * NDIM


# Noise rows of KalmanBoxMotion.noise: std = per_height * box height + fixed, per coordinate.
POS_PER_HEIGHT, POS_FIXED, VEL_PER_HEIGHT, VEL_FIXED, MEAS_FIXED = range(5)


@numba.njit(cache=True)
def predict_row(s, i, noise):  # pragma: no cover - compiled
    """Packed predict of row ``i`` of ``s`` (N, 20), in place; ``noise`` as
    :attr:`KalmanBoxMotion.noise`. Callable from other compiled loops."""
    h = s[i, 3]
    for c in range(NDIM):
        v, pp, pv, vv = s[i, VEL + c], s[i, PP + c], s[i, PV + c], s[i, VV + c]
        q_pos = noise[POS_PER_HEIGHT, c] * h + noise[POS_FIXED, c]
        q_vel = noise[VEL_PER_HEIGHT, c] * h + noise[VEL_FIXED, c]
        s[i, MEAN + c] += v
        s[i, PP + c] = pp + 2.0 * pv + vv + q_pos * q_pos
        s[i, PV + c] = pv + vv
        s[i, VV + c] = vv + q_vel * q_vel


@numba.njit(cache=True)
def update_row(s, i, z, noise):  # pragma: no cover - compiled
    """Packed Joseph-form update of row ``i`` of ``s`` (N, 20) with the measured
    box ``z`` (4,) ``xyah``, in place. Callable from other compiled loops."""
    h = s[i, 3]
    for c in range(NDIM):
        x, v, pp, pv, vv = s[i, MEAN + c], s[i, VEL + c], s[i, PP + c], s[i, PV + c], s[i, VV + c]
        r = noise[POS_PER_HEIGHT, c] * h + noise[MEAS_FIXED, c]
        r = r * r
        k_p = pp / (pp + r)      # Kalman gain of the value
        k_v = pv / (pp + r)      # ... and of its velocity
        innovation = z[c] - x
        one = 1.0 - k_p
        s[i, MEAN + c] = x + k_p * innovation
        s[i, VEL + c] = v + k_v * innovation
        # (I - KH) P (I - KH)^T + K R K^T, block by block
        s[i, PP + c] = one * one * pp + k_p * k_p * r
        s[i, PV + c] = one * (pv - k_v * pp) + k_p * k_v * r
        s[i, VV + c] = vv - 2.0 * k_v * pv + k_v * k_v * (pp + r)


@numba.njit(cache=True)
def _predict_rows(s, noise):  # pragma: no cover - compiled
    for i in range(s.shape[0]):
        predict_row(s, i, noise)


@numba.njit(cache=True)
def _update_rows(s, z, noise):  # pragma: no cover - compiled
    for i in range(s.shape[0]):
        update_row(s, i, z[i], noise)


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
        p, v = std_position, std_velocity
        # noise std = per_height * box height + fixed, per coordinate x, y, a, h; one (5, 4)
        # array (rows POS_PER_HEIGHT ... MEAS_FIXED), read by _pos_std & co. and the compiled rows
        self.noise = np.array([[p, p, 0.0, p],
                               [0.0, 0.0, std_aspect, 0.0],
                               [v, v, 0.0, v],
                               [0.0, 0.0, std_aspect_velocity, 0.0],
                               [0.0, 0.0, std_aspect_measurement, 0.0]])
        self.F = np.eye(2 * NDIM)
        self.F[:NDIM, NDIM:] = np.eye(NDIM)
        self.H = np.eye(NDIM, 2 * NDIM)

    # Noise of x, y, a, h for box heights h: a float, or (N, 1) for N tracks at once.
    def _pos_std(self, h, factor: float = 1.0) -> np.ndarray:
        return (self.noise[POS_PER_HEIGHT] * h + self.noise[POS_FIXED]) * factor

    def _vel_std(self, h, factor: float = 1.0) -> np.ndarray:
        return (self.noise[VEL_PER_HEIGHT] * h + self.noise[VEL_FIXED]) * factor

    def _meas_std(self, h) -> np.ndarray:
        return self.noise[POS_PER_HEIGHT] * h + self.noise[MEAS_FIXED]

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
        std = self._meas_std(float(mean[3]))
        z = np.asarray(xyah, dtype=np.float64).reshape(NDIM)
        return kf_update(np.asarray(mean, np.float64), np.asarray(covariance, np.float64),
                         z, R=np.diag(std ** 2), H=self.H)

    # The four coordinates move independently (F, Q, H and R are block-diagonal
    # and initiate() starts from a diagonal covariance), so every covariance is
    # four 2 x 2 (value, velocity) blocks. The packed form keeps a track in one
    # row of PACKED numbers: the mean (8), then per coordinate the variances of
    # the values (4), the value-velocity covariances (4) and the variances of
    # the velocities (4). The *_packed methods work on it column-wise, for all
    # tracks at once; the tracker runs them every frame.
    _P, _V = np.arange(NDIM), np.arange(NDIM) + NDIM
    # flat (row * 8 + col) positions of the pp, pv, vp and vv entries
    _FLAT = np.concatenate([_P * 2 * NDIM + _P, _P * 2 * NDIM + _V, _V * 2 * NDIM + _P, _V * 2 * NDIM + _V])
    _TAKE = np.concatenate([_FLAT[:2 * NDIM], _FLAT[3 * NDIM:]])  # pp, pv, vv

    @classmethod
    def pack(cls, means, covariances) -> np.ndarray:
        """(N, 8) means and (N, 8, 8) block-diagonal covariances -> packed (N, 20)."""
        m = np.asarray(means, np.float64).reshape(-1, 2 * NDIM)
        c = np.asarray(covariances, np.float64).reshape(len(m), 4 * NDIM * NDIM)
        return np.concatenate([m, c[:, cls._TAKE]], axis=1)

    @classmethod
    def unpack(cls, packed) -> tuple[np.ndarray, np.ndarray]:
        """Packed (N, 20) -> (N, 8) means and full (N, 8, 8) covariances."""
        s = np.asarray(packed, np.float64).reshape(-1, PACKED)
        blocks = s[:, PP:]
        out = np.zeros((len(s), 4 * NDIM * NDIM))
        out[:, cls._FLAT] = np.concatenate([blocks[:, :2 * NDIM], blocks[:, NDIM:]], axis=1)
        return s[:, MEAN:PP].copy(), out.reshape(-1, 2 * NDIM, 2 * NDIM)

    def initiate_packed(self, xyah) -> np.ndarray:
        """:meth:`initiate` for (N, 4) first measurements: packed (N, 20) states."""
        z = np.asarray(xyah, np.float64).reshape(-1, NDIM)
        h = z[:, 3:4]
        out = np.zeros((len(z), PACKED))
        out[:, :NDIM] = z
        out[:, 8:12] = self._pos_std(h, 2.0) ** 2
        out[:, 16:20] = self._vel_std(h, 10.0) ** 2
        return out

    def predict_packed(self, packed) -> np.ndarray:
        """:meth:`predict` for packed (N, 20) states; returns a new array."""
        out = np.array(packed, np.float64).reshape(-1, PACKED)
        _predict_rows(out, self.noise)
        return out

    def update_packed(self, packed, xyah) -> np.ndarray:
        """:meth:`update` for packed (N, 20) states, each with its measured box
        (N, 4) as centre x, centre y (pixels), aspect ``w / h``, height (pixels);
        filterpy's Joseph form. Returns a new array."""
        out = np.array(packed, np.float64).reshape(-1, PACKED)
        z = np.asarray(xyah, np.float64).reshape(-1, NDIM)
        if len(z) != len(out):
            raise ValueError(f"{len(out)} states but {len(z)} measurements")
        _update_rows(out, z, self.noise)
        return out

    def multi_predict(self, means, covariances) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` for a stack of (N, 8) means and (N, 8, 8) covariances."""
        return self.unpack(self.predict_packed(self.pack(means, covariances)))

    def multi_update(self, means, covariances, xyah) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`update` for a stack of (N, 8) means, (N, 8, 8) covariances and (N, 4) boxes."""
        return self.unpack(self.update_packed(self.pack(means, covariances), xyah))
