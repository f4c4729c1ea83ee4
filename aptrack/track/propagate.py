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
   from that detection (its SOT had followed something else). Detections
   left over after this are ignored: no new tracks;
4. fuse the boxes of steps 1-3 into one prior box per animal, each source
   weighted by its setting and its confidence;
5. estimate the pose in the prior boxes (one batch for the frame);
6. pose-guided correction: the box around each animal's confident keypoints,
   grown by the ratio measured on the first frame, is fused with the prior
   box; the Kalman filter is corrected with the result, which is the
   animal's box in this frame;
7. restart an animal's SOT from its corrected box when the SOT has lost
   confidence or moved away from it, so a drifting SOT is pulled back by the
   pose and the detector instead of compounding its error;
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
   it. Hidden animals keep being predicted (with the motion and the SOT)
   and come back under their own id. All carried animals, hidden ones
   included, stay available with their scores as :attr:`IdentityPropagator.carried`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from aptrack.core.boxes import at_least_xyxy, box_iou_xyxy, grown_xyxy, xyah_to_xyxy, xyxy_to_xyah
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


PoseFn = Callable[[np.ndarray, Instances], Instances]


@dataclass(frozen=True)
class StepEvidence:
    """What one :meth:`IdentityPropagator.step` had for each carried animal before choosing its box.

    Rows follow :attr:`IdentityPropagator.ids` (N animals); boxes are ``xyxy``
    pixels of the frame. A diagnosis record (``benchmarks/known_animals_breakdown.py``
    tells by it which source, if any, was on an animal whose box went astray);
    nothing in the step reads it back.

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
        Row of ``detections_xyxy`` matched in step 3 or re-acquired in step 3b; -1 for none.
    reacquired : (N,) bool
        Matched by look in step 3b.
    prior_xyxy : (N, 4) float64
        Step 4's fused box, in which step 5 estimates the pose.
    detections_xyxy : (M, 4) float64
        The frame's detections ((0, 4) without any).
    """

    ids: np.ndarray
    predicted_xyxy: np.ndarray
    sot_xyxy: np.ndarray
    sot_scores: np.ndarray
    detection_rows: np.ndarray
    reacquired: np.ndarray
    prior_xyxy: np.ndarray
    detections_xyxy: np.ndarray


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
        if cfg.colour_evidence > 0:
            self._grey = not has_colour(frame)  # a grey video's boxes are told by their grey levels instead
            self._colours = colour_histograms(frame, boxes, grey=self._grey)
        self._reported = np.ones(len(ids), bool)  # the given animals are seen on their first frame
        self.evidence = None
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
        centres = 0.5 * (predicted[:, :2] + predicted[:, 2:])
        diag = np.hypot(*(predicted[:, 2:] - predicted[:, :2]).T)
        det_xyxy = detections.boxes_xyxy[free].astype(np.float64)
        far = np.hypot(*(0.5 * (det_xyxy[:, :2] + det_xyxy[:, 2:])[None] - centres[:, None]).transpose(2, 0, 1))
        cost = np.where(far[lone] <= cfg.reacquire_max_distance * diag[lone, None], 1.0 - sim[lone], 2.0)
        matches, _, _ = linear_assignment(cost, 1.0 - cfg.reacquire_min_similarity)
        for a, f in matches:
            i = lone[a]
            others = np.delete(sim[:, f], i)
            if sim[i, f] - others.max(initial=-1.0) >= cfg.reacquire_margin:
                det_rows[i], refound[i] = free[f], True
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
            else:
                refound = np.zeros(n, bool)

            # 4. one prior box per animal (a re-acquired one's is its detection)
            prior = np.empty((n, 4))
            for i in range(n):
                if refound[i]:
                    prior[i] = detections.boxes_xyxy[det_rows[i]]
                    self._states[i] = self.motion.initiate(xyxy_to_xyah(prior[i][None])[0])
                    continue
                boxes, weights = [predicted[i]], [cfg.motion_weight]
                if use_sot[i]:
                    boxes.append(sot_boxes[i])
                    weights.append(cfg.sot_weight * sot_scores[i])
                if det_rows[i] >= 0:
                    boxes.append(detections.boxes_xyxy[det_rows[i]])
                    weights.append(cfg.detection_weight * float(detections.scores[det_rows[i]]))
                prior[i] = fuse_boxes_xyxy(boxes, weights) if sum(weights) > 0 else predicted[i]
            prior = at_least_xyxy(prior, MIN_BOX_SIDE)

        # 5. pose in the prior boxes
        animals = Instances(prior, np.ones(n, np.float32), categories=self._last.categories,
                            track_ids=self.ids, frame_index=frame_index)
        if pose is not None:
            animals = pose(frame, animals)

        with timed("track"):
            # 6. pose-guided correction
            corrected = prior.copy()
            if animals.num_keypoints:
                for i in range(n):
                    kb = keypoint_box_xyxy(animals.keypoints[i], animals.keypoint_scores[i],
                                           cfg.keypoint_score_threshold, cfg.min_keypoints)
                    if kb is not None:
                        corrected[i] = fuse_boxes_xyxy([prior[i], grown_xyxy(kb, self._growth[i])],
                                                       [1.0, cfg.pose_weight])
            corrected = at_least_xyxy(corrected, MIN_BOX_SIDE)
            for i in range(n):
                self._states[i] = self.motion.update(*self._states[i], xyxy_to_xyah(corrected[i][None])[0])

        # 7. restart SOTs that lost the animal or drifted from it
        with timed("sot"):
            overlap = np.diag(box_iou_xyxy(sot_boxes, corrected))
            for i, sot in enumerate(self._sots):
                if sot is not None and (not use_sot[i] or overlap[i] < cfg.reinit_iou):
                    sot.init(frame, corrected[i])

        # 8. the visible animals: seen by the SOT or the detector (noisy-or of their scores)
        det_scores = np.zeros(n)
        if detections is not None and len(detections):
            matched = np.flatnonzero(det_rows >= 0)
            det_scores[matched] = detections.scores[det_rows[matched]]
            if similarity is not None and cfg.look_evidence > 0 and len(matched):
                # a matched detection that looks like the animal's first-frame self is more evidence it is seen
                look = cfg.look_evidence * np.clip(similarity[matched, det_rows[matched]], 0.0, 1.0)
                det_scores[matched] = 1.0 - (1.0 - det_scores[matched]) * (1.0 - look)
        seen = 1.0 - (1.0 - np.where(use_sot, sot_scores, 0.0)) * (1.0 - det_scores)
        if self.sot_factory is None and detections is None:
            seen = np.ones(n)  # nothing looks at the image: every animal is taken as seen
        elif self._colours is not None:
            # a hidden animal's box shows what covers it, seldom in the animal's colours
            colour = np.einsum("ij,ij->i", self._colours, colour_histograms(frame, corrected, grey=self._grey))
            seen = (1.0 - cfg.colour_evidence) * seen + cfg.colour_evidence * np.clip(colour, 0.0, 1.0)
        # hysteresis: an animal reported in the frame before stays reported from visible_min_score, one that
        # was not (hidden) comes back only from reappear_min_score: the SOT of a hidden animal follows whatever
        # covers it with a middling score, which must not bring it back (on the SOT alone, with no detector,
        # whose score seldom reaches it, every animal keeps visible_min_score)
        back = cfg.reappear_min_score if cfg.use_detector else cfg.visible_min_score
        visible = seen >= np.where(self._reported, cfg.visible_min_score, back)
        self._reported = visible
        scores = self._discount_duplicates(animals, corrected, seen)
        out = animals.with_(boxes_xyxy=corrected, scores=scores.astype(np.float32))
        self._last = out
        self.evidence = StepEvidence(
            self.ids.copy(), predicted, sot_boxes, sot_scores, det_rows, refound, prior,
            np.zeros((0, 4)) if detections is None else detections.boxes_xyxy.astype(np.float64))
        return out.take(np.flatnonzero(visible))

