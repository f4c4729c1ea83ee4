"""Scoring: keypoint AP (pycocotools), tracking metrics (motmetrics, TrackEval), the
APTv2 benchmark, tracker comparison, re-tracking saved results, reports."""
