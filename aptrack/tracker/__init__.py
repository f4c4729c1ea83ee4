"""Multi-animal tracking: Kalman motion, cost-matrix assignment, ByteTrack-style update."""

from .kalman import KalmanBoxMotion
from .matching import linear_assignment, oks_matrix, similarity_matrix
from .tracker import PoseTracker, TrackState

__all__ = ["KalmanBoxMotion", "PoseTracker", "TrackState", "linear_assignment", "oks_matrix",
           "similarity_matrix"]
