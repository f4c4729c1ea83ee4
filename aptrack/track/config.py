"""Settings of the multi-animal tracker."""

from __future__ import annotations

from dataclasses import dataclass

from aptrack.core.errors import ConfigError


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
    off), accepting pairs up to ``lost_match_cost_threshold``. The gate grows
    with the time lost: a track lost for ``n`` frames is widened by
    ``lost_box_buffer + lost_buffer_growth * (n - 1)``, at most
    ``lost_box_buffer_max``, as an animal moving behind cover may come out far
    from where it went in.

    Yield rules (off by default; ``lab`` sets them): ``yield_look_max`` (-1
    turns it off): a detection that overlaps a tracked animal but looks less
    than this like it, and more like an animal in cover (lost for more than
    ``lost_motion_frames``) whose predicted box it overlaps, is not the tracked
    animal's in steps 2-3: one animal sliding into cover where the other comes
    out, under one box. ``lost_yield_iou`` (0 turns it off): a detection
    overlapping by at least this IoU the predicted box of an animal tracked
    until this frame that found no detection in steps 2-3 (its look refused its
    own, half-covered box) is not given to another lost track by the widened
    boxes; only a look can still re-identify it. ``yield_look_margin`` (0
    turns it off): with ``yield_look_max``, a detection that looks less than
    ``yield_look_max`` like the tracked animal and at most this much more than
    like the animal in cover is contested, neither animal's (the one box around
    the animal going in and the one coming out, when it is as much the one as
    the other).

    ``inherit_iou`` (0 turns it off; used with appearance; 0.5 in every
    preset): a new track about to get an id that no lost animal's look claims
    takes the id of a lost animal whose predicted box its box overlaps by at
    least this IoU (Hungarian), unless their looks are under
    ``appearance_gate``; it takes that animal's look too. An animal coming out
    of cover half covered by the other has a crop that looks like neither: the
    gate refused it its own track, and its look cannot name it, but where it
    stands can; without its old look the heir could not be told from the other.

    Appearance (used when the detections carry ``embeddings``: the pipeline's
    ``appearance`` section, :class:`AppearanceConfig`):
    ``appearance_weight`` (0 for none) mixes the cosine similarity of a track's embedding
    and a detection's into step 2's similarity, for pairs whose boxes overlap.
    A track's embedding is the running mean (``embedding_momentum``, the old
    value's weight) of the embeddings of its confident detections that overlap
    no other detection by more than ``embedding_max_overlap`` IoU (a crop with
    two animals in it describes neither). Re-identification: detections still
    left over after the widened-box step are matched to lost tracks by
    appearance alone, anywhere in the frame, when the similarity is at least
    ``reid_min_similarity`` and beats the detection's similarity with every
    other confirmed track by ``reid_margin``; a new track about to get an id
    takes a lost track's id by the same rules. ``appearance_gate`` (a cosine similarity in [-1, 1]; -1
    for none): a track and a detection whose embeddings are less similar than
    this are never matched, however well their boxes overlap.

    ``min_hits_while_lost``: while some track is lost, a new track needs this
    many matched frames (when more than ``min_hits``) before it gets an id: it
    may be the lost animal, coming out from cover and not yet looking like itself.

    ``refound_velocity``: the motion of a track found again after frames
    unseen: ``keep`` (the Kalman update's), ``reset`` (restarted at the new
    box, standing still) or ``gap`` (restarted with the mean velocity over the
    gap, as OC-SORT's observation-centric re-update leaves it).

    An animal coming out from cover shows a sliver first, and a sliver's look is close to
    anything's. Re-identification by look alone takes only detections whose box is at least
    ``reid_min_area_ratio`` of the lost track's last box. And an id given on a poor look is
    taken back once the animal is seen clearly (``relook_frames``, 0 for never): a track
    within that many matched frames of being found or re-found, on a clean crop, whose look
    matches a lost animal's by at least ``relook_min_similarity`` and beats its own by
    ``relook_margin``, is that lost animal; the two exchange ids and looks. A track's size for
    these ratios is the area of the box whose crop last taught it its look, not its last box
    (an animal sliding behind cover leaves ever smaller slivers). ``look_min_similarity`` (a
    cosine in [-1, 1]; -1 for none): a clean crop that looks less like its track than this
    teaches it nothing (a half-hidden animal's crop is mostly cover).

    ``merged_cover`` (0 turns it off, the default; ``lab`` uses 0.75): a detection that covers
    at least this fraction of the predicted boxes of two or more tracked animals, and whose
    area is at least ``merged_min_growth`` times the largest of them, is the detector's one box
    around animals that cross: it goes to none of them (they are missed on that frame rather
    than one taking the other's box and its id). A true box that contains a smaller animal's
    is about as large as its own animal's prediction, so it is kept.

    ``max_animals`` (``--animals N``; null for no limit): the number of animals
    is known and fixed, as in an arena. At most this many ids are ever made
    (on the first frame, the most confident detections get them); once they
    are all out, no track is ever dropped, and a detection left over after
    steps 2 to 4 goes to the most likely lost animal (:func:`known_animal_similarity`:
    its look and its distance from where the animal was last seen, the
    distance scaled by the box's diagonal times ``1 + known_distance_growth``
    per frame lost; ``known_appearance_weight`` of the look mixed in), wherever
    it is, as idtracker.ai gives every blob to one
    of its N identities; but not a detection lying mostly (more than
    ``known_max_overlap`` of its area) inside one already matched this frame,
    a second box on an animal that is already there.
    """

    high_score_threshold: float = 0.5
    low_score_threshold: float = 0.1
    new_track_threshold: float = 0.3
    match_cost_threshold: float = 0.8
    low_match_cost_threshold: float = 0.5
    unconfirmed_match_cost_threshold: float = 0.7
    track_buffer: int = 60
    min_hits: int = 3
    oks_weight: float = 0.1
    keypoint_score_threshold: float = 0.3
    min_common_keypoints: int = 3
    lost_motion_frames: int = 5
    lost_box_buffer: float = 0.3
    lost_match_cost_threshold: float = 0.7
    lost_buffer_growth: float = 0.0
    yield_look_max: float = -1.0
    yield_look_margin: float = 0.0
    lost_yield_iou: float = 0.0
    lost_box_buffer_max: float = 1.0
    min_box_area: float = 10.0
    appearance_weight: float = 0.3
    embedding_momentum: float = 0.9
    embedding_max_overlap: float = 0.1
    reid_min_similarity: float = 0.4
    reid_margin: float = 0.05
    appearance_gate: float = 0.1
    refound_velocity: str = "keep"
    min_hits_while_lost: int = 6
    max_animals: int | None = None
    known_distance_growth: float = 0.1
    known_appearance_weight: float = 0.5
    known_max_overlap: float = 0.5
    merged_cover: float = 0.0
    merged_min_growth: float = 1.2
    reid_min_area_ratio: float = 0.5
    relook_frames: int = 100
    relook_min_similarity: float = 0.6
    relook_margin: float = 0.3
    look_min_similarity: float = -1.0
    inherit_iou: float = 0.5

    def __post_init__(self) -> None:
        for name in ("high_score_threshold", "low_score_threshold", "new_track_threshold", "match_cost_threshold",
                     "low_match_cost_threshold", "unconfirmed_match_cost_threshold", "oks_weight",
                     "keypoint_score_threshold", "lost_match_cost_threshold", "appearance_weight",
                     "embedding_momentum", "embedding_max_overlap", "reid_min_similarity", "reid_margin",
                     "known_appearance_weight", "known_max_overlap", "merged_cover",
                     "reid_min_area_ratio", "relook_min_similarity", "relook_margin",
                     "lost_yield_iou", "inherit_iou", "yield_look_margin"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"tracker.{name} must be in [0, 1], got {value}")
        for name in ("track_buffer", "min_hits", "min_hits_while_lost", "min_common_keypoints", "lost_motion_frames", "lost_box_buffer",
                     "lost_buffer_growth", "lost_box_buffer_max", "min_box_area", "known_distance_growth",
                     "merged_min_growth", "relook_frames"):
            if getattr(self, name) < 0:
                raise ConfigError(f"tracker.{name} must be >= 0, got {getattr(self, name)}")
        if self.max_animals is not None and (isinstance(self.max_animals, bool) or not isinstance(self.max_animals, int)
                                               or self.max_animals < 1):
            raise ConfigError(f"tracker.max_animals must be a whole number from 1 (or null for no limit), "
                              f"got {self.max_animals}")
        if self.refound_velocity not in ("keep", "reset", "gap"):
            raise ConfigError(f"tracker.refound_velocity must be keep, reset or gap, got {self.refound_velocity!r}")
        for name in ("appearance_gate", "look_min_similarity", "yield_look_max"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"tracker.{name} must be in [-1, 1], got {getattr(self, name)}")


APPEARANCE_KINDS = ("none", "thumbnail")


@dataclass(frozen=True)
class AppearanceConfig:
    """The appearance embedding the pipeline adds to each detection (:mod:`aptrack.track.appearance`).

    ``kind``: ``none`` or ``thumbnail`` (the box's central ``inner_fraction``
    shrunk to ``width`` x ``height`` pixels). With embeddings on the
    detections the tracker gates pairs and re-identifies lost animals by them,
    and mixes ``tracker.appearance_weight`` of them into its first matching.
    """

    kind: str = "thumbnail"
    width: int = 8
    height: int = 8
    inner_fraction: float = 0.8

    def __post_init__(self) -> None:
        if self.kind not in APPEARANCE_KINDS:
            raise ConfigError(f"appearance.kind must be one of {', '.join(APPEARANCE_KINDS)}, got {self.kind!r}")
        for name in ("width", "height"):
            if not 1 <= getattr(self, name) <= 64:
                raise ConfigError(f"appearance.{name} must be in [1, 64], got {getattr(self, name)}")
        if not 0.0 < self.inner_fraction <= 1.0:
            raise ConfigError(f"appearance.inner_fraction must be in (0, 1], got {self.inner_fraction}")


MAX_HINDSIGHT_FRAMES = 64
"""The most frames :attr:`PropagationConfig.hindsight_frames` may hold back (each held frame keeps its image)."""


@dataclass(frozen=True)
class PropagationConfig:
    """Settings of :class:`aptrack.track.propagate.IdentityPropagator` (weights relative, scores in [0, 1]).

    ``sot_weights``: the single-object tracker's weights (registry name or file; null for
    none). ``use_detector``: also run the detector and match its boxes to the known animals.

    ``sot_min_score``: an SOT box scoring below this is not used in a frame.
    ``motion_weight``, ``sot_weight``, ``detection_weight``: each source's
    weight in step 4's prior box (the SOT's and a detection's are also
    multiplied by their scores). ``pose_weight``: the keypoint box's weight
    against the prior box (weight 1) in step 6. ``detection_min_iou``: the
    least IoU of a detection with an animal's box to be matched to it.
    ``keypoint_score_threshold`` and ``min_keypoints``: a keypoint box needs
    at least ``min_keypoints`` keypoints scoring this. ``pose_box_growth``:
    the keypoint box is grown by this about its centre when the first frame
    gave no ratio for the animal; measured ratios are clipped to
    ``pose_box_growth_range``. ``reinit_iou``: the SOT restarts when its box
    overlaps the corrected box less than this, or (``reinit_scale``, at least 1)
    when its box is that many times larger or smaller (the square root of the
    ratio of their areas): a SOT grown over the whole frame still overlaps the
    animal's box enough, and would keep pulling the box off the detections.
    ``visible_min_score``: an animal reported in the frame before is reported
    again when how surely it is seen (the noisy-or of its SOT score and its matched detection's score,
    ``1 - (1 - sot) (1 - det)``, mixed with its colours by ``colour_evidence``;
    its output score) is at least this; ``reappear_min_score`` (at least
    ``visible_min_score``): with ``use_detector``, one that was not reported
    (hidden) needs this much to come back, as the SOT of a hidden animal
    follows whatever covers it with a middling score (on the SOT alone, whose
    score seldom reaches it, every animal keeps ``visible_min_score``).
    Keypoint scores do not say it, as a top-down model finds a
    pose on whatever animal covers the hidden one. ``reacquire_min_similarity``,
    ``reacquire_margin`` and ``reacquire_max_distance`` (box diagonals from the
    predicted centre): step 3b, an animal without a detection takes a leftover
    one that looks like its first-frame self (cosine of appearance embeddings,
    with the pipeline's ``appearance`` section on) by at least the similarity,
    better than any other animal by the margin, within the distance.
    ``colour_reacquire`` (with ``use_detector``): step 3c, an animal left
    without a detection (after 3 and 3b) takes a leftover detection scoring at
    least ``colour_reacquire_min_score`` whose colours correlate with its
    first-frame box's by at least ``colour_reacquire_min_similarity``, and by
    at least as much as with any other animal's (the hue-saturation
    histograms of ``colour_evidence``; one detection per animal, the
    assignment of largest total correlation), within ``colour_reacquire_reach``
    box diagonals of the box of the detection it last had, times the square
    root of the frames since (a lost animal may have gone further the longer
    it was lost). An animal coming out of long cover is seldom where its
    carried box drifted to, and a histogram matches the part of it in view.
    ``duplicate_pose_oks``: an animal whose pose matches a better-seen animal's
    by at least this OKS (its crop likely shows the animal in front of it) has
    its score, the rank keypoint AP gives its pose, multiplied by ``1 - OKS``;
    whether it is reported still follows ``visible_min_score`` on the score
    before. 1 turns it off. ``hidden_cover_share``: an animal with no
    detection matched to it whose box lies at least this share (of its area)
    inside the box of a reported animal that has one is taken as hidden behind
    that animal and not reported (its SOT and colours then see the animal in
    front); 1 turns it off (the default: the rule needs a detector that finds
    partly hidden animals, as ``--pipeline known``'s does; with the bundled one,
    animals it misses but that show would be dropped). ``comeback_max_iou``: an
    animal not reported in the frame before whose box overlaps, by at least this
    IoU, the box of an animal reported then and now is not reported either (two
    animals are not in one place: the one coming back is the animal behind, its
    box drifted onto the front one); 1 turns it off (the default).

    Looks (with the pipeline's ``appearance`` section on; each animal's look is
    the embedding of its first-frame box): ``appearance_weight`` (0 for none)
    is the cosine similarity's share, against the IoU, in step 3's matching of
    detections to animals, so a detection between two animals goes to the one
    it looks like; ``appearance_gate`` (a cosine in [-1, 1], -1 for none): a
    pair that looks less alike is never matched. ``look_evidence`` (0 for
    none): a matched detection's cosine with its animal's look, times this, is
    one more piece of evidence in step 8's noisy-or, so a detection that looks
    like the animal counts as seeing it more surely than one that does not.

    ``colour_evidence`` (0 for none): in step 8, how surely an animal is seen
    becomes ``(1 - colour_evidence)`` times the noisy-or above plus
    ``colour_evidence`` times the correlation (clipped to [0, 1]) of the
    hue-saturation histogram of its corrected box with that of its first-frame
    box (:func:`aptrack.track.appearance.colour_histograms`; needs no
    ``appearance`` section; in a grey video, the histograms of grey levels).
    A hidden animal's box sits on whatever covers it,
    which seldom has its colours; a histogram, unlike the thumbnail look, also
    matches an animal only partly in view.

    Hindsight (step 9; needs the SOT): ``hindsight_frames`` (0 for none) is
    how many frames back an animal found again revises its boxes, and so how
    many frames late each frame's animals are final. An animal is found (an
    anchor) on a frame where a detection is matched to it and it is seen at
    least ``anchor_min_score``. When it is found after frames without, a new
    SOT started on its found box runs backwards over the later half of those
    frames (at most ``hindsight_frames``): coming out of cover, an animal is
    easier to follow back from where it is clear than forward from where it
    was hidden. Those frames get the backward box, a pose in it, and their
    scores again.

    Reports in hindsight (step 10; with hindsight's held frames): once an
    animal is not reported, the frame before it stays reported only when its
    output score is at least ``fade_min_score`` (0 for none): step 8's
    hysteresis keeps an animal going into cover reported on a middling score,
    and seen from the frame after, that frame is its first one hidden. Then a
    run of reported frames shorter than ``min_run_frames`` (1 for none)
    between frames where it is not reported is dropped: an animal does not
    come out of cover for a frame or two, the animal in front of it seen twice
    does. The frames on both sides of such a run must still be held, so only
    runs of up to ``hindsight_frames - 2`` frames can go.

    ``detector_flip_test`` (with ``use_detector``): the detector also runs on
    the mirrored frame and the two sets of boxes are merged, overlaps above
    ``flip_nms_iou`` (IoU) removed (:func:`aptrack.detect.mirror.detect_mirrored_too`);
    the mirrored view finds some partly hidden animals the plain one misses,
    and in this mode detections only ever join known animals. It doubles the
    detector's time. Not for a detector that takes the tracker's predictions
    (the background detector).
    """

    sot_weights: str | None = "vittrack"
    use_detector: bool = True
    sot_min_score: float = 0.1
    motion_weight: float = 0.1
    sot_weight: float = 1.0
    detection_weight: float = 1.0
    pose_weight: float = 0.25
    detection_min_iou: float = 0.4
    keypoint_score_threshold: float = 0.3
    min_keypoints: int = 3
    pose_box_growth: float = 1.2
    pose_box_growth_range: tuple[float, float] = (1.0, 2.0)
    reinit_iou: float = 0.3
    reinit_scale: float = 1.5
    visible_min_score: float = 0.6
    reappear_min_score: float = 0.75
    reacquire_min_similarity: float = 0.7
    reacquire_margin: float = 0.2
    reacquire_max_distance: float = 2.0
    colour_reacquire: bool = False
    colour_reacquire_min_score: float = 0.5
    colour_reacquire_min_similarity: float = 0.5
    colour_reacquire_reach: float = 0.5
    duplicate_pose_oks: float = 0.7
    hidden_cover_share: float = 1.0
    comeback_max_iou: float = 1.0
    appearance_weight: float = 0.3
    appearance_gate: float = -1.0
    look_evidence: float = 1.0
    colour_evidence: float = 0.5
    hindsight_frames: int = 4
    anchor_min_score: float = 0.8
    fade_min_score: float = 0.7
    min_run_frames: int = 3
    detector_flip_test: bool = True
    flip_nms_iou: float = 0.6

    def __post_init__(self) -> None:
        if not 0 <= self.hindsight_frames <= MAX_HINDSIGHT_FRAMES:
            raise ConfigError(f"propagation.hindsight_frames must be in [0, {MAX_HINDSIGHT_FRAMES}], "
                              f"got {self.hindsight_frames}")
        if self.min_run_frames < 1:
            raise ConfigError(f"propagation.min_run_frames must be >= 1, got {self.min_run_frames}")
        if not 0.0 <= self.appearance_weight <= 1.0:
            raise ConfigError(f"propagation.appearance_weight must be in [0, 1], got {self.appearance_weight}")
        if not -1.0 <= self.appearance_gate <= 1.0:
            raise ConfigError(f"propagation.appearance_gate must be in [-1, 1], got {self.appearance_gate}")
        for name in ("sot_min_score", "detection_min_iou", "keypoint_score_threshold", "reinit_iou",
                     "visible_min_score", "reappear_min_score", "reacquire_min_similarity", "duplicate_pose_oks",
                     "hidden_cover_share", "comeback_max_iou", "look_evidence", "colour_evidence", "anchor_min_score",
                     "flip_nms_iou", "colour_reacquire_min_score", "colour_reacquire_min_similarity", "fade_min_score"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"propagation.{name} must be in [0, 1], got {value}")
        for name in ("motion_weight", "sot_weight", "detection_weight", "pose_weight", "reacquire_margin",
                     "reacquire_max_distance", "colour_reacquire_reach"):
            if getattr(self, name) < 0:
                raise ConfigError(f"propagation.{name} must be >= 0, got {getattr(self, name)}")
        if self.reappear_min_score < self.visible_min_score:
            raise ConfigError(f"propagation.reappear_min_score ({self.reappear_min_score}) must be at least "
                              f"visible_min_score ({self.visible_min_score})")
        if self.reinit_scale < 1:
            raise ConfigError(f"propagation.reinit_scale must be >= 1, got {self.reinit_scale}")
        lo, hi = self.pose_box_growth_range
        if not 0 < lo <= self.pose_box_growth <= hi:
            raise ConfigError(f"propagation.pose_box_growth must lie in pose_box_growth_range "
                              f"[{lo}, {hi}] (lower bound > 0), got {self.pose_box_growth}")
