"""ByteTrack-style multi-animal tracker with pose-aware association.

Each frame runs these steps:

1. predict every track one frame ahead (Kalman, constant velocity);
2. match confident detections to tracked and lost tracks (IoU mixed with OKS
   and, with embeddings, appearance; pairs that look too unlike never match,
   nor, with ``yield_look_max``, a tracked animal and a box that looks more
   like an animal in cover beside it);
3. match low-score detections to the tracked ones still unmatched (IoU); the
   tracked ones still unmatched become lost;
4. match the detections left over that score at least ``new_track_threshold``
   (which may be below ``high_score_threshold``) to lost tracks by the IoU of
   widened boxes (``lost_box_buffer``, as in C-BIoU, growing with the time
   lost by ``lost_buffer_growth``), so an animal that moved while hidden gets
   its id back instead of a new one (with ``lost_yield_iou``, not by a box
   over an animal that went unmatched in this frame); then, when the detections carry
   appearance embeddings, match the rest to lost tracks by appearance alone
   (re-identification, anywhere in the frame);
5. match the rest to tentative tracks; a tentative track matched ``min_hits``
   frames in a row is confirmed and gets an id;
6. start tentative tracks from those still left over (on a video's first frame
   they are confirmed at once);
7. age: lost tracks older than ``track_buffer`` frames are dropped, unmatched
   tentative tracks are dropped.

With a known number of animals (``max_animals``, ``--animals N``) at most N
ids are made; once all N are out, step 4 ends by giving each detection still
left over to the most likely lost animal, wherever it is, steps 5 and 6 make
no track, and step 7 drops no animal.

A lost track that is matched again keeps its id.

The tracks live in a table of NumPy arrays, one row per track, and each step
works on index arrays into it and into the frame's detections. Compiled loops
(numba, compiled on first use and cached on disk) do the per-frame work on the
whole table in place: the Kalman predict and update (the packed form of
:class:`KalmanBoxMotion`), the similarity matrices, the common case of the
assignment, the split of detections by score, and the ageing. With a handful
of animals per frame a tracker's time is per-call overhead, not arithmetic, so
a frame costs about ten compiled calls and a few dozen small NumPy ones.
"""

from __future__ import annotations

import enum
import logging

import numba
import numpy as np

from aptrack.core.boxes import (
    box_area_scalar,
    box_area_xyxy,
    box_intersection_scalar,
    box_iou_loops,
    box_iou_xyxy,
    box_share_inside_xyxy,
    widened_xyxy,
    xyah_to_xyxy_scalar,
    xyxy_to_xyah,
    xyxy_to_xyah_scalar,
)
from aptrack.core.instances import Instances
from aptrack.track.config import TrackerConfig
from aptrack.track.kalman import MEAN, PACKED, PP, VEL, KalmanBoxMotion, predict_row, update_row
from aptrack.track.matching import assign_subsets, known_animal_similarity, track_similarities

log = logging.getLogger(__name__)

_EMPTY = np.zeros(0, np.int64)
_FOREVER = np.iinfo(np.int64).max // 4  # a track buffer no video reaches


class TrackState(enum.IntEnum):
    """Codes of the tracker's ``state`` column."""

    TENTATIVE = 0
    TRACKED = 1
    LOST = 2
    REMOVED = 3


# plain ints for the per-frame loop (enum attribute lookups cost more than the maths)
_TENTATIVE, _TRACKED, _LOST, _REMOVED = (int(s) for s in TrackState)


def moved_keypoints(keypoints, boxes_xyxy, means) -> np.ndarray:
    """Keypoints (T, K, 2) observed with boxes (T, 4), moved to the predicted states (T, 8).

    Each pose is shifted with its box centre and scaled by the ratio of box
    heights; a pose whose box had no height stays where it was.
    """
    last = xyxy_to_xyah(boxes_xyxy)
    ok = last[:, 3] > 0
    scale = np.where(ok, means[:, 3] / np.where(ok, last[:, 3], 1.0), 1.0)
    shift = np.where(ok[:, None], means[:, :2], last[:, :2])
    return (np.asarray(keypoints, np.float64) - last[:, None, :2]) * scale[:, None, None] + shift[:, None, :]


def _match(similarity: np.ndarray, tracks: np.ndarray, rows: np.ndarray, thresh: float):
    """Assign ``tracks`` to detection ``rows`` by cost ``1 - similarity`` (a (T, N) matrix);
    returns (matched tracks, their rows, unmatched tracks, unmatched rows), int64 arrays."""
    matches, um_tracks, um_rows = assign_subsets(similarity, tracks, rows, thresh)
    return matches[:, 0], matches[:, 1], um_tracks, um_rows


# Columns of the tracker's integer table (see PoseTracker._init_table).
_ID, _STATE, _HITS, _LAST_FRAME, _LAST_UPDATE, _ROW = range(6)
_INT_COLUMNS = 6

# Columns of the observation table: the box (xyxy), then each keypoint's x and y,
# then each keypoint's score; with K keypoints a row is obs_width(K) long.
OBS_BOX = 4


@numba.njit(cache=True, inline="always")
def obs_x(q):  # pragma: no cover - compiled
    """Column of keypoint ``q``'s x (its y is the next one)."""
    return OBS_BOX + 2 * q


@numba.njit(cache=True, inline="always")
def obs_score(k, q):  # pragma: no cover - compiled
    """Column of keypoint ``q``'s score in a table of ``k`` keypoints."""
    return OBS_BOX + 2 * k + q


def obs_width(k: int) -> int:
    """Columns of an observation row with ``k`` keypoints."""
    return OBS_BOX + 3 * k


@numba.njit(cache=True)
def _split_by_score(boxes, scores, min_area, high_threshold, low_threshold):  # pragma: no cover - compiled
    """Rows of the detections with a box of at least ``min_area`` pixels^2 that score
    ``>= high_threshold`` (confident) and ``[low_threshold, high_threshold)`` (low)."""
    high = np.empty(scores.shape[0], np.int64)
    low = np.empty(scores.shape[0], np.int64)
    n_high = n_low = 0
    for r in range(scores.shape[0]):
        area = box_area_scalar(np.float64(boxes[r, 0]), np.float64(boxes[r, 1]), np.float64(boxes[r, 2]),
                               np.float64(boxes[r, 3]))
        if area < min_area:
            continue
        if scores[r] >= high_threshold:
            high[n_high] = r
            n_high += 1
        elif scores[r] >= low_threshold:
            low[n_low] = r
            n_low += 1
    return high[:n_high].copy(), low[:n_low].copy()


@numba.njit(cache=True)
def _expired(ints, frame_index, track_buffer):  # pragma: no cover - compiled
    """Step 7: which tracks to drop (removed, or lost for more than ``track_buffer`` frames), and how many."""
    drop = np.zeros(ints.shape[0], np.bool_)
    count = 0
    for t in range(ints.shape[0]):
        state = ints[t, _STATE]
        if state == _REMOVED or (state == _LOST and frame_index - ints[t, _LAST_FRAME] > track_buffer):
            drop[t] = True
            count += 1
    return drop, count


@numba.njit(cache=True)
def _predict_table(kf, pred, ints, frame_index, lost_motion_frames, noise):  # pragma: no cover - compiled
    """Step 1 on every track, in place: Kalman predict (velocity dropped for tracks
    lost more than ``lost_motion_frames``), then the predicted boxes ``pred`` (T, 4) xyxy."""
    for t in range(kf.shape[0]):
        if ints[t, _STATE] == _LOST and frame_index - ints[t, _LAST_FRAME] > lost_motion_frames:
            kf[t, VEL:PP] = 0.0  # long-lost animals are searched for where they were last
        predict_row(kf, t, noise)
        pred[t, 0], pred[t, 1], pred[t, 2], pred[t, 3] = xyah_to_xyxy_scalar(kf[t, 0], kf[t, 1], kf[t, 2], kf[t, 3])


@numba.njit(cache=True)
def _observe_rows(kf, obs, ints, tracks, rows, boxes, keypoints, keypoint_scores, frame_index, updates,
                  noise):  # pragma: no cover - compiled
    """Record detection ``rows`` as the last observations of ``tracks``, in place:
    the observation table, the Kalman correction and the bookkeeping columns."""
    k = keypoints.shape[1]
    z = np.empty(4)
    for p in range(tracks.shape[0]):
        t, r = tracks[p], rows[p]
        for c in range(OBS_BOX):
            obs[t, c] = boxes[r, c]
        for q in range(k):
            obs[t, obs_x(q)] = keypoints[r, q, 0]
            obs[t, obs_x(q) + 1] = keypoints[r, q, 1]
            obs[t, obs_score(k, q)] = keypoint_scores[r, q]
        z[0], z[1], z[2], z[3] = xyxy_to_xyah_scalar(obs[t, 0], obs[t, 1], obs[t, 2], obs[t, 3])
        update_row(kf, t, z, noise)
        # consecutive detection updates, not frames: with --det-every N they are N frames apart
        ints[t, _HITS] = ints[t, _HITS] + 1 if ints[t, _LAST_UPDATE] == updates - 1 else 1
        ints[t, _LAST_FRAME] = frame_index
        ints[t, _LAST_UPDATE] = updates
        ints[t, _ROW] = r


@numba.njit(cache=True)
def _has_embedding(emb):  # pragma: no cover - compiled
    """(R,) bool: rows of ``emb`` that are not all zero."""
    out = np.zeros(emb.shape[0], np.bool_)
    for i in range(emb.shape[0]):
        for d in range(emb.shape[1]):
            if emb[i, d] != 0:
                out[i] = True
                break
    return out


@numba.njit(cache=True)
def _cosine_table(emb_tracks, emb_dets):  # pragma: no cover - compiled
    """(T, N) dot products of unit-length (or zero) embeddings, and where both rows have one."""
    has_t, has_d = _has_embedding(emb_tracks), _has_embedding(emb_dets)
    t_count, n_count = emb_tracks.shape[0], emb_dets.shape[0]
    sim = np.zeros((t_count, n_count))
    valid = np.zeros((t_count, n_count), np.bool_)
    for i in range(t_count):
        if not has_t[i]:
            continue
        for j in range(n_count):
            if has_d[j]:
                total = 0.0
                for d in range(emb_tracks.shape[1]):
                    total += emb_tracks[i, d] * emb_dets[j, d]
                sim[i, j] = total
                valid[i, j] = True
    return sim, valid


@numba.njit(cache=True)
def _clean_rows(boxes, emb, confident, max_overlap):  # pragma: no cover - compiled
    """(N,) bool: ``confident`` rows with an embedding whose box overlaps no other box by more than ``max_overlap``."""
    n = boxes.shape[0]
    has = _has_embedding(emb)
    ok = np.zeros(n, np.bool_)
    b = boxes.astype(np.float64)
    iou = box_iou_loops(b, b)
    for p in range(confident.shape[0]):
        r = confident[p]
        if not has[r]:
            continue
        worst = 0.0
        for j in range(n):
            if j != r and iou[r, j] > worst:
                worst = iou[r, j]
        ok[r] = worst <= max_overlap
    return ok


@numba.njit(cache=True)
def _update_embedding_rows(emb, look_area, ints, tracks, rows, det_emb, det_boxes, clean, momentum,
                           min_similarity):  # pragma: no cover - compiled
    """In place: each track's embedding mixed with its detection's where ``clean[row]`` and the two
    look at least ``min_similarity`` alike (``momentum`` the old one's weight), renormalised;
    tracks without one, and tentative ones, take the detection's. ``look_area`` (T,) records the
    area (pixels^2) of the box whose crop last taught each updated track its look."""
    dim = emb.shape[1]
    mixed = np.empty(dim)
    for p in range(tracks.shape[0]):
        t, r = tracks[p], rows[p]
        if not clean[r]:
            continue
        fresh = ints[t, _STATE] == _TENTATIVE
        if not fresh:
            fresh = True
            for d in range(dim):
                if emb[t, d] != 0:
                    fresh = False
                    break
        if not fresh:
            agree = 0.0
            for d in range(dim):
                agree += emb[t, d] * det_emb[r, d]
            if agree < min_similarity:  # a crop unlike the animal (half hidden, say) teaches it nothing
                continue
        norm = 0.0
        for d in range(dim):
            mixed[d] = det_emb[r, d] if fresh else momentum * emb[t, d] + (1.0 - momentum) * det_emb[r, d]
            norm += mixed[d] * mixed[d]
        norm = np.sqrt(norm)
        for d in range(dim):
            emb[t, d] = mixed[d] / norm if norm > 0 else 0.0
        look_area[t] = box_area_scalar(np.float64(det_boxes[r, 0]), np.float64(det_boxes[r, 1]),
                                       np.float64(det_boxes[r, 2]), np.float64(det_boxes[r, 3]))


@numba.njit(cache=True)
def _appearance_step(emb_tracks, emb_dets, iou, mixed, gate, weight):  # pragma: no cover - compiled
    """Step 2's appearance in one call: the (T, N) cosine table and where both sides have an
    embedding (:func:`_cosine_table`); then, in place on ``iou`` and ``mixed``, pairs that look less
    alike than ``gate`` get similarity 0 (returned as ``veto``); and ``mixed`` with ``weight`` of the
    appearance mixed in for pairs whose boxes overlap (appearance tells apart, IoU gates)."""
    app, valid = _cosine_table(emb_tracks, emb_dets)
    veto = np.zeros(iou.shape, np.bool_)
    first = mixed.copy()
    for i in range(iou.shape[0]):
        for j in range(iou.shape[1]):
            if not valid[i, j]:
                continue
            if app[i, j] < gate:
                veto[i, j] = True
                iou[i, j] = mixed[i, j] = first[i, j] = 0.0
            elif weight > 0 and iou[i, j] > 0:
                first[i, j] = (1.0 - weight) * mixed[i, j] + weight * min(max(app[i, j], 0.0), 1.0)
    return app, valid, veto, first


@numba.njit(cache=True)
def _yield_to_lost(app, valid, overlap, ints, frame_index, in_cover_after, look_max, margin, veto, iou,
                   first):  # pragma: no cover - compiled
    """Step 2's ``yield_look_max`` rule, in place on ``veto``, ``iou`` and ``first`` (T, N): a detection that
    overlaps a tracked animal but looks less than ``look_max`` like it is not that animal's when an animal in
    cover (lost for more than ``in_cover_after`` frames) whose predicted box it overlaps looks more like it:
    one animal slides into cover where the other comes out, under one box, and the box is the one coming
    out's as soon as its look says so. With ``margin`` > 0, a box that looks less than ``look_max`` like the
    tracked animal and at most ``margin`` more than like the animal in cover is contested: neither's (the
    box around the one going in and the one coming out, as much the one as the other). ``app``, ``valid``:
    (T, N) cosines and where both sides have a look; ``overlap``: (T, N) IoU before the look gate zeroed
    pairs."""
    in_cover = (ints[:, _STATE] == _LOST) & (frame_index - ints[:, _LAST_FRAME] > in_cover_after)  # (T,)
    for d in range(app.shape[1]):
        best = -np.inf  # the best look of an animal in cover that the box overlaps
        for t in range(app.shape[0]):
            if in_cover[t] and valid[t, d] and overlap[t, d] > 0 and app[t, d] > best:
                best = app[t, d]
        if best == -np.inf:
            continue
        contested = False
        for t in range(app.shape[0]):
            if (ints[t, _STATE] == _TRACKED and valid[t, d] and overlap[t, d] > 0 and app[t, d] < look_max
                    and app[t, d] < best + margin):
                veto[t, d] = True
                iou[t, d] = 0.0
                first[t, d] = 0.0
                if app[t, d] >= best:
                    contested = True
        if contested:  # about as like the one in cover as the tracked one: neither's
            for t in range(app.shape[0]):
                if in_cover[t] and overlap[t, d] > 0:
                    veto[t, d] = True
                    iou[t, d] = 0.0
                    first[t, d] = 0.0


@numba.njit(cache=True)
def _relook_pairs(app, valid, tracks, rows, clean, ints, relook_frames, min_similarity,
                  margin):  # pragma: no cover - compiled
    """:meth:`PoseTracker._correct_looks`' choice: (P, 2) int64 (track, lost track) pairs, best gain
    first, each track and lost track at most once. A pair needs a clean crop (``clean`` (N,) of the
    track's row), a track with an id within ``relook_frames`` matched frames, a look of its own, the
    lost one's look at least ``min_similarity`` and at least ``margin`` above its own."""
    lost = np.nonzero((ints[:, _STATE] == _LOST) & (ints[:, _ID] >= 0))[0]
    out = np.empty((0, 2), np.int64)
    if len(lost) == 0:
        return out
    gain = np.full((len(lost), len(tracks)), -np.inf)
    for p in range(len(tracks)):
        t, r = tracks[p], rows[p]
        if not clean[r] or ints[t, _HITS] > relook_frames or ints[t, _ID] < 0 or not valid[t, r]:
            continue
        for li in range(len(lost)):
            l = lost[li]
            if valid[l, r] and app[l, r] >= min_similarity and app[l, r] - app[t, r] >= margin:
                gain[li, p] = app[l, r] - app[t, r]
    pairs = []
    while True:
        k = np.argmax(gain)
        li, p = k // gain.shape[1], k % gain.shape[1]
        if not np.isfinite(gain[li, p]):
            break
        pairs.append((tracks[p], lost[li]))
        gain[li, :] = -np.inf
        gain[:, p] = -np.inf
    if len(pairs) == 0:
        return out
    return np.array(pairs, np.int64)


@numba.njit(cache=True)
def _merged_kernel(pred, tracked, dets_xyxy, cover, growth):  # pragma: no cover - compiled
    """:meth:`PoseTracker._merged_rows`' test, (M,) bool: detections covering at least ``cover`` of
    the predicted boxes ``pred`` of two or more ``tracked`` tracks, and ``growth`` times the largest."""
    out = np.zeros(len(dets_xyxy), np.bool_)
    for d in range(len(dets_xyxy)):
        b = dets_xyxy[d]
        count, largest = 0, 0.0
        for t in tracked:
            q = pred[t]
            area = max(box_area_scalar(q[0], q[1], q[2], q[3]), 1e-9)
            if box_intersection_scalar(q[0], q[1], q[2], q[3], b[0], b[1], b[2], b[3]) / area >= cover:
                count += 1
                largest = max(largest, area)
        out[d] = count >= 2 and box_area_scalar(b[0], b[1], b[2], b[3]) >= growth * largest
    return out


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
        self.num_ids = 0  # ids handed out since the last reset; the next id is num_ids + 1
        self.frames_seen = 0
        self.updates = 0  # calls of update() (frames with detections)
        self._init_table(0)

    _STATE_FIELDS = ("num_ids", "frames_seen", "updates", "_kf", "_obs", "_int", "_pred", "_emb", "_look_area",
                     "_source")

    def state(self) -> dict:
        """Everything :meth:`update` remembers between frames (tracks, Kalman states, lost buffer,
        id counter), as plain values and arrays for :mod:`aptrack.core.statefile`."""
        return {name: getattr(self, name) for name in self._STATE_FIELDS}

    def load_state(self, state: dict) -> None:
        """Continue from a :meth:`state` (of a tracker with the same config)."""
        missing = set(self._STATE_FIELDS) - set(state)
        if missing:
            raise ValueError(f"tracker state lacks {sorted(missing)}")
        for name in self._STATE_FIELDS:
            value = state[name]
            setattr(self, name, list(value) if name == "_source" else value)

    # -- the track table ------------------------------------------------------
    # One row per track in three arrays, so that each step reads and writes a
    # few whole arrays: ``_kf`` packed Kalman states (see KalmanBoxMotion),
    # ``_obs`` the last observation (box xyxy | keypoints x, y | keypoint
    # scores), ``_int`` the bookkeeping columns ``_ID`` ... ``_ROW``. ``_pred`` holds this
    # frame's predicted boxes, ``_source`` the Instances each last observation
    # came from.

    def _init_table(self, num_keypoints: int) -> None:
        self._kf = np.zeros((0, PACKED))
        self._obs = np.zeros((0, obs_width(num_keypoints)))
        self._int = np.zeros((0, _INT_COLUMNS), np.int64)
        self._pred = np.zeros((0, 4))
        self._emb = np.zeros((0, 0), np.float32)  # appearance embedding per track (zeros: none yet)
        self._look_area = np.zeros(0)  # area of the box whose crop last taught each track its look (0: none)
        self._source: list[Instances] = []

    @property
    def _k(self) -> int:
        """Keypoints per track in ``_obs``."""
        return (self._obs.shape[1] - OBS_BOX) // 3

    def _observations(self, dets: Instances, rows: np.ndarray) -> np.ndarray:
        """Rows of ``_obs`` for detection ``rows``."""
        n = len(rows)
        return np.concatenate([dets.boxes_xyxy[rows], dets.keypoints[rows].reshape(n, -1),
                               dets.keypoint_scores[rows]], axis=1)

    def _box(self, tracks=slice(None)) -> np.ndarray:
        return self._obs[tracks, :OBS_BOX]

    def _keypoints(self, tracks=slice(None)) -> np.ndarray:
        flat = self._obs[tracks, OBS_BOX:obs_score(self._k, 0)]
        return flat.reshape(len(flat), self._k, 2)

    def _keypoint_scores(self, tracks=slice(None)) -> np.ndarray:
        return self._obs[tracks, obs_score(self._k, 0):]

    def _append(self, dets: Instances, rows: np.ndarray, frame_index: int) -> np.ndarray:
        """New tentative tracks from detection ``rows``; returns their table indices."""
        start, n = len(self._int), len(rows)
        obs = self._observations(dets, rows)
        ints = np.empty((n, _INT_COLUMNS), np.int64)
        ints[:, [_ID, _STATE, _HITS, _LAST_FRAME, _LAST_UPDATE]] = (
            -1, _TENTATIVE, 1, frame_index, self.updates)
        ints[:, _ROW] = rows
        self._kf = np.concatenate([self._kf, self.motion.initiate_packed(xyxy_to_xyah(obs[:, :OBS_BOX]))])
        self._obs = np.concatenate([self._obs, obs])
        self._int = np.concatenate([self._int, ints])
        self._pred = np.concatenate([self._pred, obs[:, :OBS_BOX]])
        self._emb = np.concatenate([self._emb, np.zeros((n, self._emb.shape[1]), np.float32)])
        self._look_area = np.concatenate([self._look_area, np.zeros(n)])
        self._source.extend([dets] * n)
        return np.arange(start, start + n)

    def _keep(self, keep: np.ndarray) -> None:
        self._kf, self._obs, self._int, self._pred = (self._kf[keep], self._obs[keep], self._int[keep],
                                                      self._pred[keep])
        self._emb, self._look_area = self._emb[keep], self._look_area[keep]
        self._source = [s for s, k in zip(self._source, keep.tolist()) if k]

    def _observe(self, tracks: np.ndarray, dets: Instances, rows: np.ndarray, frame_index: int) -> None:
        """Record detection ``rows`` as the observations of ``tracks`` and correct their Kalman states."""
        if not len(tracks):
            return
        _observe_rows(self._kf, self._obs, self._int, tracks, rows, dets.boxes_xyxy, dets.keypoints,
                      dets.keypoint_scores, frame_index, self.updates, self.motion.noise)
        for t in tracks.tolist():
            self._source[t] = dets

    def _match_looks(self, sim: np.ndarray, lost: np.ndarray, cols: np.ndarray, confirmed: np.ndarray):
        """Lost tracks against columns ``cols`` of ``sim`` ((T, M) cosine similarities with the
        tracks as rows, -1 where a side has no embedding) by look alone: a pair needs
        ``reid_min_similarity`` and to beat the column's similarity with every other ``confirmed``
        track by ``reid_margin``. Returns the (tracks, columns) of the pairs kept."""
        cfg = self.config
        t, c, _, _ = _match(np.clip(sim, 0.0, 1.0), lost, cols, 1.0 - cfg.reid_min_similarity)
        if len(t):
            others = np.where(confirmed[:, None] == t[None, :], -1.0, sim[confirmed][:, c])  # (C, P)
            keep = sim[t, c] - others.max(axis=0, initial=-1.0) >= cfg.reid_margin
            t, c = t[keep], c[keep]
        return t, c

    def _reidentify(self, app: np.ndarray, valid: np.ndarray, lost: np.ndarray, dets: Instances, rows: np.ndarray,
                    confirmed: np.ndarray):
        """Lost tracks against detection ``rows`` by appearance alone (:meth:`_match_looks`), for
        detections whose box is at least ``reid_min_area_ratio`` of the lost track's last one (the
        first sliver of an animal coming out from cover looks like anything). Returns (tracks,
        rows, unmatched rows)."""
        if not len(lost) or not len(rows):
            return _EMPTY, _EMPTY, rows
        whole = self._whole(dets, self.config.reid_min_area_ratio)
        t, r = self._match_looks(np.where(valid & whole, app, -1.0), lost, rows, confirmed)
        return t, r, np.setdiff1d(rows, r, assume_unique=True)

    def _correct_looks(self, app: np.ndarray, valid: np.ndarray, tracks: np.ndarray, rows: np.ndarray,
                       clean: np.ndarray) -> None:
        """Ids given by a poor look, taken back once the animal is seen clearly.

        A confirmed track matched to detection row ``rows[i]`` within ``relook_frames`` matched
        frames of being found (or re-found), on a clean crop, whose look matches a lost track's
        embedding by at least ``relook_min_similarity`` and beats its own by ``relook_margin``,
        is that lost animal: the two rows exchange their ids and embeddings (their boxes and
        motion stay where they are seen). ``app``/``valid``: this frame's (T, N) cosine table of
        the tracks' embeddings (before this frame's update) against the detections'.
        """
        cfg = self.config
        if not len(tracks):
            return
        ints = self._int
        for t, l in _relook_pairs(app, valid, tracks, rows, clean, ints, cfg.relook_frames,
                                  cfg.relook_min_similarity, cfg.relook_margin):
            log.debug("track %d looks like lost track %d: ids exchanged", ints[t, _ID], ints[l, _ID])
            ints[[t, l], _ID] = ints[[l, t], _ID]
            self._emb[[t, l]] = self._emb[[l, t]]
            self._look_area[[t, l]] = self._look_area[[l, t]]

    def _yield_to_unmatched(self, overlap, veto, unmatched: np.ndarray):
        """Step 4's veto (T, N) bool (``veto``, or None, when the rule is off): a detection overlapping by at
        least ``lost_yield_iou`` the predicted box (``overlap``, IoU before the look gate) of an animal tracked
        until this frame that found no detection in steps 2-3 (``unmatched``: its look refused its own
        half-covered box) is not given to any other lost track by the widened boxes."""
        cut = self.config.lost_yield_iou
        if cut <= 0 or overlap is None or not len(unmatched):
            return veto
        held = (overlap[unmatched] >= cut).any(axis=0)  # (N,)
        out = np.zeros(overlap.shape, bool) if veto is None else veto.copy()
        others = np.setdiff1d(np.arange(len(overlap)), unmatched)
        out[np.ix_(others, np.flatnonzero(held))] = True
        return out

    def _merged_rows(self, dets: Instances, tracked: np.ndarray) -> np.ndarray:
        """Detection rows whose box covers at least ``merged_cover`` of the predicted boxes of
        two or more ``tracked`` tracks: the detector's one box around animals that cross."""
        if len(tracked) < 2 or not len(dets):
            return _EMPTY
        cfg = self.config
        return np.nonzero(_merged_kernel(self._pred, tracked, dets.boxes_xyxy.astype(np.float64), cfg.merged_cover,
                                         cfg.merged_min_growth))[0]

    def _inherit_lost_ids(self, tracks: np.ndarray) -> None:
        """Tentative ``tracks`` about to get a new id that look like a lost track take its id
        instead (the lost track is dropped), by :meth:`_match_looks`: an animal that came back
        from cover slowly, partly hidden at first, is known once its look is clear. With
        ``inherit_iou``, those left take the id of a lost track whose predicted box their box
        overlaps by that IoU, unless their looks disagree (:meth:`_inherit_by_place`)."""
        if not len(tracks):
            return
        state = self._int[:, _STATE]
        lost = np.nonzero(state == _LOST)[0]
        if not len(lost):
            return
        confirmed = np.nonzero((state == _TRACKED) | (state == _LOST))[0]
        has = _has_embedding(self._emb)
        emb = self._emb.astype(np.float64)
        both = has[:, None] & has[tracks][None, :]
        sim = np.where(both, emb @ emb[tracks].T, -1.0)  # every track vs the new
        old, new = self._match_looks(sim, lost, np.arange(len(tracks)), confirmed)
        if self.config.inherit_iou > 0:
            old, new = self._inherit_by_place(tracks, np.setdiff1d(lost, old), sim, both, old, new)
        self._int[tracks[new], _ID] = self._int[old, _ID]
        self._int[old, _STATE] = _REMOVED

    def _inherit_by_place(self, tracks: np.ndarray, lost: np.ndarray, sim: np.ndarray, both: np.ndarray,
                          old: np.ndarray, new: np.ndarray):
        """:meth:`_inherit_lost_ids`' second pass: ``tracks`` not in ``new`` against the ``lost`` tracks
        not in ``old`` by the IoU of their boxes with the lost ones' predicted boxes (at least
        ``inherit_iou``; pairs whose looks, ``sim`` where ``both`` have one, are under
        ``appearance_gate`` never). An animal half covered by the other as it comes out of
        cover has a crop that looks like neither, so the gate refused it its own track and its
        look cannot name it; where it stands can. The heir takes the lost track's look too.
        Returns ``old``, ``new`` with the pairs added."""
        rest = np.setdiff1d(np.arange(len(tracks)), new)
        if not len(rest) or not len(lost):
            return old, new
        place = box_iou_xyxy(self._pred[lost], self._box(tracks[rest]))  # (L, R)
        refused = both[np.ix_(lost, rest)] & (sim[np.ix_(lost, rest)] < self.config.appearance_gate)
        t, c, _, _ = _match(np.where(refused, 0.0, place), np.arange(len(lost)), np.arange(len(rest)),
                            1.0 - self.config.inherit_iou)
        heirs, dead = tracks[rest[c]], lost[t]
        self._emb[heirs], self._look_area[heirs] = self._emb[dead], self._look_area[dead]
        return np.concatenate([old, dead]), np.concatenate([new, rest[c]])

    def _restart_motion(self, tracks: np.ndarray, before_xyxy: np.ndarray, gap: np.ndarray) -> None:
        """Motion of ``tracks`` found again after ``gap`` frames unseen (their last boxes before),
        restarted at the new observation: with no velocity (``refound_velocity: reset``), or
        with the mean velocity over the gap (``gap``: the virtual trajectory of OC-SORT's
        observation-centric re-update, whose last step sets the velocity)."""
        if not len(tracks):
            return
        now = xyxy_to_xyah(self._obs[tracks, :OBS_BOX])
        self._kf[tracks] = self.motion.initiate_packed(now)
        if self.config.refound_velocity == "gap":
            self._kf[tracks, VEL:PP] = (now - xyxy_to_xyah(before_xyxy)) / gap[:, None]

    def _known_room(self, tracks: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """``tracks`` about to be confirmed, less those that would make more than ``max_animals``
        ids: the ones without an id are taken by their detection's score, highest first."""
        limit = self.config.max_animals
        if limit is None or not len(tracks):
            return tracks
        has_id = self._int[tracks, _ID] >= 0
        new = tracks[~has_id]
        room = max(limit - self.num_ids, 0)
        if len(new) <= room:
            return tracks
        best = new[np.argsort(-scores[self._int[new, _ROW]], kind="stable")[:room]]
        return tracks[has_id | np.isin(tracks, best)]

    def _assign_known(self, dets: Instances, rows: np.ndarray, matched_rows: np.ndarray, frame_index: int,
                      appearance: np.ndarray | None):
        """Step 4c: detection ``rows`` to the lost animals when all ``max_animals`` ids are out, each
        to the most likely one (:func:`known_animal_similarity`), skipping a detection that lies
        mostly inside one of ``matched_rows``. Returns (tracks, rows)."""
        cfg = self.config
        lost = np.nonzero(self._int[:, _STATE] == _LOST)[0]
        if not len(lost) or not len(rows):
            return _EMPTY, _EMPTY
        if len(matched_rows):
            boxes = dets.boxes_xyxy.astype(np.float64)
            inside = box_share_inside_xyxy(boxes[rows], boxes[matched_rows])  # (R, M)
            rows = rows[inside.max(axis=1) <= cfg.known_max_overlap]
        sim = known_animal_similarity(self._pred, frame_index - self._int[:, _LAST_FRAME], dets.boxes_xyxy,
                                      appearance, cfg.known_distance_growth, cfg.known_appearance_weight)
        if appearance is not None:  # the appearance gate holds here too: a stranger's look is not the animal's
            sim = np.where(appearance < cfg.appearance_gate, 0.0, sim)
        t, r, _, _ = _match(sim, lost, rows, 1.0 - 1e-12)
        return t, r

    def _confirm(self, tracks: np.ndarray) -> None:
        self._int[tracks, _STATE] = _TRACKED
        new = tracks[self._int[tracks, _ID] < 0]
        self._int[new, _ID] = self.num_ids + 1 + np.arange(len(new))
        self.num_ids += len(new)

    def _predict_all(self, frame_index: int) -> None:
        _predict_table(self._kf, self._pred, self._int, frame_index, self.config.lost_motion_frames,
                       self.motion.noise)

    # -- association -----------------------------------------------------------
    def _similarities(self, dets: Instances) -> tuple[np.ndarray, np.ndarray]:
        """IoU and pose-mixed similarity of every predicted track with every detection, (T, N) each."""
        k = dets.num_keypoints
        cfg = self.config
        use_pose = bool(k and self.sigmas is not None and len(self.sigmas) == k)
        return track_similarities(
            self._pred, self._kf[:, MEAN:VEL], self._box(), dets.boxes_xyxy, self._keypoints(), self._keypoint_scores(),
            dets.keypoints, dets.keypoint_scores, self.sigmas if use_pose else None,
            cfg.keypoint_score_threshold, cfg.oks_weight, cfg.min_common_keypoints)

    def _match_lost(self, tracks: np.ndarray, dets: Instances, rows: np.ndarray, frame_index: int,
                    veto: np.ndarray | None = None):
        """Lost ``tracks`` against detection ``rows`` by the IoU of widened boxes, each
        track's box widened more the longer it has been lost."""
        if not len(tracks) or not len(rows):
            return _EMPTY, _EMPTY, tracks, rows
        cfg = self.config
        buffer = cfg.lost_box_buffer
        if cfg.lost_buffer_growth <= 0:
            sim = box_iou_xyxy(widened_xyxy(self._pred, buffer), widened_xyxy(dets.boxes_xyxy, buffer))
        else:  # both sides of a pair widened by the track's buffer, as C-BIoU widens both
            lost_for = frame_index - self._int[:, _LAST_FRAME]  # every track; only ``tracks`` are used
            grown = np.clip(buffer + cfg.lost_buffer_growth * np.maximum(lost_for - 1, 0), buffer,
                            max(buffer, cfg.lost_box_buffer_max))
            sim = np.zeros((len(self._pred), len(dets)))
            for t in tracks.tolist():
                sim[t] = box_iou_xyxy(widened_xyxy(self._pred[t:t + 1], grown[t]),
                                      widened_xyxy(dets.boxes_xyxy, grown[t]))[0]
        if veto is not None:
            sim = np.where(veto, 0.0, sim)
        return _match(sim, tracks, rows, cfg.lost_match_cost_threshold)

    def _whole(self, dets: Instances, ratio: float) -> np.ndarray:
        """(T, N) bool: detections whose box is at least ``ratio`` of each track's size, the area of
        the box that last taught it its look (of its last box when it has no look yet)."""
        size = np.where(self._look_area > 0, self._look_area, box_area_xyxy(self._box()))
        return box_area_xyxy(dets.boxes_xyxy)[None, :] >= ratio * size[:, None]

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
        dets = detections
        f = dets.frame_index
        first_frame = self.frames_seen == 0
        self.frames_seen += 1
        self.updates += 1
        if len(dets) and dets.num_keypoints != self._k:
            # poses appear (or change layout): tracks keep their boxes, their old poses are unknown
            unknown = np.zeros((len(self._obs), obs_width(dets.num_keypoints) - OBS_BOX))
            self._obs = np.concatenate([self._obs[:, :OBS_BOX], unknown], axis=1)
        # with one known animal, looks decide nothing (and a turning animal seen from above changes its look)
        use_app = len(dets) > 0 and dets.embeddings.shape[1] > 0 and cfg.max_animals != 1
        if use_app and dets.embeddings.shape[1] != self._emb.shape[1]:  # embeddings appear (or change size)
            self._emb = np.zeros((len(self._int), dets.embeddings.shape[1]), np.float32)
        scores = dets.scores
        # thresholds as float32, like the scores (as NumPy compares a float32 array with a Python float)
        high, low = _split_by_score(dets.boxes_xyxy, scores, cfg.min_box_area, np.float32(cfg.high_score_threshold),
                                    np.float32(cfg.low_score_threshold))

        # 1. predict
        self._predict_all(f)
        iou, mixed = self._similarities(dets)
        # the IoU before the look gate zeroes pairs in iou (for the two yield rules)
        overlap = iou.copy() if cfg.yield_look_max > -1 or cfg.lost_yield_iou > 0 else None
        state = self._int[:, _STATE]  # a view: writes go into the table
        if cfg.merged_cover > 0:  # one box around two tracked animals belongs to neither
            merged = self._merged_rows(dets, np.nonzero(state == _TRACKED)[0])
            if len(merged):
                high, low = np.setdiff1d(high, merged), np.setdiff1d(low, merged)
        confirmed = np.nonzero(state != _TENTATIVE)[0]
        tentative = np.nonzero(state == _TENTATIVE)[0]

        # 2. confident detections against tracked and lost tracks (the look gates pairs, and with
        #    yield_look_max a box that looks more like an animal in cover is not a tracked one's)
        first_sim, veto = mixed, None
        if use_app:
            app, app_valid, veto, first_sim = _appearance_step(self._emb, dets.embeddings, iou, mixed,
                                                               cfg.appearance_gate, cfg.appearance_weight)
            if cfg.yield_look_max > -1:
                _yield_to_lost(app, app_valid, overlap, self._int, f, cfg.lost_motion_frames, cfg.yield_look_max,
                               cfg.yield_look_margin, veto, iou, first_sim)
        t2, r2, um_tracks, um_high = _match(first_sim, confirmed, high, cfg.match_cost_threshold)
        state[t2] = _TRACKED

        # 3. low-score detections against tracked (not lost) tracks still unmatched
        remaining = um_tracks[state[um_tracks] == _TRACKED]
        t3, r3, um_remaining, um_low = _match(iou, remaining, low, cfg.low_match_cost_threshold)
        state[um_remaining] = _LOST

        # 4. detections left over that could be an animal against lost tracks, with widened boxes
        candidates = np.concatenate([um_high, um_low[scores[um_low] >= cfg.new_track_threshold]])
        t4, r4 = _EMPTY, _EMPTY
        if cfg.lost_box_buffer > 0:
            lost = np.nonzero(state == _LOST)[0]
            t4, r4, _, candidates = self._match_lost(lost, dets, candidates, f,
                                                     self._yield_to_unmatched(overlap, veto, um_remaining))
            state[t4] = _TRACKED
        if use_app and len(candidates):
            lost = np.nonzero(state == _LOST)[0]
            t4b, r4b, candidates = self._reidentify(app, app_valid, lost, dets, candidates, confirmed)
            state[t4b] = _TRACKED
            t4, r4 = np.concatenate([t4, t4b]), np.concatenate([r4, r4b])
        full = cfg.max_animals is not None and self.num_ids >= cfg.max_animals
        if full:  # 4c. all the known animals are named: the rest go to the lost ones, or nowhere
            appearance = np.where(app_valid, app, np.nan) if use_app else None
            t4c, r4c = self._assign_known(dets, candidates, np.concatenate([r2, r3, r4]), f, appearance)
            state[t4c] = _TRACKED
            t4, r4, candidates = np.concatenate([t4, t4c]), np.concatenate([r4, r4c]), _EMPTY

        # 5. the rest against tentative tracks
        t5, r5, um_tentative, um_new = _match(mixed, tentative, candidates,
                                              cfg.unconfirmed_match_cost_threshold)
        matched, matched_rows = np.concatenate([t2, t3, t4, t5]), np.concatenate([r2, r3, r4, r5])
        if cfg.refound_velocity != "keep":  # missed on at least one detector frame before this one
            refound = self._int[matched, _LAST_UPDATE] < self.updates - 1
            refound_tracks, gap = matched[refound], f - self._int[matched[refound], _LAST_FRAME]
            before = self._obs[refound_tracks, :OBS_BOX].copy()
        self._observe(matched, dets, matched_rows, f)
        if cfg.refound_velocity != "keep":
            self._restart_motion(refound_tracks, before, gap)
        if use_app:  # the looks of the matched tracks, from this frame's clean crops
            clean = _clean_rows(dets.boxes_xyxy, dets.embeddings, high, cfg.embedding_max_overlap)
            if cfg.relook_frames > 0:  # ids given on a poor look, taken back now it is clear
                self._correct_looks(app, app_valid, np.concatenate([t2, t3, t4]), np.concatenate([r2, r3, r4]),
                                    clean)
            _update_embedding_rows(self._emb, self._look_area, self._int, matched, matched_rows, dets.embeddings,
                                   dets.boxes_xyxy, clean, cfg.embedding_momentum, cfg.look_min_similarity)
        need = cfg.min_hits
        if len(t5) and cfg.min_hits_while_lost > need and np.any(state == _LOST):
            need = cfg.min_hits_while_lost  # a new animal may be a lost one coming out from cover
        confirmed_now = t5[self._int[t5, _HITS] >= need]
        if use_app:
            self._inherit_lost_ids(confirmed_now)
        confirmed_now = self._known_room(confirmed_now, scores)
        self._confirm(confirmed_now)
        state[um_tentative] = _REMOVED
        output = [t2, t3, t4, confirmed_now]

        # 6. new tentative tracks from the rest; on a video's first frame they get ids at once
        new_rows = um_new[scores[um_new] >= cfg.new_track_threshold]
        if len(new_rows):
            new = self._append(dets, new_rows, f)
            if use_app:
                _update_embedding_rows(self._emb, self._look_area, self._int, new, new_rows, dets.embeddings,
                                       dets.boxes_xyxy, clean, cfg.embedding_momentum, cfg.look_min_similarity)
            if cfg.min_hits <= 1 or first_frame:
                new = self._known_room(new, scores)
                self._confirm(new)
                output.append(new)

        out = np.concatenate(output)
        ids, rows = self._int[out, _ID], self._int[out, _ROW]

        # 7. ageing
        # a known number of animals: none is ever dropped, however long lost
        drop, count = _expired(self._int, f, _FOREVER if cfg.max_animals is not None else cfg.track_buffer)
        if count:
            self._keep(~drop)

        order = np.argsort(ids, kind="stable")
        return dets.take(rows[order], track_ids=ids[order])

    def expected_centres(self) -> np.ndarray:
        """(T, 2) float64: where the animals with ids (tracked or lost) are expected next, pixels
        (each Kalman state's centre plus its velocity; nothing is changed)."""
        named = self._int[:, _STATE] != _TENTATIVE
        return self._kf[named, MEAN:MEAN + 2] + self._kf[named, VEL:VEL + 2]

    def predict_only(self, frame_index: int) -> Instances:
        """Advance a frame without detections (``--det-every``): predicted boxes of tracked animals."""
        self.frames_seen += 1
        self._predict_all(frame_index)
        ids = self._int[:, _ID]
        tracked = np.nonzero(self._int[:, _STATE] == _TRACKED)[0]
        tracked = tracked[np.argsort(ids[tracked], kind="stable")]
        if not len(tracked):
            return Instances.empty(self._k, frame_index)
        rows = self._int[tracked, _ROW]
        last = Instances.concatenate([self._source[t].take([r]) for t, r in zip(tracked.tolist(), rows.tolist())],
                                     frame_index=frame_index)
        moved = moved_keypoints(self._keypoints(tracked), self._box(tracked), self._kf[tracked])
        return last.with_(boxes_xyxy=self._pred[tracked], keypoints=moved, track_ids=ids[tracked])


def compile_kernels(num_keypoints: int = 17) -> None:
    """Compile the tracker's loops now (or load them from numba's disk cache).

    They otherwise compile on the first frames a tracker sees, a few seconds
    once per installation; ``make setup`` calls this. It tracks two made-up
    animals that cross over a few frames, with and without appearance
    embeddings, which takes every compiled path with the array layouts the
    tracker passes.
    """
    k = num_keypoints
    offsets = np.linspace(0.0, 40.0, k)[:, None] * np.array([1.0, 0.5])
    looks = np.eye(2, 192, dtype=np.float32)  # the appearance path: float32 unit embeddings, as the embedder's
    for embeddings in (None, looks):
        # the yield and merged-box rules on, so their kernels compile too
        tracker = PoseTracker(TrackerConfig(min_hits=1, yield_look_max=0.35, yield_look_margin=0.1, lost_yield_iou=0.3,
                                            merged_cover=0.75),
                              sigmas=np.full(k, 0.05))
        for f in range(6):
            x = np.array([10.0 + 20 * f, 110.0 - 20 * f])
            boxes = np.stack([x, np.full(2, 10.0), x + 50, np.full(2, 60.0)], axis=1)
            tracker.update(Instances(boxes_xyxy=boxes, scores=[0.9, 0.4], keypoints=boxes[:, None, :2] + offsets,
                                     keypoint_scores=np.full((2, k), 0.8), frame_index=f, embeddings=embeddings))
        tracker.update(Instances.empty(k, frame_index=6))
