"""Multi-animal tracking: Kalman motion, cost-matrix assignment, ByteTrack-style update."""

from .kalman import KalmanBoxMotion
from .matching import linear_assignment, oks_matrix, similarity_matrix
from .tracker import PoseTracker, TrackState, compile_kernels

__all__ = ["KalmanBoxMotion", "PoseTracker", "TrackState", "compile_kernels", "linear_assignment", "oks_matrix",
           "similarity_matrix"]
