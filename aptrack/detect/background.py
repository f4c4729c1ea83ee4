"""Animals against a fixed camera's background (``--detector background``).

The way the classic lab trackers (idtracker.ai, ToxTrac, ezTrack, Bonsai)
segment: a background model from the video itself, the difference of each
frame from it, morphology and connected components. Steps of
:meth:`BackgroundDetector.fit`, on a bounded sample of frames spread over the
video (never the whole video in memory):

1. the background: the per-pixel median of the sampled grey frames (a moving
   animal drops out of it), each frame first scaled to the samples' median
   grey level (light that drifts);
2. the polarity: animals darker or brighter than the background, from which
   side the samples differ more;
3. the arena: the whole frame, a rectangle, a mask image, or ``auto``: the
   largest connected region of the background's Otsu class the animals stand
   out from, its holes filled;
4. the noise and the threshold; a camera that moves is refused here;
5. the typical animal: the blobs of the samples. When few samples hold one,
   or fewer animals move than ``--animals`` says, the missing ones may sit
   still in the background: the animal-sized blobs of the background against
   the arena floor (the background's closing, for dark animals) are taken
   for them, and the frames are compared with the floor there. Samples with
   no animal even then are refused as an empty arena.

Each frame (:meth:`BackgroundDetector.__call__`) is then the difference,
thresholded, opened and closed, labelled, and each blob a box with a score;
a blob of two touching animals is split by k-means on its pixels, seeded by
the tracker's predicted centres when there are two or more in it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from aptrack.core.errors import ConfigError, VideoError
from aptrack.core.instances import Instances
from aptrack.detect.config import BackgroundConfig
from aptrack.detect.yolo import ANIMAL_LABEL

log = logging.getLogger(__name__)

AUTO_NEEDS_BACKGROUND = ("--arena auto finds the arena in the background: use it with --detector background, "
                         "or give x,y,w,h or a mask image")


def grey(frame: np.ndarray, blur: int) -> np.ndarray:
    """(H, W) float32 grey levels of a (H, W, 3) BGR or (H, W) uint8 frame, Gaussian-smoothed over ``blur`` px."""
    g = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    g = g.astype(np.float32)
    if blur >= 2:
        k = blur | 1
        g = cv2.GaussianBlur(g, (k, k), 0)
    return g


def light_level(g: np.ndarray) -> float:
    """The median grey level of a frame, from every fourth pixel of every fourth row."""
    return float(np.median(g[::4, ::4]))


def median_background(greys: Sequence[np.ndarray]) -> np.ndarray:
    """(H, W) float32: the per-pixel median of a few (H, W) grey frames."""
    return np.median(np.stack(greys), axis=0).astype(np.float32)


def signed_difference(g: np.ndarray, background: np.ndarray, polarity: str) -> np.ndarray:
    """How much darker (``dark``) or brighter (``bright``) than the background each pixel is; (H, W) float32."""
    return background - g if polarity == "dark" else g - background


def parse_arena(spec: str | None, shape: tuple[int, int], background: np.ndarray | None = None,
                polarity: str = "dark") -> np.ndarray:
    """The arena as an (H, W) bool mask.

    Parameters
    ----------
    spec : None, ``"auto"``, ``"x,y,w,h"`` (pixels) or a mask image's path (non-zero inside)
    shape : (H, W) of the frames
    background : (H, W) float32, needed for ``auto``
    polarity : the animals' polarity, for ``auto``

    Raises
    ------
    ConfigError
        On a rectangle outside the frame, a missing or wrongly sized mask, or
        ``auto`` without a background.
    """
    h, w = shape
    if spec is None:
        return np.ones(shape, bool)
    text = spec.strip()
    if text.lower() == "auto":
        if background is None:
            raise ConfigError(AUTO_NEEDS_BACKGROUND)
        return auto_arena(background, polarity)
    parts = text.split(",")
    if len(parts) == 4:
        try:
            x, y, bw, bh = (int(round(float(p))) for p in parts)
        except ValueError:
            raise ConfigError(f"--arena {spec!r}: expected auto, x,y,w,h (pixels) or a mask image") from None
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + bw, w), min(y + bh, h)
        if bw <= 0 or bh <= 0 or x1 <= x0 or y1 <= y0:
            raise ConfigError(f"--arena {spec!r} does not overlap the {w}x{h} frame")
        mask = np.zeros(shape, bool)
        mask[y0:y1, x0:x1] = True
        return mask
    path = Path(text)
    if not path.is_file():
        raise ConfigError(f"--arena {spec!r}: not auto, not x,y,w,h and no such mask image")
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ConfigError(f"--arena {path}: not an image OpenCV can read")
    if img.shape != (h, w):
        raise ConfigError(f"--arena {path} is {img.shape[1]}x{img.shape[0]}, the video {w}x{h}")
    mask = img > 0
    if not mask.any():
        raise ConfigError(f"--arena {path} is empty (no non-zero pixel)")
    return mask


def auto_arena(background: np.ndarray, polarity: str = "dark", min_fraction: float = 0.05) -> np.ndarray:
    """The largest connected region of the background's Otsu class the animals stand out from
    (the light class for dark animals), holes filled and 2 px eroded; the whole frame when that
    region covers less than ``min_fraction`` of it."""
    bg = np.clip(background, 0, 255).astype(np.uint8)
    _, light = cv2.threshold(bg, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    region = light if polarity == "dark" else 255 - light
    count, labels, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=4)
    if count <= 1:
        return np.ones(bg.shape, bool)
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if stats[best, cv2.CC_STAT_AREA] < min_fraction * bg.size:
        log.info("no arena found in the background: searching the whole frame")
        return np.ones(bg.shape, bool)
    mask = (labels == best).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 1, thickness=-1)
    filled = cv2.erode(filled, np.ones((5, 5), np.uint8))
    return filled.astype(bool)


def _morphology(fg: np.ndarray, open_px: int, close_px: int) -> np.ndarray:
    if open_px >= 2:
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (open_px, open_px)))
    if close_px >= 2:
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE,
                              cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close_px, close_px)))
    return fg


def find_blobs(diff: np.ndarray, arena: np.ndarray, threshold: float, open_px: int, close_px: int,
               min_area: float):
    """Connected foreground blobs of a signed difference image.

    Parameters
    ----------
    diff : (H, W) float32, grey levels (positive: the animals' side)
    arena : (H, W) bool
    threshold : grey levels
    open_px, close_px : morphology kernel sizes, pixels
    min_area : pixels^2

    Returns
    -------
    labels : (H, W) int32 label image
    blobs : list of (label, area px^2, box (4,) xyxy float64, mean difference) for the blobs kept
    """
    fg = ((diff >= threshold) & arena).astype(np.uint8)
    fg = _morphology(fg, open_px, close_px)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    blobs = []
    if count > 1:
        sums = np.bincount(labels.ravel(), weights=diff.ravel(), minlength=count)
        for lab in range(1, count):
            area = float(stats[lab, cv2.CC_STAT_AREA])
            if area < min_area:
                continue
            x, y, bw, bh = (int(v) for v in stats[lab, :4])
            blobs.append((lab, area, np.array([x, y, x + bw, y + bh], np.float64), float(sums[lab] / area)))
    return labels, blobs


def tight_box(diff: np.ndarray, labels: np.ndarray, label: int, box_xyxy: np.ndarray, level: float) -> np.ndarray:
    """A blob's box around its pixels that differ by at least ``level`` times its strong
    difference (the 95th percentile over the blob): the animal's blurred edge, which the
    detection threshold takes in, left out. The blob's own box when no pixel is that strong."""
    x0, y0, x1, y1 = (int(v) for v in box_xyxy)
    mine = labels[y0:y1, x0:x1] == label
    sub = diff[y0:y1, x0:x1]
    strong = mine & (sub >= level * float(np.percentile(sub[mine], 95)))
    ys, xs = np.nonzero(strong)
    if not len(xs):
        return box_xyxy
    return np.array([x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1], np.float64)


def split_blob(labels: np.ndarray, label: int, box_xyxy: np.ndarray, parts: int,
               seeds_xy: np.ndarray | None = None) -> list[np.ndarray]:
    """Boxes (xyxy) of ``parts`` k-means clusters of one blob's pixels, seeded by ``seeds_xy`` (parts, 2) when given."""
    x0, y0, x1, y1 = (int(v) for v in box_xyxy)
    ys, xs = np.nonzero(labels[y0:y1, x0:x1] == label)
    points = np.stack([xs + x0, ys + y0], axis=1).astype(np.float32)
    if len(points) < 2 * parts:
        return [box_xyxy]
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    if seeds_xy is not None and len(seeds_xy) == parts:
        first = np.argmin(((points[:, None, :] - seeds_xy[None, :, :].astype(np.float32)) ** 2).sum(-1), axis=1)
        _, assigned, _ = cv2.kmeans(points, parts, first.astype(np.int32).reshape(-1, 1), criteria, 1,
                                    cv2.KMEANS_USE_INITIAL_LABELS)
    else:
        cv2.setRNGSeed(0)  # the same split every run
        _, assigned, _ = cv2.kmeans(points, parts, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    assigned = assigned.ravel()
    boxes = []
    for p in range(parts):
        mine = points[assigned == p]
        if len(mine):
            boxes.append(np.array([mine[:, 0].min(), mine[:, 1].min(), mine[:, 0].max() + 1, mine[:, 1].max() + 1],
                                  np.float64))
    return boxes


class BackgroundDetector:
    """Animals of a fixed-camera video, by difference from its background.

    Call :meth:`fit` with frames sampled over the video first (the frame loop
    does, through :meth:`aptrack.pipeline.Pipeline.start_video`); then call it
    per frame like any detector.

    Parameters
    ----------
    config : BackgroundConfig
    arena : the detector section's ``arena`` (see :func:`parse_arena`)
    animals : int, optional
        The known number of animals (``--animals``): when fewer move in the
        samples, the missing ones are looked for sitting still in the background.
    """

    uses_predictions = True
    """The frame loop passes the tracker's predicted centres (to split touching animals)."""

    def __init__(self, config: BackgroundConfig = BackgroundConfig(), arena: str | None = None,
                 animals: int | None = None):
        self.config = config
        self.arena_spec = arena
        self.animals = animals
        self.background: np.ndarray | None = None
        self.arena: np.ndarray | None = None
        self.polarity: str | None = None
        self.threshold = config.threshold
        self.animal_area: float | None = None
        self.still_animals = 0
        self.light_level = 1.0

    # -- fitting ---------------------------------------------------------------
    def fit(self, frames: Sequence[np.ndarray]) -> "BackgroundDetector":
        """Build the background, arena, threshold and typical animal from frames of the video.

        Parameters
        ----------
        frames : sequence of (H, W, 3) uint8 BGR frames spread over the video

        Raises
        ------
        VideoError
            When the background does not hold still (a moving camera), or no
            sample holds an animal (an empty arena).
        """
        cfg = self.config
        if len(frames) < 2:
            raise VideoError("the background detector needs a video of at least 2 frames")
        greys = [grey(f, cfg.blur) for f in frames]
        self.light_level = float(np.median([light_level(g) for g in greys]))
        greys = [self._relit(g) for g in greys]
        bg = median_background(greys)
        # 2. polarity, from the side the samples differ on more
        if cfg.polarity == "auto":
            dark = sum(int(np.count_nonzero(bg - g >= cfg.threshold)) for g in greys)
            bright = sum(int(np.count_nonzero(g - bg >= cfg.threshold)) for g in greys)
            polarity = "dark" if dark >= bright else "bright"
        else:
            polarity = cfg.polarity
        # 3. arena
        arena = parse_arena(self.arena_spec, bg.shape, bg, polarity)
        # 4. noise, threshold, and a camera that moves
        residual = np.stack([np.abs(g - bg)[arena][::7] for g in greys])
        sigma = 1.4826 * float(np.median(residual))
        threshold = max(cfg.threshold, cfg.noise_sigmas * sigma)
        moving = float(np.median((residual >= cfg.threshold).mean(axis=1)))
        if moving > cfg.moving_camera_fraction:
            raise VideoError(f"the background does not hold still ({moving:.0%} of the arena changes from frame to "
                             f"frame): a moving camera or changing light? Use the YOLO detector "
                             f"(--detector yolov8n) for this video")
        self.background, self.arena, self.polarity, self.threshold = bg, arena, polarity, threshold
        self.still_animals = 0
        # 5. the typical animal; still animals; an empty arena
        areas, counts = self._sample_blobs(greys)
        found = sum(c > 0 for c in counts)
        moving = int(np.median(counts))
        missing = None if found < cfg.min_found_fraction * len(greys) else (
            self.animals - moving if self.animals is not None and moving < self.animals else 0)
        if missing is None or missing > 0:
            self.still_animals = self._add_still_animals(missing, float(np.median(areas)) if areas else None)
            if self.still_animals:
                areas, counts = self._sample_blobs(greys)
                found = sum(c > 0 for c in counts)
        if not found:
            raise VideoError(f"no animal found against the background in {len(greys)} frames sampled over the "
                             f"video: is the arena empty? (polarity {polarity}, threshold {threshold:.0f} grey "
                             f"levels)")
        self.animal_area = float(np.median(areas))
        log.info("background detector: %s animals, threshold %.0f grey levels, typical animal %.0f px^2, "
                 "%d still in the background", polarity, threshold, self.animal_area, self.still_animals)
        return self

    def _add_still_animals(self, missing: int | None, typical_area: float | None) -> int:
        """Animals sitting still in the median background: animal-sized blobs of its difference from
        the arena floor (:meth:`_floor`) that do not touch the arena's edge, the largest ``missing``
        of them (all when None, when almost no sample had a moving animal), whose pixels then take
        the floor's values.
        Returns how many."""
        cfg = self.config
        floor = self._floor(self.background, self.arena, self.polarity)
        labels, blobs = find_blobs(signed_difference(self.background, floor, self.polarity), self.arena,
                                   self.threshold, cfg.open_px, cfg.close_px, cfg.min_area)
        # a blob on the arena's edge (or the frame's) is the edge of the floor, not an animal
        inner = np.zeros(self.arena.shape, np.uint8)
        inner[1:-1, 1:-1] = self.arena[1:-1, 1:-1]
        inner = cv2.erode(inner, np.ones((3, 3), np.uint8)).astype(bool)
        on_edge = set(np.unique(labels[self.arena & ~inner]).tolist())
        blobs = [b for b in blobs if b[0] not in on_edge]
        if typical_area is not None:
            lo, hi = typical_area / cfg.still_area_range, typical_area * cfg.still_area_range
            blobs = [b for b in blobs if lo <= b[1] <= hi]
        blobs.sort(key=lambda b: -b[1])
        if missing is not None:
            blobs = blobs[:missing]
        if not blobs:
            return 0
        mask = np.isin(labels, [b[0] for b in blobs]).astype(np.uint8)
        grow = max(cfg.close_px, 3)
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow))).astype(bool)
        self.background = np.where(mask, floor, self.background).astype(np.float32)
        log.info("%d animal(s) sit still in the median background: compared with the arena floor there", len(blobs))
        return len(blobs)

    def _relit(self, g: np.ndarray) -> np.ndarray:
        """``g`` scaled so that its median grey level is the samples' (``normalise_light``): light
        that drifts over a long recording does not turn the whole arena into foreground."""
        if not self.config.normalise_light:
            return g
        level = light_level(g)
        return g * np.float32(self.light_level / level) if level > 0 else g

    def _floor(self, bg: np.ndarray, arena: np.ndarray, polarity: str) -> np.ndarray:
        """The arena without anything animal-sized in it: the background's closing (dark animals)
        or opening (bright ones), over ``still_kernel_fraction`` of the arena's shorter side."""
        ys, xs = np.nonzero(arena)
        side = min(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
        k = max(3, int(self.config.still_kernel_fraction * side) | 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        op = cv2.MORPH_CLOSE if polarity == "dark" else cv2.MORPH_OPEN
        return cv2.morphologyEx(bg, op, kernel, borderType=cv2.BORDER_REPLICATE)

    def _sample_blobs(self, greys) -> tuple[list[float], list[int]]:
        """Areas of every blob of the samples, and the number of blobs in each sample."""
        cfg = self.config
        areas, counts = [], []
        for g in greys:
            _, blobs = find_blobs(signed_difference(g, self.background, self.polarity), self.arena, self.threshold,
                                  cfg.open_px, cfg.close_px, cfg.min_area)
            areas += [b[1] for b in blobs]
            counts.append(len(blobs))
        return areas, counts

    # -- per frame -------------------------------------------------------------
    def __call__(self, frame: np.ndarray, frame_index: int = 0, predicted_xy: np.ndarray | None = None) -> Instances:
        """The animals of one frame.

        Parameters
        ----------
        frame : (H, W, 3) uint8 BGR
        frame_index : int
        predicted_xy : (T, 2) float, optional
            The tracker's predicted animal centres, pixels, to split blobs of touching animals.

        Returns
        -------
        Instances with boxes, scores (contrast and size), the blobs' extents (the fraction of
        each box the blob fills), label 0, category ``animal``; no keypoints.
        """
        if self.background is None:
            raise RuntimeError("BackgroundDetector.fit must be called before the first frame")
        cfg = self.config
        g = self._relit(grey(frame, cfg.blur))
        if g.shape != self.background.shape:
            raise VideoError(f"frame {frame_index} is {g.shape[1]}x{g.shape[0]}, the background "
                             f"{self.background.shape[1]}x{self.background.shape[0]}")
        diff = signed_difference(g, self.background, self.polarity)
        labels, blobs = find_blobs(diff, self.arena, self.threshold, cfg.open_px, cfg.close_px, cfg.min_area)
        blobs.sort(key=lambda b: -b[1])
        boxes, scores, extents = [], [], []
        centres = np.zeros((0, 2)) if predicted_xy is None else np.asarray(predicted_xy, np.float64).reshape(-1, 2)
        for label, area, box, contrast in blobs[:cfg.max_detections]:
            box = tight_box(diff, labels, label, box, cfg.box_level)
            inside = centres[(centres[:, 0] >= box[0]) & (centres[:, 0] < box[2])
                             & (centres[:, 1] >= box[1]) & (centres[:, 1] < box[3])]
            by_area = int(round(area / self.animal_area)) if area >= cfg.split_area_ratio * self.animal_area else 1
            seeded = len(inside) >= 2 and area >= cfg.seeded_split_area_ratio * self.animal_area
            parts = min(max(len(inside) if seeded else 1, by_area), cfg.max_split)
            pieces = [box] if parts < 2 else split_blob(labels, label, box, parts,
                                                        inside if len(inside) == parts else None)
            each = area / len(pieces)
            for piece in pieces:
                boxes.append(piece)
                scores.append(self._score(contrast, each))
                extents.append(min(each / max(float((piece[2] - piece[0]) * (piece[3] - piece[1])), 1.0), 1.0))
        if not boxes:
            return Instances.empty(frame_index=frame_index)
        return Instances(boxes_xyxy=np.array(boxes, np.float32), scores=np.array(scores, np.float32),
                         labels=np.full(len(boxes), ANIMAL_LABEL), categories=["animal"] * len(boxes),
                         frame_index=frame_index, extents=np.array(extents, np.float32))

    def _score(self, contrast: float, area: float) -> float:
        """Geometric mean of contrast (over ``full_contrast`` thresholds) and size (over the typical animal), in [0, 1]."""
        c = min(contrast / (self.config.full_contrast * self.threshold), 1.0)
        s = min(area / self.animal_area, 1.0)
        return float(np.sqrt(max(c, 0.0) * s))


class ArenaFilter:
    """A detector whose boxes are kept only when their centre lies in the arena (``detector.arena``
    with YOLO): ``x,y,w,h`` or a mask image, read on the first frame."""

    def __init__(self, detector, arena: str):
        if arena.strip().lower() == "auto":
            raise ConfigError(AUTO_NEEDS_BACKGROUND)
        self.detector = detector
        self.spec = arena
        self.mask: np.ndarray | None = None

    def __call__(self, frame: np.ndarray, frame_index: int = 0) -> Instances:
        if self.mask is None or self.mask.shape != frame.shape[:2]:
            self.mask = parse_arena(self.spec, frame.shape[:2])
        found = self.detector(frame, frame_index)
        if not len(found):
            return found
        h, w = self.mask.shape
        b = found.boxes_xyxy
        cx = np.clip(((b[:, 0] + b[:, 2]) / 2).astype(np.int64), 0, w - 1)
        cy = np.clip(((b[:, 1] + b[:, 3]) / 2).astype(np.int64), 0, h - 1)
        return found.take(np.flatnonzero(self.mask[cy, cx]))
