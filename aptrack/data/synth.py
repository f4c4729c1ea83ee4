"""``aptrack synth``: an APTv2-layout video dataset built from real Animal-Pose animals.

No real APTv2 copy can be downloaded everywhere, so this builds one with exact
ground truth: real animals, cut from their Animal-Pose boxes, move over real
backgrounds (image regions free of annotated animals) along smooth paths, with
changes of scale, crossings and partial occlusions, 15 frames per clip.

* **easy** clips hold ``easy_animals`` animals, **hard** clips ``hard_animals``
  (more animals, smaller, with paths that cross);
* keypoints hidden under another animal or outside the frame are unlabelled
  (``v = 0``); boxes are the visible part of the pasted animal;
* animals are drawn from the held-out validation side of the same seeded
  split that training uses, so a model trained by ``aptrack train`` is never
  scored on its own training animals.

Output (the dataset's own APTv2 layout)::

    OUT/images/VIDEO/FRAME.jpg
    OUT/test_annotations.json         every clip
    OUT/test_annotations_easy.json    easy clips
    OUT/test_annotations_hard.json    hard clips
    OUT/hidden_truth.json             what no annotation says (below)

``hidden_truth.json`` holds, for every animal drawn in every frame (the
mostly hidden ones too, which get no annotation), ``image_id``,
``video_id``, ``track_id``, ``box_xyxy_full`` (the whole pasted animal,
hidden parts included), ``visible_fraction`` (the share of that box's
pixels it shows; it is annotated when this is at least
``info.min_visible_fraction``), ``depth`` (its place in the drawing order,
higher in front) and ``annotation_id`` (null when not annotated). It lets a
benchmark tell where a tracker fails: behind which animal, how hidden
(``benchmarks/known_animals_breakdown.py``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from aptrack.core.errors import DatasetError, OutputError, write_json_atomic
from aptrack.core.layout import KeypointLayout
from aptrack.data.datasets import KeypointDataset, read_json, select_split
from aptrack.io.images import load_image
from aptrack.io.video import AtomicVideoWriter
from aptrack.pose.transforms import swap_pairs

log = logging.getLogger(__name__)

HIDDEN_TRUTH = "hidden_truth.json"


@dataclass(frozen=True)
class SynthConfig:
    """Sizes in pixels of the output frame; fractions of the frame height for animals."""

    frames: int = 15
    width: int = 640
    height: int = 480
    easy_animals: tuple[int, int] = (1, 2)
    hard_animals: tuple[int, int] = (3, 5)
    easy_height: tuple[float, float] = (0.30, 0.50)
    hard_height: tuple[float, float] = (0.22, 0.38)
    scale_change: tuple[float, float] = (0.8, 1.25)
    min_source_size: float = 64.0
    min_source_keypoints: int = 6
    min_visible_fraction: float = 0.3
    feather: float = 0.06
    jpeg_quality: int = 90
    val_instances: int = 1100
    split_seed: int = 0
    small_source_val_fraction: float = 0.2


def held_out_size(num_animals: int, config: SynthConfig = SynthConfig()) -> int:
    """Animals to hold out from a source of ``num_animals``: the training split's
    ``val_instances`` (the animals aptrack's own model never saw) when the source
    holds more than twice that, else ``small_source_val_fraction`` of it (at least 1)."""
    if num_animals > 2 * config.val_instances:
        return config.val_instances
    return max(1, int(np.ceil(config.small_source_val_fraction * num_animals)))


def free_region(boxes_xyxy: np.ndarray, width: int, height: int):
    """The largest full-width or full-height strip of an image that no box touches.

    Returns ``(x1, y1, x2, y2)`` ints, or None when every strip is empty.
    """
    b = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    if len(b) == 0:
        return (0, 0, width, height)
    strips = [(0, 0, int(np.floor(b[:, 0].min())), height),
              (int(np.ceil(b[:, 2].max())), 0, width, height),
              (0, 0, width, int(np.floor(b[:, 1].min()))),
              (0, int(np.ceil(b[:, 3].max())), width, height)]
    strips = [s for s in strips if s[2] - s[0] > 0 and s[3] - s[1] > 0]
    if not strips:
        return None
    return max(strips, key=lambda s: (s[2] - s[0]) * (s[3] - s[1]))


def feather_mask(h: int, w: int, feather: float) -> np.ndarray:
    """(h, w) float32 alpha: 1 inside, falling linearly to 0 over ``feather`` of the size."""
    fy = max(1.0, feather * h)
    fx = max(1.0, feather * w)
    y = np.minimum(np.arange(h) + 0.5, h - np.arange(h) - 0.5) / fy
    x = np.minimum(np.arange(w) + 0.5, w - np.arange(w) - 0.5) / fx
    return np.clip(np.minimum(y[:, None], x[None, :]), 0.0, 1.0).astype(np.float32)


class ClipSynthesizer:
    """Builds clips from a :class:`KeypointDataset` of real animals (already in the target layout)."""

    def __init__(self, animals: KeypointDataset, config: SynthConfig = SynthConfig()):
        self.config = config
        self.layout: KeypointLayout = animals.layout
        w = animals.boxes_xyxy[:, 2] - animals.boxes_xyxy[:, 0]
        h = animals.boxes_xyxy[:, 3] - animals.boxes_xyxy[:, 1]
        good = ((np.minimum(w, h) >= config.min_source_size)
                & (animals.num_labelled >= config.min_source_keypoints))
        if not good.any():
            raise DatasetError(f"no source animal is at least {config.min_source_size:g} px with "
                               f"{config.min_source_keypoints} labelled keypoints ({len(good)} animals held "
                               f"out for clips): a clip needs at least one")
        self.animals = animals
        self.pool = np.flatnonzero(good)
        self.images = sorted(set(animals.files.tolist()))
        self._boxes_by_file: dict[str, np.ndarray] = {}
        for f, box in zip(animals.files, animals.boxes_xyxy):
            self._boxes_by_file.setdefault(f, []).append(box)

    # -- pieces --------------------------------------------------------------
    def background(self, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        for _ in range(50):
            f = self.images[rng.integers(len(self.images))]
            img = load_image(f)
            h, w = img.shape[:2]
            region = free_region(np.array(self._boxes_by_file[f]), w, h)
            if region is None:
                continue
            x1, y1, x2, y2 = region
            if (x2 - x1) * (y2 - y1) < 0.15 * w * h or min(x2 - x1, y2 - y1) < 48:
                continue
            return cv2.resize(img[y1:y2, x1:x2], (cfg.width, cfg.height), interpolation=cv2.INTER_LINEAR)
        # no animal-free region found: a smooth gradient is still a valid background
        g = np.linspace(60, 180, cfg.width, dtype=np.float32)
        return np.repeat(np.repeat(g[None, :, None], cfg.height, 0), 3, 2).astype(np.uint8)

    def pick_animals(self, hard: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The source rows of one clip's animals (n,) and their heights in pixels (n,) at its start."""
        cfg = self.config
        lo_n, hi_n = cfg.hard_animals if hard else cfg.easy_animals
        n = min(int(rng.integers(lo_n, hi_n + 1)), len(self.pool))  # a small source: fewer per clip
        picks = rng.choice(self.pool, size=n, replace=False)
        hrange = cfg.hard_height if hard else cfg.easy_height
        return picks, rng.uniform(*hrange, n) * cfg.height

    def paths(self, n: int, heights: np.ndarray, hard: bool, rng: np.random.Generator):
        """Start and end centres (n, 2) each; hard clips cross near one point."""
        cfg = self.config
        W, H = cfg.width, cfg.height
        half = heights[:, None] * np.array([0.75, 0.5])  # rough half size (animals are wider than high)
        lo, hi = half, np.array([W, H]) - half
        if hard:
            cross = np.array([rng.uniform(0.35, 0.65) * W, rng.uniform(0.4, 0.6) * H])
            angles = rng.uniform(0, np.pi, n) + np.arange(n) * np.pi / n
            reach = rng.uniform(0.15, 0.3, n)[:, None] * np.array([W, H])
            direction = np.stack([np.cos(angles), np.sin(angles)], axis=1)
            start, end = cross + direction * reach, cross - direction * reach
        else:
            start = rng.uniform(lo, hi)
            end = start + rng.uniform(-0.25, 0.25, (n, 2)) * np.array([W, H])
        return np.clip(start, lo, hi), np.clip(end, lo, hi)

    def patches(self, picks, flips) -> list:
        """(patch, keypoints in patch pixels, visible, species) per source row, flipped where asked."""
        layout = self.layout
        patches = []
        for row, flip in zip(picks, flips):
            img = load_image(self.animals.files[row])
            x1, y1, x2, y2 = np.round(self.animals.boxes_xyxy[row]).astype(int)
            patch = img[y1:y2, x1:x2]
            kp = self.animals.keypoints[row] - np.array([x1, y1], np.float32)
            vis = self.animals.visible[row].copy()
            if flip:
                patch = patch[:, ::-1]
                kp = kp.copy()
                kp[:, 0] = (patch.shape[1] - 1) - kp[:, 0]
                kp = swap_pairs(kp, layout.flip_pairs, axis=0)
                vis = swap_pairs(vis, layout.flip_pairs, axis=0)
            patches.append((np.ascontiguousarray(patch), kp, vis, self.animals.categories[row]))
        return patches

    def render(self, background: np.ndarray, patches: list, placements: list, order) -> tuple:
        """One frame: the animals pasted over ``background`` and their annotations.

        ``placements[i]`` is ``(centre (2,), height in pixels)`` of animal ``i``,
        or ``(centre, height, (a, b))`` to draw only the columns between
        fractions ``a`` and ``b`` of its width (the rest is behind cover), or
        None when it is hidden in this frame; animals are drawn in ``order``
        (later ones cover earlier ones). Returns the (H, W, 3) uint8 frame and
        one dict per drawn animal: the hidden truth (``box_xyxy_full``, the
        whole pasted animal's box, hidden parts and parts outside the frame
        included; ``visible_fraction``, the share of that box's pixels it
        shows; ``depth``, its place in the drawing order, higher in front) and
        ``annotated``, true for the animals at least ``min_visible_fraction``
        seen, which also get their annotation (``box_xyxy``, the visible part,
        ``keypoints`` and ``visible``).
        """
        cfg = self.config
        n = len(patches)
        canvas = background.astype(np.float32)
        cover = np.full((cfg.height, cfg.width), -1, np.int32)  # which animal owns each pixel
        placed: list = [None] * n
        for i in order:
            if placements[i] is None:
                continue
            patch, kp, vis, species = patches[i]
            centre, height = placements[i][:2]
            window = placements[i][2] if len(placements[i]) > 2 else (0.0, 1.0)
            ph, pw = patch.shape[:2]
            s = height / ph
            w_t, h_t = max(2, int(round(pw * s))), max(2, int(round(ph * s)))
            x0 = int(round(centre[0] - w_t / 2))
            y0 = int(round(centre[1] - h_t / 2))
            resized = cv2.resize(patch, (w_t, h_t), interpolation=cv2.INTER_AREA if s < 1
                                 else cv2.INTER_LINEAR).astype(np.float32)
            alpha = feather_mask(h_t, w_t, cfg.feather)
            if tuple(window) != (0.0, 1.0):  # behind cover outside the window: not drawn, not owned
                alpha = alpha.copy()
                alpha[:, :int(round(window[0] * w_t))] = 0.0
                alpha[:, int(round(window[1] * w_t)):] = 0.0
            cx1, cy1 = max(0, x0), max(0, y0)
            cx2, cy2 = min(cfg.width, x0 + w_t), min(cfg.height, y0 + h_t)
            if cx2 <= cx1 or cy2 <= cy1:
                continue
            sub = (slice(cy1 - y0, cy2 - y0), slice(cx1 - x0, cx2 - x0))
            a = alpha[sub][..., None]
            canvas[cy1:cy2, cx1:cx2] = a * resized[sub] + (1 - a) * canvas[cy1:cy2, cx1:cx2]
            cover[cy1:cy2, cx1:cx2][alpha[sub] >= 0.5] = i
            # keypoints: patch pixel p -> frame (p + 0.5) * (w_t / pw) - 0.5 + x0
            sx, sy = w_t / pw, h_t / ph
            frame_kp = np.stack([(kp[:, 0] + 0.5) * sx - 0.5 + x0,
                                 (kp[:, 1] + 0.5) * sy - 0.5 + y0], axis=1)
            placed[i] = (frame_kp, vis.copy(), w_t * h_t, species, (x0, y0, x0 + w_t, y0 + h_t))

        depth = {int(a): d for d, a in enumerate(order)}
        frame_anns = []
        for i in range(n):
            item = placed[i]
            if item is None:
                continue
            frame_kp, vis, full_area, species, full_box = item
            owned = cover == i
            fraction = float(owned.sum()) / full_area
            truth = {"track": i, "species": species, "box_xyxy_full": [float(v) for v in full_box],
                     "visible_fraction": fraction, "depth": depth[i],
                     "annotated": fraction >= cfg.min_visible_fraction}
            frame_anns.append(truth)
            if not truth["annotated"]:
                continue  # mostly hidden or outside the frame: not annotated in this frame
            ys, xs = np.nonzero(owned)
            xi = np.round(frame_kp[:, 0]).astype(int)
            yi = np.round(frame_kp[:, 1]).astype(int)
            inside = (xi >= 0) & (xi < cfg.width) & (yi >= 0) & (yi < cfg.height)
            seen = vis & inside
            seen[seen] = cover[yi[seen], xi[seen]] == i  # hidden under another animal -> unlabelled
            truth.update(box_xyxy=[float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)],
                         keypoints=frame_kp, visible=seen)
        return np.clip(canvas, 0, 255).astype(np.uint8), frame_anns

    def clip(self, video_id: int, hard: bool, rng: np.random.Generator):
        """Frames (list of (H, W, 3) uint8) and annotations (list per frame of dicts)."""
        cfg = self.config
        picks, heights = self.pick_animals(hard, rng)
        n = len(picks)
        start, end = self.paths(n, heights, hard, rng)
        grow = rng.uniform(*cfg.scale_change, n)
        wobble_amp = rng.uniform(0, 0.03, (n, 2)) * np.array([cfg.width, cfg.height])
        wobble_phase = rng.uniform(0, 2 * np.pi, (n, 2))
        flips = rng.random(n) < 0.5
        order = rng.permutation(n)  # drawing order: later animals occlude earlier ones
        patches = self.patches(picks, flips)
        background = self.background(rng)
        frames, annotations = [], []
        for t in range(cfg.frames):
            u = t / max(1, cfg.frames - 1)
            placements = [(start[i] + (end[i] - start[i]) * u
                           + wobble_amp[i] * np.sin(2 * np.pi * u + wobble_phase[i]),
                           heights[i] * (1 + (grow[i] - 1) * u)) for i in range(n)]
            frame, anns = self.render(background, patches, placements, order)
            frames.append(frame)
            annotations.append(anns)
        return frames, annotations

    def occlusion_clip(self, frames: int, rng: np.random.Generator, occlusion: "OcclusionConfig"):
        """A long clip of two look-alike animals that vanish for a while, again and again.

        Both animals are the same source animal (one of them mirrored), the
        same size, wandering over one background (a smooth random walk that
        turns back at the edges and is pulled toward the other animal, so their
        paths cross). Each vanishes (say, behind cover) for
        ``occlusion.gap_frames`` frames about every ``occlusion.every_frames``
        frames: over ``occlusion.edge_frames`` frames it slides behind the cover
        leading side first, and comes out the same way; while hidden it moves
        ``occlusion.hidden_speed`` times faster, so it comes back away from
        where it went. Every frame gets Gaussian pixel noise of
        ``occlusion.noise_std`` grey levels. Returns frames and per-frame
        annotations as :meth:`clip`.
        """
        cfg, occ = self.config, occlusion
        row = int(rng.choice(self.pool))
        patches = self.patches([row, row], [False, True])
        height = rng.uniform(*occ.height) * cfg.height
        half = np.array([0.75, 0.5]) * height
        lo, hi = half, np.array([cfg.width, cfg.height]) - half
        pos = rng.uniform(lo, hi, (2, 2))
        angle = rng.uniform(0, 2 * np.pi, 2)
        seen = self._seen_fractions(frames, rng, occ)  # (2, frames) in [0, 1]
        background = self.background(rng)
        out_frames, annotations = [], []
        speed = occ.speed * cfg.height
        for t in range(frames):
            towards = pos[::-1] - pos
            pull = np.arctan2(towards[:, 1], towards[:, 0])
            turn = np.angle(np.exp(1j * (pull - angle)))  # signed, in (-pi, pi]
            angle += occ.attraction * turn + rng.normal(0, occ.turn_std, 2)
            step = speed * np.where(seen[:, t] > 0, 1.0, occ.hidden_speed)
            pos = pos + step[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
            for i in range(2):  # turn back at the edges
                for d in range(2):
                    if not lo[d] <= pos[i, d] <= hi[d]:
                        pos[i, d] = np.clip(pos[i, d], lo[d], hi[d])
                        angle[i] = np.pi - angle[i] if d == 0 else -angle[i]
            placements = []
            for i in range(2):
                f = float(seen[i, t])
                leading_right = np.cos(angle[i]) >= 0  # the leading side goes behind cover first
                window = (0.0, f) if leading_right else (1.0 - f, 1.0)
                placements.append(None if f <= 0 else (pos[i].copy(), height, window))
            frame, anns = self.render(background, patches, placements, order=[0, 1])
            if occ.noise_std > 0:
                noisy = frame.astype(np.float32) + rng.normal(0, occ.noise_std, frame.shape).astype(np.float32)
                frame = np.clip(noisy, 0, 255).astype(np.uint8)
            out_frames.append(frame)
            annotations.append(anns)
        return out_frames, annotations

    @staticmethod
    def _seen_fractions(frames: int, rng: np.random.Generator, occ: "OcclusionConfig") -> np.ndarray:
        """(2, frames) float: how much of each animal is out of cover (0 hidden, 1 fully seen)."""
        seen = np.ones((2, frames))
        edge = max(0, occ.edge_frames)
        ramp = (np.arange(edge) + 1.0) / (edge + 1.0)  # increasing, strictly inside (0, 1)
        for i in range(2):
            t = int(rng.integers(occ.every_frames[0] // 2, occ.every_frames[1]))
            while t < frames:
                gap = int(rng.integers(occ.gap_frames[0], occ.gap_frames[1] + 1))
                into = np.arange(t - edge, t)
                out = np.arange(t + gap, t + gap + edge)
                ok = into >= 0
                seen[i, into[ok]] = np.minimum(seen[i, into[ok]], ramp[::-1][ok])
                ok = out < frames
                seen[i, out[ok]] = np.minimum(seen[i, out[ok]], ramp[ok])
                seen[i, t:t + gap] = 0.0
                t += max(gap + 2 * edge + 1, int(rng.integers(*occ.every_frames)))  # start to start
        return seen


@dataclass(frozen=True)
class OcclusionConfig:
    """The long look-alike clip of :meth:`ClipSynthesizer.occlusion_clip`.

    ``every_frames`` and ``gap_frames``: each animal vanishes for a number of
    frames drawn from ``gap_frames`` (inclusive), with the starts of its gaps
    ``every_frames`` apart (drawn). ``height``: animal height as a fraction of
    the frame height. ``speed``: frame heights per frame. ``turn_std``:
    radians per frame of the random walk's heading. ``edge_frames``: frames
    over which an animal slides behind cover before a gap (and out after it),
    so its box shrinks and its detections get noisy. ``hidden_speed``: speed
    while hidden, in multiples of ``speed``. ``attraction``: the fraction of
    the angle toward the other animal its heading turns by per frame (0: a
    free walk; more: more crossings). ``noise_std``: Gaussian pixel noise,
    grey levels.
    """

    every_frames: tuple[int, int] = (60, 100)
    gap_frames: tuple[int, int] = (5, 30)
    height: tuple[float, float] = (0.2, 0.28)
    speed: float = 0.006
    turn_std: float = 0.15
    edge_frames: int = 6
    hidden_speed: float = 2.5
    attraction: float = 0.03
    noise_std: float = 8.0


class _AnnotationWriter:
    """Frames as JPEGs under ``OUT/images/VIDEO/`` and their APTv2 image and annotation records."""

    def __init__(self, out: Path, animals: KeypointDataset, config: SynthConfig):
        self.out, self.config = out, config
        layout = animals.layout
        species = sorted(set(animals.categories.tolist()))
        self.cat_id = {name: i + 1 for i, name in enumerate(species)}
        self.categories = [{"id": self.cat_id[n], "name": n, "supercategory": "animal",
                            "keypoints": list(layout.keypoints),
                            "skeleton": [[a + 1, b + 1] for a, b in layout.skeleton]} for n in species]
        self.image_id = self.ann_id = 0
        self.hidden_truth: list[dict] = []  # every drawn animal, annotated or not

    def clip(self, video_id: int, frames, frame_anns, images: list, anns: list) -> None:
        """Write one clip's frames; append its records to ``images`` and ``anns``."""
        out, cfg = self.out, self.config
        (out / "images" / f"{video_id:05d}").mkdir(parents=True, exist_ok=True)
        for t, (frame, animals_here) in enumerate(zip(frames, frame_anns)):
            self.image_id += 1
            name = f"images/{video_id:05d}/{t:06d}.jpg"
            if not cv2.imwrite(str(out / name), frame, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]):
                raise OutputError(f"cannot write {out / name}")
            images.append({"id": self.image_id, "file_name": name, "width": cfg.width, "height": cfg.height,
                           "video_id": video_id, "frame_id": t})
            for a in animals_here:
                track_id = video_id * 100 + a["track"]
                hidden = {"image_id": self.image_id, "video_id": video_id, "track_id": track_id,
                          "box_xyxy_full": a["box_xyxy_full"], "visible_fraction": a["visible_fraction"],
                          "depth": a["depth"], "annotation_id": None}
                self.hidden_truth.append(hidden)
                if not a["annotated"]:
                    continue
                self.ann_id += 1
                hidden["annotation_id"] = self.ann_id
                x1, y1, x2, y2 = a["box_xyxy"]
                kp = np.concatenate([a["keypoints"], 2.0 * a["visible"][:, None]], axis=1)
                kp[~a["visible"]] = 0
                anns.append({
                    "id": self.ann_id, "image_id": self.image_id, "video_id": video_id,
                    "track_id": track_id, "category_id": self.cat_id[a["species"]],
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
                    "num_keypoints": int(a["visible"].sum()),
                    "keypoints": [round(float(v), 2) for v in kp.reshape(-1)]})

    def write(self, path: Path, info: dict, images: list, anns: list) -> str:
        write_json_atomic(path, {"info": info, "images": images, "annotations": anns,
                                 "categories": self.categories})
        return str(path)

    def write_hidden_truth(self, info: dict) -> str:
        """``OUT/hidden_truth.json``: every drawn animal of every frame, annotated or not (see the module)."""
        path = self.out / HIDDEN_TRUTH
        write_json_atomic(path, {"info": {**info, "min_visible_fraction": self.config.min_visible_fraction},
                                 "animals": self.hidden_truth})
        return str(path)


def _prepare(animals: KeypointDataset, out_dir: str | Path, config: SynthConfig):
    """The output folder (created) and the synthesizer of the held-out animals."""
    out = Path(out_dir)
    try:
        (out / "images").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write to {out}: {exc.strerror or exc}") from None
    held_out = held_out_size(len(animals), config)
    if held_out != config.val_instances:
        log.warning("small source (%d animals): clips use a seeded %d of them, not the %d held out from "
                    "aptrack's own training split", len(animals), held_out, config.val_instances)
    if len(animals) < 2:
        raise DatasetError(f"the source holds {len(animals)} animal(s): a split for clips needs at least 2")
    return out, ClipSynthesizer(select_split(animals, "val", held_out, config.split_seed), config)


def load_hidden_truth(data_dir: str | Path) -> dict[tuple[int, int], dict]:
    """An ``aptrack synth`` set's ``hidden_truth.json``, keyed by ``(image_id, track_id)``.

    Each value holds ``box_xyxy_full`` ((4,) float64 pixels, the whole animal),
    ``visible_fraction``, ``depth`` and ``annotation_id`` (None when not
    annotated); see the module. Raises DatasetError when the folder has none
    (it was not built by ``aptrack synth``, or by an older one).
    """
    path = Path(data_dir) / HIDDEN_TRUTH
    if not path.is_file():
        raise DatasetError(f"{path} not found: the hidden truth comes with sets built by 'aptrack synth' "
                           f"(rebuild older ones)")
    data = read_json(path, "hidden-truth file")
    try:
        return {(int(r["image_id"]), int(r["track_id"])):
                {**r, "box_xyxy_full": np.asarray(r["box_xyxy_full"], np.float64)} for r in data["animals"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path} is not a hidden-truth file: {exc!r}") from None


def synthesize(animals: KeypointDataset, out_dir: str | Path, clips: int, seed: int,
               config: SynthConfig = SynthConfig(), progress=None) -> dict:
    """Write ``clips`` clips (alternately easy and hard) to ``out_dir``.

    Parameters
    ----------
    animals : source animals in the target layout (all of them; the held-out
        validation side of the training split is taken here)
    out_dir : output folder (created)
    clips : number of clips
    seed : clip ``c`` draws from ``numpy.random.default_rng([seed, c])``
    progress : optional callable(clips_done)

    Returns
    -------
    dict: counts per split and the annotation file paths.
    """
    if clips < 1:
        raise DatasetError("--clips must be at least 1")
    out, synth = _prepare(animals, out_dir, config)
    writer = _AnnotationWriter(out, animals, config)
    images = {"easy": [], "hard": []}
    anns = {"easy": [], "hard": []}
    for c in range(clips):
        rng = np.random.default_rng([seed, c])
        hard = c % 2 == 1
        split = "hard" if hard else "easy"
        frames, frame_anns = synth.clip(c + 1, hard, rng)
        writer.clip(c + 1, frames, frame_anns, images[split], anns[split])
        if progress is not None:
            progress(c + 1)
    info = {"description": "aptrack synth: APTv2-layout clips of real Animal-Pose animals",
            "seed": seed, "clips": clips, "frames_per_clip": config.frames}
    files = {split: writer.write(out / f"test_annotations_{split}.json", {**info, "split": split},
                                 images[split], anns[split]) for split in ("easy", "hard")}
    files["all"] = writer.write(out / "test_annotations.json", {**info, "split": "all"},
                                images["easy"] + images["hard"], anns["easy"] + anns["hard"])
    files["hidden_truth"] = writer.write_hidden_truth(info)
    return {"clips": {s: len({im["video_id"] for im in images[s]}) for s in images},
            "frames": {s: len(images[s]) for s in images},
            "animals": {s: len(anns[s]) for s in anns}, "files": files}


def synthesize_occlusion(animals: KeypointDataset, out_dir: str | Path, frames: int, seed: int,
                         config: SynthConfig = SynthConfig(), occlusion: OcclusionConfig = OcclusionConfig(),
                         fps: float = 30.0) -> dict:
    """Write one long clip of two look-alike animals with long occlusions (:meth:`ClipSynthesizer.occlusion_clip`).

    ``out_dir`` gets the APTv2 layout (``test_annotations.json`` and, for
    ``aptrack bench --split hard``, the same as ``test_annotations_hard.json``)
    and the frames as a video, ``occlusion.avi`` (MJPG), for ``aptrack run``.
    Returns frames, annotated animals, the frames each animal is hidden
    and the file paths.
    """
    if frames < 2:
        raise DatasetError("--occlusion-frames must be at least 2")
    out, synth = _prepare(animals, out_dir, config)
    clip_frames, frame_anns = synth.occlusion_clip(frames, np.random.default_rng([seed, 0]), occlusion)
    writer = _AnnotationWriter(out, animals, config)
    images, anns = [], []
    writer.clip(1, clip_frames, frame_anns, images, anns)
    vw = AtomicVideoWriter(out / "occlusion.avi", fps, (config.width, config.height), fourcc="MJPG")
    try:
        for f in clip_frames:
            vw.write(f)
        video = vw.commit()
    finally:
        vw.close()
    info = {"description": "aptrack synth: two look-alike animals with long occlusions", "seed": seed,
            "frames": frames, "occlusion": dataclasses.asdict(occlusion)}
    files = {"all": writer.write(out / "test_annotations.json", {**info, "split": "all"}, images, anns),
             "hard": writer.write(out / "test_annotations_hard.json", {**info, "split": "hard"}, images, anns),
             "video": str(video), "hidden_truth": writer.write_hidden_truth(info)}
    seen = {i: sum(any(a["track"] == i and a["annotated"] for a in f) for f in frame_anns) for i in (0, 1)}
    return {"frames": frames, "animals": len(anns), "hidden_frames": {i: frames - seen[i] for i in seen},
            "files": files}
