"""ByteTrack-style multi-animal tracker with pose-aware association.

Each frame runs these steps:

1. predict every track one frame ahead (Kalman, constant velocity);
2. match confident detections to tracked and lost tracks (IoU mixed with OKS);
3. match low-score detections to the tracked ones still unmatched (IoU);
4. match remaining confident detections to tentative tracks; a tentative track
   that is matched ``min_hits`` frames in a row is confirmed and gets an id;
5. start tentative tracks from confident detections left over;
6. age: unmatched tracks become lost, lost tracks older than ``track_buffer``
   frames are dropped, unmatched tentative tracks are dropped.

A lost track that is matched again keeps its id.
"""

from __future__ import annotations

import enum

import numpy as np

from ..boxes import box_area_xyxy, xyah_to_xyxy, xyxy_to_xyah
from ..config import TrackerConfig
from ..structures import Instances
from .kalman import KalmanBoxMotion
from .matching import linear_assignment, similarity_matrix


class TrackState(enum.Enum):
    TENTATIVE = "tentative"
    TRACKED = "tracked"
    LOST = "lost"
    REMOVED = "removed"


class Track:
    """One animal's state: Kalman mean/covariance, last observation and bookkeeping."""

    def __init__(self, mean, covariance, observation: Instances, frame_index: int, update_index: int):
        self.mean, self.covariance = mean, covariance
        self.track_id = -1
        self.state = TrackState.TENTATIVE
        self.hits = 1  # matched in this many consecutive detection updates
        self.start_frame = frame_index
        self.last_frame = frame_index
        self.last_update = update_index
        self.observe(observation)

    def observe(self, observation: Instances) -> None:
        """Keep the latest matched detection (a one-row :class:`Instances`)."""
        self.observation = observation
        self.last_box_xyxy = observation.boxes_xyxy[0].astype(np.float64)

    @property
    def predicted_box_xyxy(self) -> np.ndarray:
        return xyah_to_xyxy(self.mean[:4])[0]

    @property
    def predicted_keypoints(self) -> np.ndarray:
        """Last keypoints moved with the box: shifted to the predicted centre and scaled by height."""
        kp = self.observation.keypoints[0].astype(np.float64)
        last = xyxy_to_xyah(self.last_box_xyxy)[0]
        if last[3] <= 0:
            return kp
        scale = self.mean[3] / last[3]
        return (kp - last[:2]) * scale + self.mean[:2]


class PoseTracker:
    """Assign persistent track ids to the animals of consecutive frames.

    Parameters
    ----------
    config : TrackerConfig
        Thresholds; see its docstring.
    sigmas : (K,) array_like, optional
        OKS constants of the keypoint layout; without them association is IoU only.
    motion : KalmanBoxMotion, optional
    """

    def __init__(self, config: TrackerConfig = TrackerConfig(), sigmas=None,
                 motion: KalmanBoxMotion | None = None):
        self.config = config
        self.sigmas = None if sigmas is None else np.asarray(sigmas, np.float64)
        self.motion = motion or KalmanBoxMotion()
        self.reset()

    def reset(self) -> None:
        """Forget every track and restart ids at 1 (call between videos or clips)."""
        self.tracks: list[Track] = []
        self.num_ids = 0  # ids handed out since the last reset; the next id is num_ids + 1
        self.frames_seen = 0
        self.updates = 0  # calls of update() (frames with detections)

    # -- helpers -------------------------------------------------------------
    def _similarity(self, tracks: list[Track], dets: Instances, use_pose: bool) -> np.ndarray:
        boxes = np.array([t.predicted_box_xyxy for t in tracks]).reshape(-1, 4)
        if not (use_pose and dets.has_pose and self.sigmas is not None
                and len(self.sigmas) == dets.num_keypoints):
            return similarity_matrix(boxes, dets.boxes_xyxy)
        thr = self.config.keypoint_score_threshold
        kp_t = np.array([t.predicted_keypoints for t in tracks]).reshape(len(tracks), -1, 2)
        vis_t = np.array([t.observation.keypoint_scores[0] >= thr for t in tracks]
                         ).reshape(len(tracks), -1)
        return similarity_matrix(boxes, dets.boxes_xyxy, kp_t, vis_t, dets.keypoints,
                                 dets.keypoint_scores >= thr, self.sigmas,
                                 self.config.oks_weight, self.config.min_common_keypoints)

    def _match(self, tracks: list[Track], dets: Instances, thresh: float, use_pose: bool):
        cost = 1.0 - self._similarity(tracks, dets, use_pose) if tracks and len(dets) else \
            np.zeros((len(tracks), len(dets)))
        return linear_assignment(cost, thresh)

    def _apply(self, track: Track, det: Instances, frame_index: int) -> None:
        track.mean, track.covariance = self.motion.update(
            track.mean, track.covariance, xyxy_to_xyah(det.boxes_xyxy)[0])
        track.observe(det)
        # consecutive detection updates, not frames: with --det-every N they are N frames apart
        track.hits = track.hits + 1 if track.last_update == self.updates - 1 else 1
        track.last_frame = frame_index
        track.last_update = self.updates

    def _confirm(self, track: Track) -> None:
        track.state = TrackState.TRACKED
        if track.track_id < 0:
            self.num_ids += 1
            track.track_id = self.num_ids

    def _predict_all(self, frame_index: int) -> None:
        for t in self.tracks:
            if t.state is TrackState.LOST and frame_index - t.last_frame > self.config.lost_motion_frames:
                t.mean = t.mean.copy()
                t.mean[4:] = 0.0  # long-lost animals are searched for where they were last
            t.mean, t.covariance = self.motion.predict(t.mean, t.covariance)

    # -- main loop -----------------------------------------------------------
    def update(self, detections: Instances) -> Instances:
        """Track one frame of detections.

        Parameters
        ----------
        detections : Instances
            Boxes (and keypoints, if any) of one frame.

        Returns
        -------
        Instances of the confirmed tracks matched in this frame, with their ids,
        sorted by track id. Unmatched detections are dropped.
        """
        cfg = self.config
        f = detections.frame_index
        first_frame = self.frames_seen == 0
        self.frames_seen += 1
        self.updates += 1
        detections = detections[box_area_xyxy(detections.boxes_xyxy) >= cfg.min_box_area]

        # 1. predict
        self._predict_all(f)
        high = detections[detections.scores >= cfg.high_score_threshold]
        low = detections[(detections.scores >= cfg.low_score_threshold)
                         & (detections.scores < cfg.high_score_threshold)]
        confirmed = [t for t in self.tracks if t.state in (TrackState.TRACKED, TrackState.LOST)]
        tentative = [t for t in self.tracks if t.state is TrackState.TENTATIVE]
        output: list[tuple[Track, Instances]] = []

        # 2. confident detections against tracked and lost tracks
        matches, um_tracks, um_high = self._match(confirmed, high, cfg.match_cost_threshold, True)
        for ti, di in matches:
            self._apply(confirmed[ti], high[di], f)
            confirmed[ti].state = TrackState.TRACKED
            output.append((confirmed[ti], high[di]))

        # 3. low-score detections against tracked (not lost) tracks still unmatched
        remaining = [confirmed[i] for i in um_tracks if confirmed[i].state is TrackState.TRACKED]
        matches, um_rem, _ = self._match(remaining, low, cfg.low_match_cost_threshold, False)
        for ti, di in matches:
            self._apply(remaining[ti], low[di], f)
            output.append((remaining[ti], low[di]))
        for i in um_rem:
            remaining[i].state = TrackState.LOST

        # 4. leftover confident detections against tentative tracks
        left = high[um_high]
        matches, um_tent, um_left = self._match(tentative, left, cfg.unconfirmed_match_cost_threshold, True)
        for ti, di in matches:
            track = tentative[ti]
            self._apply(track, left[di], f)
            if track.hits >= cfg.min_hits:
                self._confirm(track)
                output.append((track, left[di]))
        for i in um_tent:
            tentative[i].state = TrackState.REMOVED

        # 5. new tentative tracks from confident detections nobody claimed
        for di in um_left:
            det = left[di]
            if det.scores[0] < cfg.new_track_threshold:
                continue
            mean, cov = self.motion.initiate(xyxy_to_xyah(det.boxes_xyxy)[0])
            track = Track(mean, cov, det, f, self.updates)
            self.tracks.append(track)
            if first_frame or cfg.min_hits <= 1:
                self._confirm(track)
                output.append((track, det))

        # 6. ageing
        for t in self.tracks:
            if t.state is TrackState.LOST and f - t.last_frame > cfg.track_buffer:
                t.state = TrackState.REMOVED
        self.tracks = [t for t in self.tracks if t.state is not TrackState.REMOVED]
        return self._emit(output, f, detections.num_keypoints)

    def predict_only(self, frame_index: int) -> Instances:
        """Advance a frame without detections (``--det-every``): predicted boxes of tracked animals."""
        self.frames_seen += 1
        self._predict_all(frame_index)
        output = []
        for t in self.tracks:
            if t.state is TrackState.TRACKED:
                obs = t.observation
                output.append((t, obs.with_(boxes_xyxy=t.predicted_box_xyxy[None],
                                            keypoints=t.predicted_keypoints[None])))
        k = output[0][1].num_keypoints if output else 0
        return self._emit(output, frame_index, k)

    @staticmethod
    def _emit(output, frame_index: int, num_keypoints: int) -> Instances:
        if not output:
            return Instances.empty(num_keypoints, frame_index)
        output.sort(key=lambda pair: pair[0].track_id)
        out = Instances.concatenate([obs for _, obs in output], frame_index=frame_index)
        return out.with_(track_ids=np.array([t.track_id for t, _ in output]))
