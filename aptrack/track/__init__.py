"""Multi-animal tracking: Kalman motion, cost-matrix assignment, ByteTrack-style update."""

from aptrack.track.kalman import KalmanBoxMotion
from aptrack.track.matching import linear_assignment, similarity_matrix
from aptrack.track.tracker import PoseTracker, TrackState, compile_kernels

__all__ = ["KalmanBoxMotion", "PoseTracker", "TrackState", "compile_kernels", "linear_assignment",
           "similarity_matrix"]
