"""Settings of the multi-animal tracker."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrackerConfig:
    """ByteTrack-style tracker settings (scores in [0, 1], costs are ``1 - similarity``).

    ``track_buffer`` is how many frames a lost track waits for its animal.
    ``min_hits`` is how many consecutive matched frames a new track needs
    before it gets an id (the first frame of a video is exempt).
    ``oks_weight`` mixes OKS into the similarity when both sides have at least
    ``min_common_keypoints`` keypoints scoring ``keypoint_score_threshold``.
    ``lost_motion_frames``: after this many frames lost, a track stops moving.
    ``new_track_threshold``: detections left over after matching that score at
    least this may start a track or recover a lost one, even below
    ``high_score_threshold``. ``lost_box_buffer``: lost tracks are looked for
    with boxes widened by this fraction of their size on each side (0 turns it
    off), accepting pairs up to ``lost_match_cost_threshold``.
    """

    high_score_threshold: float = 0.5
    low_score_threshold: float = 0.1
    new_track_threshold: float = 0.3
    match_cost_threshold: float = 0.8
    low_match_cost_threshold: float = 0.5
    unconfirmed_match_cost_threshold: float = 0.7
    track_buffer: int = 30
    min_hits: int = 3
    oks_weight: float = 0.1
    keypoint_score_threshold: float = 0.3
    min_common_keypoints: int = 3
    lost_motion_frames: int = 5
    lost_box_buffer: float = 0.3
    lost_match_cost_threshold: float = 0.7
    min_box_area: float = 10.0
