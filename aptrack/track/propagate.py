"""Known identities carried through a video: APTv2's tracking track and ``--init-boxes``.

The animals are given once, as boxes with ids on a first frame (the ground
truth of APTv2's track 3, or the boxes a lab user marks). From then on no
identity is created or lost for good. Every frame runs these steps:

1. predict each animal's box one frame ahead (Kalman, constant velocity);
2. move each animal's single-object tracker (SOT, :mod:`aptrack.track.sot`)
   onto this frame; it looks at the image, so it follows the animal where
   motion alone would drift;
3. with detections (optional), match them to the animals by IoU, each
   animal by the better of its step 1 and step 2 boxes (so a drifting SOT
   does not take its animal's detection away), and with an appearance
   embedder by look too: the IoU mixed with the cosine of the detection's
   embedding and the animal's first-frame look (``appearance_weight``), so a
   detection between two animals goes to the one it looks like;
   3b. with an appearance embedder, re-acquire by look: an animal left
   without a detection takes a leftover detection that looks like its
   first-frame self (cosine of their embeddings at least
   ``reacquire_min_similarity``, better than any other animal's by
   ``reacquire_margin``) and lies within ``reacquire_max_distance`` box
   diagonals of its predicted centre; such an animal's box and motion restart
   from that detection (its SOT had followed something else);
   3c. with ``colour_reacquire``, re-acquire by colour: an animal still
   without a detection takes a leftover one that scores at least
   ``colour_reacquire_min_score`` and has its first-frame colours (histogram
   correlation at least ``colour_reacquire_min_similarity``, and at least
   as much as with any other animal's), within a reach
   of the detection it last had that grows with the square root of the
   frames since (:func:`colour_reacquisitions`); its box and motion restart
   there too. Detections left over after this are ignored: no new tracks;
4. fuse the boxes of steps 1-3 into one prior box per animal, each source
   weighted by its setting and its confidence;
5. estimate the pose in the prior boxes (one batch for the frame);
6. pose-guided correction: the box around each animal's confident keypoints,
   grown by the ratio measured on the first frame, is fused with the prior
   box; the Kalman filter is corrected with the result, which is the
   animal's box in this frame;
7. restart an animal's SOT from its corrected box when the SOT has lost
   confidence, moved away from it, or grown or shrunk from its size, so a
   drifting SOT is pulled back by the pose and the detector instead of
   compounding its error;
8. report the animals that the SOT or the detector sees (the noisy-or of
   their scores; a matched detection that looks like its animal's
   first-frame self adds its cosine, times ``look_evidence``, to the
   detector's side) and whose box shows their colours (the correlation of
   the box's hue-saturation histogram with the first-frame box's, its share
   ``colour_evidence``; the mix becomes the output score), with hysteresis when the
   detector is used: an animal reported in the frame before needs
   ``visible_min_score``, one that was hidden needs ``reappear_min_score``
   to come back; keypoint scores do not
   tell a hidden animal, as a top-down model finds a pose on whatever covers
   it. An animal with no detection of its own whose box lies mostly
   (``hidden_cover_share``) inside the box of a reported animal that has one
   is taken as hidden behind it (:func:`hidden_behind`): its SOT and colours
   see the animal in front. An animal coming back (not reported in the frame
   before) onto the box of one reported then and now (IoU at least
   ``comeback_max_iou``) stays hidden too (:func:`crowded_comebacks`).
   Hidden animals keep being predicted (with the motion and the SOT) and
   come back under their own id. All carried
   animals, hidden ones included, stay available with their scores as
   :attr:`IdentityPropagator.carried`;
9. hindsight (``hindsight_frames`` > 0, with the SOT): an animal found again
   (a matched detection, seen at least ``anchor_min_score``) after frames
   without is followed backwards from its found box, by a new SOT, over the
   later half of those frames (at most ``hindsight_frames``); they get the
   backward box (fused with a detection it matches), the pose in it and
   step 8's scores again. An animal coming out of cover is easier to follow
   back from where it is clear than forward from where it was hidden. The
   revised frames are :attr:`IdentityPropagator.revisions`; a caller that
   waits ``hindsight_frames`` frames before using a frame gets it final
   (:class:`aptrack.runner.FrameLoop` does);
10. reports in hindsight (with step 9's held frames): once an animal is not
    reported, the frame before stays reported only from ``fade_min_score``,
    and a run of reported frames shorter than ``min_run_frames`` between
    frames where it is not is dropped (:func:`smoothed_reports`): step 8's
    hysteresis, seen from the frames after.
"""

from __future__ import annotations

import collections
import contextlib
from dataclasses import dataclass, replace
from typing import Callable, NamedTuple

import numpy as np

from aptrack.core.boxes import (at_least_xyxy, box_area_xyxy, box_centre_distance_xyxy, box_diagonal_xyxy,
                                box_iou_xyxy, box_share_inside_xyxy, grown_xyxy, xyah_to_xyxy, xyxy_to_xyah)
from aptrack.core.errors import ConfigError
from aptrack.core.instances import Instances
from aptrack.core.oks import oks_matrix
from aptrack.track.appearance import colour_histograms, has_colour
from aptrack.track.config import PropagationConfig
from aptrack.track.kalman import KalmanBoxMotion
from aptrack.track.matching import linear_assignment


MIN_BOX_SIDE = 2.0
"""Pixels: the least width and height of a box this module hands on."""

NEVER = 1e6
"""The assignment cost of a pair that must not be matched (every allowed pair costs at most 2)."""


def keypoint_box_xyxy(keypoints, scores, threshold: float, min_keypoints: int):
    """The box (4,) around the keypoints scoring at least ``threshold``; None with fewer than ``min_keypoints``.

    Parameters
    ----------
    keypoints : (K, 2) pixels
    scores : (K,)
    """
    ok = np.asarray(scores) >= threshold
    if ok.sum() < max(min_keypoints, 1):
        return None
    pts = np.asarray(keypoints, np.float64)[ok]
    return np.concatenate([pts.min(axis=0), pts.max(axis=0)])


def fuse_boxes_xyxy(boxes_xyxy, weights) -> np.ndarray:
    """Weighted mean (4,) of boxes (M, 4) in ``xyah`` space (centre, aspect, height); weights (M,) >= 0."""
    w = np.asarray(weights, np.float64)
    xyah = xyxy_to_xyah(np.asarray(boxes_xyxy, np.float64).reshape(-1, 4))
    mean = (xyah * w[:, None]).sum(axis=0) / max(w.sum(), 1e-12)
    return xyah_to_xyxy(mean[None])[0]


def match_known(boxes_xyxy, detections_xyxy: np.ndarray, min_iou: float, similarity=None,
                appearance_weight: float = 0.0, appearance_gate: float = -1.0) -> np.ndarray:
    """Detection row matched to each known animal (N,), -1 where none reaches ``min_iou``.

    ``boxes_xyxy`` is (N, 4), or a list of such arrays (several guesses of
    each animal's box: an animal takes its best IoU over them). Hungarian
    assignment on ``1 - similarity``, where the similarity is the IoU, or with
    ``similarity`` (N, M) (the cosine of each animal's look and each
    detection's) ``(1 - appearance_weight) * IoU + appearance_weight * cosine``;
    pairs under ``min_iou`` or looking less alike than ``appearance_gate`` are
    never matched.
    """
    guesses = [np.asarray(boxes_xyxy, np.float64)] if not isinstance(boxes_xyxy, list) else boxes_xyxy
    out = np.full(len(guesses[0]), -1, np.int64)
    if not len(out) or not len(detections_xyxy):
        return out
    iou = np.max([box_iou_xyxy(np.asarray(g, np.float64), detections_xyxy) for g in guesses], axis=0)
    allowed = iou >= min_iou
    if similarity is None:
        score = iou
    else:
        similarity = np.asarray(similarity, np.float64)
        score = (1.0 - appearance_weight) * iou + appearance_weight * similarity
        allowed &= similarity >= appearance_gate
    matches, _, _ = linear_assignment(np.where(allowed, 1.0 - score, NEVER), NEVER / 2)
    out[matches[:, 0]] = matches[:, 1]
    return out


def colour_reacquisitions(last_xyxy, frames_lost, detections_xyxy, detection_scores, colour, lone,
                          min_score: float, min_similarity: float, reach: float) -> np.ndarray:
    """Step 3c: the leftover detection each animal without one takes by its colours.

    Parameters
    ----------
    last_xyxy : (N, 4) array_like
        Box of each animal's last matched detection, ``xyxy`` pixels.
    frames_lost : (N,) array_like of int
        Frames since that detection (at least 1 for an animal without one now).
    detections_xyxy : (M, 4) array_like
        The detections no animal took in step 3 or 3b, ``xyxy`` pixels.
    detection_scores : (M,) array_like
    colour : (N, M) array_like
        Correlation of each animal's first-frame colour histogram with each
        detection's box's (:func:`aptrack.track.appearance.colour_histograms`).
    lone : (N,) array_like of bool
        The animals that may take one.
    min_score, min_similarity : float
        Least detection score and least colour correlation of a pair.
    reach : float
        A detection's centre lies within ``reach * sqrt(frames_lost)`` diagonals
        of ``last_xyxy`` from that box's centre.

    Returns
    -------
    (N,) int64
        Row of ``detections_xyxy`` taken by each animal; -1 for none. One
        detection per animal, the assignment of largest total correlation; a
        detection goes only to the animal (of all N) it correlates with most.
    """
    last = np.asarray(last_xyxy, np.float64).reshape(-1, 4)
    dets = np.asarray(detections_xyxy, np.float64).reshape(-1, 4)
    colour = np.asarray(colour, np.float64).reshape(len(last), len(dets))
    rows = np.full(len(last), -1, np.int64)
    if not len(last) or not len(dets):
        return rows
    far = box_centre_distance_xyxy(last, dets)  # (N, M)
    scale = reach * np.sqrt(np.maximum(np.asarray(frames_lost, np.float64), 1.0)) * box_diagonal_xyxy(last)
    within = far <= scale[:, None]
    # a detection goes only to an animal whose colours it has at least as much as any other animal's
    allowed = (within & (colour >= min_similarity) & (colour >= colour.max(axis=0, keepdims=True))
               & (np.asarray(detection_scores, np.float64)[None] >= min_score) & np.asarray(lone, bool)[:, None])
    # cost 1 - correlation in [0, 2]; a pair not allowed costs more than any allowed one and is never taken
    matches, _, _ = linear_assignment(np.where(allowed, 1.0 - colour, 3.0), 2.0)
    rows[matches[:, 0]] = matches[:, 1]
    return rows


def hidden_behind(boxes_xyxy, has_detection, reported, min_share: float) -> np.ndarray:
    """Which animals (N,) bool are taken as hidden behind another: those without a detection of their own
    whose box lies at least ``min_share`` of its area inside the box of a reported animal that has one.

    Parameters
    ----------
    boxes_xyxy : (N, 4) pixels
    has_detection : (N,) bool, a detection of the frame is matched to the animal
    reported : (N,) bool
    min_share : float in [0, 1]; 1 takes no animal as hidden (the rule is off)

    The animal with the detection is the one in front: a detector finds the
    animal it sees, and a single-object tracker or a colour histogram on the
    box of the animal behind sees the front one too.
    """
    b = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    fronts = np.asarray(has_detection, bool) & np.asarray(reported, bool)
    out = np.zeros(len(b), bool)
    if min_share >= 1.0 or not fronts.any():
        return out
    inside = box_share_inside_xyxy(b, b[fronts])  # (N, F)
    inside[np.flatnonzero(fronts), np.arange(int(fronts.sum()))] = 0.0  # not behind itself
    return ~np.asarray(has_detection, bool) & (inside.max(axis=1) >= min_share)


def crowded_comebacks(boxes_xyxy, was_reported, reported, max_iou: float) -> np.ndarray:
    """Which animals (N,) bool coming back stay hidden: those reported now but not in the frame before
    whose box overlaps, by IoU at least ``max_iou``, the box of an animal reported both then and now.

    Parameters
    ----------
    boxes_xyxy : (N, 4) pixels
    was_reported, reported : (N,) bool, in the frame before and now
    max_iou : float in [0, 1]; 1 takes no animal back (the rule is off)

    Two animals are not in one place: the one that stayed in view keeps it, and
    the one coming back there is the animal behind it, its carried box drifted
    onto the front one, taking a second box of it.
    """
    b = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    before, now = np.asarray(was_reported, bool), np.asarray(reported, bool)
    out = np.zeros(len(b), bool)
    steady = before & now
    back = now & ~before
    if max_iou >= 1.0 or not steady.any() or not back.any():
        return out
    iou = box_iou_xyxy(b[back], b[steady])  # an animal is never both
    out[np.flatnonzero(back)] = iou.max(axis=1) >= max_iou
    return out


def smoothed_reports(visible, scores, fade_min_score: float, min_run_frames: int) -> np.ndarray:
    """Step 10: which animals (L, N) bool stay reported over the last ``L`` frames, once the last one is in.

    Parameters
    ----------
    visible : (L, N) array_like of bool
        Whether each of N animals is reported in each of the last L frames,
        oldest first; the last row is the frame just stepped.
    scores : (L, N) array_like
        Their output scores (step 8's, the duplicate discount applied), in [0, 1].
    fade_min_score : float
        For an animal not reported in the last frame: the frame before it
        stays reported only when it scores at least this (0: always). Step 8's
        hysteresis keeps a fading animal reported on a middling score; seen
        from the frame after, that frame is the first one of its going hidden.
    min_run_frames : int
        ... then a run of fewer frames than this, reported between frames where
        the animal is not (both inside the window), is not reported either (1:
        every run is kept): an animal does not come out of cover for a frame
        or two; it is the animal in front seen twice.

    Returns
    -------
    (L, N) bool
        ``visible`` with those frames taken out; the last row as given.
    """
    out = np.array(visible, bool, copy=True).reshape(len(visible), -1)
    scores = np.asarray(scores, np.float64).reshape(out.shape)
    if len(out) < 2:
        return out
    gone = ~out[-1]
    out[-2] &= ~(gone & (scores[-2] < fade_min_score))
    if min_run_frames <= 1:
        return out
    for i in np.flatnonzero(gone):
        column = out[:, i]
        t = 1
        while t < len(column) - 1:
            if column[t] and not column[t - 1]:
                end = t
                while column[end]:
                    end += 1  # the last row is False, so a run always ends inside the window
                if end - t < min_run_frames:
                    column[t:end] = False
                t = end
            t += 1
    return out


PoseFn = Callable[[np.ndarray, Instances], Instances]


@dataclass(frozen=True)
class StepEvidence:
    """What one :meth:`IdentityPropagator.step` had for each carried animal before choosing its box.

    Rows follow :attr:`IdentityPropagator.ids` (N animals); boxes are ``xyxy``
    pixels of the frame. A diagnosis record of the forward step (``benchmarks/known_animals_breakdown.py``
    tells by it which source, if any, was on an animal whose box went astray;
    step 9 may revise the frame's boxes afterwards); nothing in the step reads it back.

    Attributes
    ----------
    ids : (N,) int64
    predicted_xyxy : (N, 4) float64
        Step 1's motion prediction.
    sot_xyxy : (N, 4) float64
        Step 2's single-object tracker box (the prediction where there is no SOT).
    sot_scores : (N,) float64
        Its score (0 without an SOT); the box counts in step 4 from ``sot_min_score``.
    detection_rows : (N,) int64
        Row of ``detections_xyxy`` matched in step 3 or re-acquired in step 3b or 3c; -1 for none.
    reacquired : (N,) bool
        Re-acquired by look (step 3b) or by colour (step 3c).
    prior_xyxy : (N, 4) float64
        Step 4's fused box, in which step 5 estimates the pose.
    detections_xyxy : (M, 4) float64
        The frame's detections ((0, 4) without any).
    detection_scores : (M,) float64
        Their scores.
    """

    ids: np.ndarray
    predicted_xyxy: np.ndarray
    sot_xyxy: np.ndarray
    sot_scores: np.ndarray
    detection_rows: np.ndarray
    reacquired: np.ndarray
    prior_xyxy: np.ndarray
    detections_xyxy: np.ndarray
    detection_scores: np.ndarray


class Revision(NamedTuple):
    """A past frame's animals as step 9 (hindsight) revised them.

    ``carried`` is every animal of frame ``index`` (as :attr:`IdentityPropagator.carried`
    was), ``visible`` (N,) bool which of them are reported (as :meth:`IdentityPropagator.step`
    returned them).
    """

    index: int
    carried: Instances
    visible: np.ndarray


@dataclass(frozen=True)
class _Held:
    """What step 9 keeps of one recent frame (rows follow the animals)."""

    index: int
    frame: np.ndarray
    carried: Instances
    seen: np.ndarray  # (N,) step 8's score before the duplicate discount
    visible: np.ndarray  # (N,) bool, reported
    detection_rows: np.ndarray  # (N,) int64
    detections_xyxy: np.ndarray  # (M, 4)
    detection_scores: np.ndarray  # (M,)
    similarity: np.ndarray | None  # (N, M) looks' cosines


class IdentityPropagator:
    """Carry a fixed set of animals, given once, through the frames that follow.

    Parameters
    ----------
    sot_factory : callable () -> single-object tracker, or None
        Makes one tracker per animal (``init(frame, box_xyxy)``,
        ``update(frame) -> (box_xyxy, score)``), e.g.
        :class:`aptrack.track.sot.SotFactory`. Without one, boxes follow the
        motion, the detections and the pose only.
    config : PropagationConfig
    motion : KalmanBoxMotion, optional
    embedder : callable (frame, Instances) -> Instances, optional
        Adds ``embeddings`` (unit rows) to boxes, e.g.
        :class:`aptrack.track.appearance.AppearanceEmbedder`: step 3b's looks.
    """

    def __init__(self, sot_factory=None, config: PropagationConfig = PropagationConfig(),
                 motion: KalmanBoxMotion | None = None, embedder=None, sigmas=None):
        self.sot_factory = sot_factory
        self.config = config
        self.sigmas = None if sigmas is None else np.asarray(sigmas, np.float64)
        self.motion = motion or KalmanBoxMotion()
        self.embedder = embedder if embedder is None or getattr(embedder, "enabled", True) else None
        self.reset()

    def reset(self) -> None:
        """Forget the animals."""
        self.ids = np.zeros(0, np.int64)
        self._states: list[tuple[np.ndarray, np.ndarray]] = []
        self._sots: list = []
        self._growth = np.zeros((0, 2))
        self._looks: np.ndarray | None = None
        self._colours: np.ndarray | None = None
        self._grey = False
        self._last: Instances | None = None
        self._reported = np.zeros(0, bool)
        self.evidence: StepEvidence | None = None
        self._held: collections.deque[_Held] = collections.deque(maxlen=max(self.lag, 1))
        self._found_at = np.zeros(0, np.int64)
        self._matched_at = np.zeros(0, np.int64)  # frame of each animal's last matched detection (step 3c)
        self._matched_xyxy = np.zeros((0, 4))  # ... and its box
        self.revisions: tuple[Revision, ...] = ()

    @property
    def lag(self) -> int:
        """Frames (0 for none) by which step 9 may revise a frame after it was returned: ``hindsight_frames``
        with an SOT."""
        return self.config.hindsight_frames if self.sot_factory is not None else 0

    @property
    def started(self) -> bool:
        return self._last is not None

    @property
    def carried(self) -> Instances | None:
        """Every animal of the last frame, hidden ones too, scored by how well it is seen (step 8).

        :meth:`step` returns only those seen at least ``visible_min_score``;
        this is the ranked list that keypoint AP scores (APTv2's tracking
        track predicts a pose for every carried animal in every frame).
        """
        return self._last

    def start(self, frame: np.ndarray, animals: Instances, pose: PoseFn | None = None) -> Instances:
        """Take the animals of ``frame`` (boxes with track ids) as the identities to carry.

        Animals without an id (-1) are numbered after the largest id given.
        Returns them with their poses (when ``pose`` is given), all reported.
        """
        cfg = self.config
        ids = animals.track_ids.copy()
        missing = ids < 0
        if missing.any():
            ids[missing] = int(ids.max(initial=0)) + 1 + np.arange(int(missing.sum()))
        if len(np.unique(ids)) != len(ids):
            raise ConfigError(f"the first-frame boxes repeat a track id: {sorted(ids.tolist())}")
        order = np.argsort(ids, kind="stable")
        animals = animals.take(order, track_ids=ids[order])
        ids = ids[order]
        if pose is not None and len(animals):
            animals = pose(frame, animals)
        self.ids = ids
        boxes = animals.boxes_xyxy.astype(np.float64)
        self._states = [self.motion.initiate(xyxy_to_xyah(b[None])[0]) for b in boxes]
        self._sots = []
        for b in boxes:
            sot = self.sot_factory() if self.sot_factory is not None else None
            if sot is not None:
                sot.init(frame, b)
            self._sots.append(sot)
        growth = np.full((len(ids), 2), cfg.pose_box_growth)
        if animals.num_keypoints:
            lo, hi = cfg.pose_box_growth_range
            for i, (b, kp, ks) in enumerate(zip(boxes, animals.keypoints, animals.keypoint_scores)):
                kb = keypoint_box_xyxy(kp, ks, cfg.keypoint_score_threshold, cfg.min_keypoints)
                if kb is not None:
                    growth[i] = np.clip((b[2:] - b[:2]) / np.maximum(kb[2:] - kb[:2], 1.0), lo, hi)
        self._growth = growth
        self._looks = None
        self._colours = None
        if cfg.colour_evidence > 0 or cfg.colour_reacquire:
            self._grey = not has_colour(frame)  # a grey video's boxes are told by their grey levels instead
            self._colours = colour_histograms(frame, boxes, grey=self._grey)
        self._reported = np.ones(len(ids), bool)  # the given animals are seen on their first frame
        self.evidence = None
        self._held.clear()
        self._found_at = np.full(len(ids), animals.frame_index, np.int64)
        self._matched_at = np.full(len(ids), animals.frame_index, np.int64)
        self._matched_xyxy = boxes.copy()
        self.revisions = ()
        if self.embedder is not None and len(animals):
            self._looks = self.embedder(frame, animals).embeddings
        self._last = animals
        return animals

    def _look_similarity(self, frame: np.ndarray, detections: Instances) -> np.ndarray:
        """(N, M) cosine of every animal's first-frame look with every detection's embedding (made here when
        the detections carry none of the looks' size); computed once per frame for steps 3, 3b and 8."""
        emb = detections.embeddings
        if emb is None or emb.shape[1] != self._looks.shape[1]:
            emb = self.embedder(frame, detections).embeddings
        return self._looks.astype(np.float64) @ emb.astype(np.float64).T

    def _reacquire(self, predicted: np.ndarray, detections: Instances, det_rows: np.ndarray,
                   similarity: np.ndarray | None) -> np.ndarray:
        """Step 3b: give animals without a detection (``det_rows`` -1, filled in place) a leftover
        detection by look (``similarity``, :meth:`_look_similarity`; None without looks); returns
        which animals (N,) bool were re-acquired."""
        cfg = self.config
        refound = np.zeros(len(det_rows), bool)
        lone = np.flatnonzero(det_rows < 0)
        free = np.setdiff1d(np.arange(len(detections)), det_rows[det_rows >= 0])
        if similarity is None or not len(lone) or not len(free):
            return refound
        sim = similarity[:, free]  # (N, F): every animal's look
        far = box_centre_distance_xyxy(predicted, detections.boxes_xyxy[free])
        diag = box_diagonal_xyxy(predicted)
        cost = np.where(far[lone] <= cfg.reacquire_max_distance * diag[lone, None], 1.0 - sim[lone], 2.0)
        matches, _, _ = linear_assignment(cost, 1.0 - cfg.reacquire_min_similarity)
        for a, f in matches:
            i = lone[a]
            others = np.delete(sim[:, f], i)
            if sim[i, f] - others.max(initial=-1.0) >= cfg.reacquire_margin:
                det_rows[i], refound[i] = free[f], True
        return refound

    def _reacquire_by_colour(self, frame: np.ndarray, frame_index: int, detections: Instances,
                             det_rows: np.ndarray) -> np.ndarray:
        """Step 3c: give animals still without a detection (``det_rows`` -1, filled in place) a leftover
        detection by colour (:func:`colour_reacquisitions`); returns which animals (N,) bool took one."""
        cfg = self.config
        lone = det_rows < 0
        free = np.setdiff1d(np.arange(len(detections)), det_rows[~lone])
        free = free[detections.scores[free] >= cfg.colour_reacquire_min_score]  # no histogram for the rest
        if not lone.any() or not len(free):
            return np.zeros(len(det_rows), bool)
        free_xyxy = detections.boxes_xyxy[free].astype(np.float64)
        colour = self._colours @ colour_histograms(frame, free_xyxy, grey=self._grey).T
        taken = colour_reacquisitions(self._matched_xyxy, frame_index - self._matched_at, free_xyxy,
                                      detections.scores[free], colour, lone, cfg.colour_reacquire_min_score,
                                      cfg.colour_reacquire_min_similarity, cfg.colour_reacquire_reach)
        refound = taken >= 0
        det_rows[refound] = free[taken[refound]]
        return refound

    def _discount_duplicates(self, animals: Instances, boxes_xyxy: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """Step 8's scores with each animal whose pose repeats a better-seen animal's (OKS of at least
        ``duplicate_pose_oks``) multiplied by ``1 - OKS``: its crop likely shows the animal in front of it."""
        limit = self.config.duplicate_pose_oks
        if limit >= 1.0 or self.sigmas is None or len(seen) < 2 or not animals.num_keypoints:
            return seen
        cfg = self.config
        visible = animals.keypoint_scores >= cfg.keypoint_score_threshold
        areas = np.prod(np.maximum(boxes_xyxy[:, 2:] - boxes_xyxy[:, :2], 1.0), axis=1)
        oks = np.nan_to_num(oks_matrix(animals.keypoints, visible, animals.keypoints, visible, areas, self.sigmas,
                                       min_common=cfg.min_keypoints), nan=0.0)
        out = seen.copy()
        kept: list[int] = []
        for i in np.argsort(-seen, kind="stable"):  # the best-seen animal keeps its score
            similar = oks[i, kept].max(initial=0.0)
            if similar >= limit:
                out[i] = seen[i] * (1.0 - similar)
            else:
                kept.append(int(i))
        return out

    def step(self, frame: np.ndarray, frame_index: int, pose: PoseFn | None = None,
             detections: Instances | None = None, timer=None) -> Instances:
        """Carry the animals onto ``frame``; returns the visible ones, sorted by id.

        Parameters
        ----------
        frame : (H, W, 3) uint8 BGR
        frame_index : int
        pose : callable (frame, Instances) -> Instances, optional
        detections : Instances, optional
            This frame's detector boxes (matched to the known animals only).
        timer : callable stage -> context manager, optional
            Times the SOT as ``sot`` and the rest as ``track`` (the pose is
            the caller's to time).
        """
        if not self.started:
            raise RuntimeError("IdentityPropagator.step before start")
        cfg = self.config
        n = len(self.ids)
        timed = timer if timer is not None else (lambda stage: contextlib.nullcontext())
        if not n:
            self.evidence = None
            return Instances.empty(self._last.num_keypoints, frame_index)

        # 1. predict
        with timed("track"):
            self._states = [self.motion.predict(*s) for s in self._states]
            predicted = xyah_to_xyxy(np.array([s[0][:4] for s in self._states]))

        # 2. single-object trackers
        sot_boxes, sot_scores = predicted.copy(), np.zeros(n)
        with timed("sot"):
            for i, sot in enumerate(self._sots):
                if sot is not None:
                    sot_boxes[i], sot_scores[i] = sot.update(frame)
        sides = sot_boxes[:, 2:] - sot_boxes[:, :2]
        use_sot = (sot_scores >= cfg.sot_min_score) & (sides >= MIN_BOX_SIDE).all(axis=1)

        with timed("track"):
            # 3. detections, matched to the known animals only
            det_rows = np.full(n, -1, np.int64)
            similarity = None
            if detections is not None and len(detections):
                guesses = [predicted, np.where(use_sot[:, None], sot_boxes, predicted)]
                similarity = None if self._looks is None else self._look_similarity(frame, detections)
                det_rows = match_known(guesses, detections.boxes_xyxy.astype(np.float64), cfg.detection_min_iou,
                                       similarity if cfg.appearance_weight > 0 else None,
                                       cfg.appearance_weight, cfg.appearance_gate)
                refound = self._reacquire(predicted, detections, det_rows, similarity)
                if cfg.colour_reacquire:
                    refound |= self._reacquire_by_colour(frame, frame_index, detections, det_rows)
                matched = det_rows >= 0
                self._matched_at[matched] = frame_index
                self._matched_xyxy[matched] = detections.boxes_xyxy[det_rows[matched]]
            else:
                refound = np.zeros(n, bool)

            # 4. one prior box per animal (a re-acquired one's is its detection)
            prior = np.empty((n, 4))
            for i in range(n):
                if refound[i]:
                    prior[i] = detections.boxes_xyxy[det_rows[i]]
                    self._states[i] = self.motion.initiate(xyxy_to_xyah(prior[i][None])[0])
                    continue
                matched = det_rows[i] >= 0
                prior[i] = self._prior_box(predicted[i], cfg.motion_weight,
                                           (sot_boxes[i], sot_scores[i]) if use_sot[i] else None,
                                           (detections.boxes_xyxy[det_rows[i]], float(detections.scores[det_rows[i]]))
                                           if matched else None)
            prior = at_least_xyxy(prior, MIN_BOX_SIDE)

        # 5. pose in the prior boxes
        animals = Instances(prior, np.ones(n, np.float32), categories=self._last.categories,
                            track_ids=self.ids, frame_index=frame_index)
        if pose is not None:
            animals = pose(frame, animals)

        with timed("track"):
            # 6. pose-guided correction
            corrected = self._pose_corrected(prior, animals, np.arange(n))
            for i in range(n):
                self._states[i] = self.motion.update(*self._states[i], xyxy_to_xyah(corrected[i][None])[0])

        # 7. restart SOTs that lost the animal, drifted from it or changed its size
        with timed("sot"):
            overlap = np.diag(box_iou_xyxy(sot_boxes, corrected))
            scale = np.sqrt(box_area_xyxy(sot_boxes) / np.maximum(box_area_xyxy(corrected), 1e-9))
            resized = (scale > cfg.reinit_scale) | (scale * cfg.reinit_scale < 1.0)
            for i, sot in enumerate(self._sots):
                if sot is not None and (not use_sot[i] or overlap[i] < cfg.reinit_iou or resized[i]):
                    sot.init(frame, corrected[i])

        # 8. the visible animals: seen by the SOT or the detector (noisy-or of their scores)
        det_xyxy, det_conf = ((np.zeros((0, 4)), np.zeros(0)) if detections is None else
                              (detections.boxes_xyxy.astype(np.float64), detections.scores.astype(np.float64)))
        if self.sot_factory is None and detections is None:
            seen = np.ones(n)  # nothing looks at the image: every animal is taken as seen
        else:
            seen = self._seen(frame, np.arange(n), corrected, np.where(use_sot, sot_scores, 0.0), det_rows,
                              det_conf, similarity)
        # hysteresis: an animal reported in the frame before stays reported from visible_min_score, one that
        # was not (hidden) comes back only from reappear_min_score: the SOT of a hidden animal follows whatever
        # covers it with a middling score, which must not bring it back (on the SOT alone, with no detector,
        # whose score seldom reaches it, every animal keeps visible_min_score)
        visible = self._reported_now(seen, self._reported)
        visible &= ~hidden_behind(corrected, det_rows >= 0, visible, cfg.hidden_cover_share)
        visible &= ~crowded_comebacks(corrected, self._reported, visible, cfg.comeback_max_iou)
        self._reported = visible
        scores = self._discount_duplicates(animals, corrected, seen)
        out = animals.with_(boxes_xyxy=corrected, scores=scores.astype(np.float32))
        self._last = out
        self.evidence = StepEvidence(self.ids.copy(), predicted, sot_boxes, sot_scores, det_rows, refound, prior,
                                     det_xyxy, det_conf)

        # 9. hindsight: an animal found again revises, backwards from here, the frames since it was lost
        self.revisions = ()
        if self.lag:
            found = (det_rows >= 0) & (seen >= cfg.anchor_min_score)
            self.revisions = self._look_back(frame, frame_index, corrected, found, visible, pose, timed)
            self._held.append(_Held(frame_index, frame, out, seen, visible, det_rows, det_xyxy, det_conf, similarity))
            self._found_at[found] = frame_index
            # 10. the reports of the held frames, seen from this one
            self.revisions = self._smooth_reports(self.revisions)
        return out.take(np.flatnonzero(visible))

    def _prior_box(self, predicted: np.ndarray, predicted_weight: float, sot: tuple | None,
                   detection: tuple | None) -> np.ndarray:
        """Step 4: the (4,) ``xyxy`` mean of an animal's ``predicted`` box (weighted ``predicted_weight``),
        its SOT's box and its matched detection's (each ``(box (4,), score)`` or None; weighted by
        ``sot_weight`` or ``detection_weight`` times the score); ``predicted`` when all weights are 0."""
        cfg = self.config
        boxes, weights = [predicted], [predicted_weight]
        for source, weight in ((sot, cfg.sot_weight), (detection, cfg.detection_weight)):
            if source is not None:
                boxes.append(source[0])
                weights.append(weight * source[1])
        return fuse_boxes_xyxy(boxes, weights) if sum(weights) > 0 else np.asarray(predicted, np.float64)

    def _reported_now(self, seen: np.ndarray, reported_beside: np.ndarray) -> np.ndarray:
        """Step 8's hysteresis: which animals (R,) bool are reported, seen ``seen`` (R,), when
        ``reported_beside`` (R,) bool says which were reported in the neighbouring frame (the one before;
        the one after for step 9). An animal reported there stays reported from ``visible_min_score``; one
        that was not (hidden) comes back only from ``reappear_min_score`` when the detector is used."""
        cfg = self.config
        back = cfg.reappear_min_score if cfg.use_detector else cfg.visible_min_score
        return seen >= np.where(reported_beside, cfg.visible_min_score, back)

    def _pose_corrected(self, prior: np.ndarray, animals: Instances, rows: np.ndarray) -> np.ndarray:
        """Step 6: the boxes (R, 4) of ``prior`` (R, 4) fused with the grown box around the confident
        keypoints of ``animals`` (R poses) of the animals ``rows`` (R,)."""
        cfg = self.config
        corrected = prior.copy()
        if animals.num_keypoints:
            for j, i in enumerate(rows):
                kb = keypoint_box_xyxy(animals.keypoints[j], animals.keypoint_scores[j],
                                       cfg.keypoint_score_threshold, cfg.min_keypoints)
                if kb is not None:
                    corrected[j] = fuse_boxes_xyxy([prior[j], grown_xyxy(kb, self._growth[i])], [1.0, cfg.pose_weight])
        return at_least_xyxy(corrected, MIN_BOX_SIDE)

    def _seen(self, frame: np.ndarray, rows: np.ndarray, boxes_xyxy: np.ndarray, sot_scores: np.ndarray,
              det_rows: np.ndarray, detection_scores: np.ndarray, similarity: np.ndarray | None) -> np.ndarray:
        """Step 8: how surely each of the animals ``rows`` (R,) is seen in ``frame``, (R,) in [0, 1].

        ``boxes_xyxy`` (R, 4) are their boxes, ``sot_scores`` (R,) their SOTs' scores (0 where not used),
        ``det_rows`` (R,) their matched detections (-1 for none) of the frame's ``detection_scores`` (M,),
        ``similarity`` the (N, M) cosines of every animal's look with the detections (or None).
        """
        cfg = self.config
        det = np.zeros(len(rows))
        matched = np.flatnonzero(det_rows >= 0)
        det[matched] = detection_scores[det_rows[matched]]
        if similarity is not None and cfg.look_evidence > 0 and len(matched):
            # a matched detection that looks like the animal's first-frame self is more evidence it is seen
            look = cfg.look_evidence * np.clip(similarity[rows[matched], det_rows[matched]], 0.0, 1.0)
            det[matched] = 1.0 - (1.0 - det[matched]) * (1.0 - look)
        seen = 1.0 - (1.0 - sot_scores) * (1.0 - det)
        if self._colours is not None and cfg.colour_evidence > 0:
            # a hidden animal's box shows what covers it, seldom in the animal's colours
            colour = np.einsum("ij,ij->i", self._colours[rows], colour_histograms(frame, boxes_xyxy, grey=self._grey))
            seen = (1.0 - cfg.colour_evidence) * seen + cfg.colour_evidence * np.clip(colour, 0.0, 1.0)
        return seen

    def _look_back(self, frame: np.ndarray, frame_index: int, corrected: np.ndarray, found: np.ndarray,
                   visible: np.ndarray, pose: PoseFn | None, timed) -> tuple[Revision, ...]:
        """Step 9 for the animals ``found`` (N,) bool on this frame; revises the held frames
        (:attr:`_held`) and returns them, newest first."""
        cfg = self.config
        held = list(self._held)
        backward: dict[tuple[int, int], tuple[np.ndarray, float]] = {}  # (held frame, animal) -> SOT box, score
        with timed("sot"):
            for i in np.flatnonzero(found):
                # the later half of the frames since the animal was last found, at most hindsight_frames back
                first = max(frame_index - cfg.hindsight_frames, (frame_index + int(self._found_at[i])) // 2 + 1)
                gap = [k for k, h in enumerate(held) if first <= h.index < frame_index]
                if not gap:
                    continue
                sot = self.sot_factory()
                sot.init(frame, corrected[i])
                for k in reversed(gap):
                    backward[(k, int(i))] = sot.update(held[k].frame)
        revisions = []
        later_visible = visible
        for k in range(len(held) - 1, -1, -1):
            rows = np.array(sorted(i for kk, i in backward if kk == k), np.int64)
            h = held[k]
            if len(rows):
                h = self._revised(h, rows, [backward[(k, int(i))] for i in rows], later_visible, pose, timed)
                held[k] = h
                revisions.append(Revision(h.index, h.carried, h.visible))
            later_visible = h.visible
        self._held = collections.deque(held, maxlen=self._held.maxlen)
        return tuple(revisions)

    def _smooth_reports(self, revisions: tuple[Revision, ...]) -> tuple[Revision, ...]:
        """Step 10 on the held frames (:func:`smoothed_reports`); returns step 9's ``revisions`` and the
        frames it changed, newest first."""
        cfg = self.config
        if (cfg.fade_min_score <= 0.0 and cfg.min_run_frames <= 1) or len(self._held) < 2:
            return revisions
        held = list(self._held)
        visible = np.array([h.visible for h in held])
        smoothed = smoothed_reports(visible, np.array([h.carried.scores for h in held]), cfg.fade_min_score,
                                    cfg.min_run_frames)
        changed = np.flatnonzero((smoothed != visible).any(axis=1))
        if not len(changed):
            return revisions
        for k in changed:
            held[k] = replace(held[k], visible=smoothed[k])
        self._held = collections.deque(held, maxlen=self._held.maxlen)
        by_index = {r.index: r for r in revisions}
        by_index.update({held[k].index: Revision(held[k].index, held[k].carried, held[k].visible) for k in changed})
        return tuple(by_index[i] for i in sorted(by_index, reverse=True))

    def _revised(self, held: _Held, rows: np.ndarray, backward: list[tuple[np.ndarray, float]],
                 later_visible: np.ndarray, pose: PoseFn | None, timed) -> _Held:
        """One held frame with the animals ``rows`` (R,) moved to their ``backward`` (SOT box, score)
        and steps 3-8 redone for them; ``later_visible`` (N,) bool: who the frame after reports."""
        cfg = self.config
        with timed("track"):
            sot_xyxy = at_least_xyxy(np.array([b for b, _ in backward], np.float64), MIN_BOX_SIDE)
            sot_scores = np.array([sc for _, sc in backward], np.float64)
            sot_scores = np.where(sot_scores >= cfg.sot_min_score, sot_scores, 0.0)
            # 3. a detection left by the other animals, matched by IoU
            others = np.setdiff1d(np.arange(len(self.ids)), rows)
            free = np.setdiff1d(np.arange(len(held.detections_xyxy)), held.detection_rows[others])
            det_rows = np.full(len(rows), -1, np.int64)
            if len(free):
                picked = match_known(sot_xyxy, held.detections_xyxy[free], cfg.detection_min_iou)
                det_rows[picked >= 0] = free[picked[picked >= 0]]
            # 4. the prior box: the backward SOT's is this frame's prediction
            prior = at_least_xyxy(np.array([
                self._prior_box(sot_xyxy[j], cfg.sot_weight * sot_scores[j], None,
                                (held.detections_xyxy[det_rows[j]], held.detection_scores[det_rows[j]])
                                if det_rows[j] >= 0 else None)
                for j in range(len(rows))]).reshape(-1, 4), MIN_BOX_SIDE)
        # 5. the pose
        old = held.carried
        animals = old.take(rows, boxes_xyxy=prior)
        if pose is not None:
            animals = pose(held.frame, animals)
        with timed("track"):
            # 6. and 8.
            boxes = self._pose_corrected(prior, animals, rows)
            seen = held.seen.copy()
            seen[rows] = self._seen(held.frame, rows, boxes, sot_scores, det_rows, held.detection_scores,
                                    held.similarity)
            visible = held.visible.copy()
            visible[rows] = self._reported_now(seen[rows], later_visible[rows])
            keep = np.setdiff1d(np.arange(len(old)), rows)
            merged = Instances.concatenate([old.take(keep), animals.with_(boxes_xyxy=boxes)], old.frame_index)
            merged = merged.take(np.argsort(np.concatenate([keep, rows]), kind="stable"))
            scores = self._discount_duplicates(merged, merged.boxes_xyxy.astype(np.float64), seen)
            detection_rows = held.detection_rows.copy()
            detection_rows[rows] = det_rows
            visible[rows] &= ~hidden_behind(merged.boxes_xyxy, detection_rows >= 0, visible,
                                            cfg.hidden_cover_share)[rows]
        return _Held(held.index, held.frame, merged.with_(scores=scores.astype(np.float32)), seen, visible,
                     detection_rows, held.detections_xyxy, held.detection_scores, held.similarity)

