"""How sure a benchmark's figures are: intervals from resampling its clips.

A bench set holds a dozen or so clips, and a tracker's AP or IDF1 on it moves
by a hundredth from one clip more or less. :func:`clip_bootstrap` draws the
clips with replacement (the clip is the unit: its frames are not independent),
scores every draw as the whole set is scored, and returns the percentile
interval of each figure. Keypoint AP is scored again by pycocotools on each
draw (a clip drawn twice counts twice: its images and annotations are copied
under new ids); IDF1 and MOTA are summed from each clip's counts.
"""

from __future__ import annotations

import numpy as np

from aptrack.eval.keypoints import keypoint_ap

FIGURES = ("AP", "IDF1", "MOTA")
"""The figures :func:`clip_bootstrap` gives intervals of, in its output's order."""

COUNT_KEYS = ("idtp", "idfp", "idfn", "misses", "false_positives", "id_switches", "objects")
"""Per-clip tracking counts that :func:`tracking_figures` needs."""


def tracking_figures(counts: np.ndarray) -> tuple[float, float]:
    """(IDF1, MOTA) of clips whose :data:`COUNT_KEYS` counts, summed, are ``counts`` (7,).

    IDF1 is ``2 IDTP / (2 IDTP + IDFP + IDFN)``; MOTA ``1 - (misses + false positives +
    switches) / objects``; NaN where the denominator is 0.
    """
    idtp, idfp, idfn, misses, fp, switches, objects = (float(c) for c in counts)
    idf1 = 2 * idtp / (2 * idtp + idfp + idfn) if (2 * idtp + idfp + idfn) > 0 else float("nan")
    mota = 1.0 - (misses + fp + switches) / objects if objects > 0 else float("nan")
    return idf1, mota


def _drawn_coco(gt: dict, results: list[dict], clip_images: list[np.ndarray], drawn: np.ndarray):
    """The COCO ground truth and results of the clips ``drawn`` (indices, repeats allowed), every copy of
    an image under its own id."""
    stride = max([int(im["id"]) for im in gt["images"]] + [int(r["image_id"]) for r in results] + [0]) + 1
    ann_stride = max([int(a["id"]) for a in gt["annotations"]] + [0]) + 1
    images_by_id = {int(im["id"]): im for im in gt["images"]}
    anns_by_image: dict[int, list[dict]] = {}
    for a in gt["annotations"]:
        anns_by_image.setdefault(int(a["image_id"]), []).append(a)
    results_by_image: dict[int, list[dict]] = {}
    for r in results:
        results_by_image.setdefault(int(r["image_id"]), []).append(r)
    images, anns, res = [], [], []
    for copy, c in enumerate(drawn):
        for image_id in clip_images[c].tolist():
            new_id = copy * stride + int(image_id)
            if image_id in images_by_id:
                images.append(dict(images_by_id[image_id], id=new_id))
            anns += [dict(a, id=copy * ann_stride + int(a["id"]), image_id=new_id)
                     for a in anns_by_image.get(image_id, [])]
            res += [dict(r, image_id=new_id) for r in results_by_image.get(image_id, [])]
    return dict(gt, images=images, annotations=anns), res


def clip_bootstrap(gt: dict, results: list[dict], clip_images: list, counts, sigmas, draws: int,
                   seed: int = 0, level: float = 0.95) -> dict:
    """Percentile intervals of AP, IDF1 and MOTA over ``draws`` resamplings of the clips.

    Parameters
    ----------
    gt, results : the COCO keypoint ground truth and results the set was scored on (as
        :func:`aptrack.eval.keypoints.keypoint_ap` takes them; every image of a clip that was
        scored must be in ``gt["images"]``)
    clip_images : list of C arrays of int
        The image ids of each clip.
    counts : (C, 7) array_like of int
        Each clip's tracking counts, :data:`COUNT_KEYS` in that order.
    sigmas : (K,) OKS constants
    draws : int >= 1
    seed : int
        Seeds the draws: the same inputs and seed give the same intervals.
    level : float in (0, 1)
        The share of the draws inside each interval.

    Returns
    -------
    dict ``{"AP": (low, high), "IDF1": ..., "MOTA": ..., "draws": draws, "level": level, "seed": seed,
    "samples": {"AP": (draws,) list, "IDF1": ..., "MOTA": ...}}``: the samples are each draw's figures.
    Two runs on the same clips with the same seed draw the same clips, so the differences of their
    samples are the paired draws of the difference (:func:`paired_interval`).
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    counts = np.asarray(counts, np.float64).reshape(len(clip_images), len(COUNT_KEYS))
    clip_images = [np.asarray(c, np.int64) for c in clip_images]
    rng = np.random.default_rng(seed)
    figures = np.empty((draws, 3))
    for d in range(draws):
        drawn = rng.integers(0, len(clip_images), len(clip_images))
        draw_gt, draw_results = _drawn_coco(gt, results, clip_images, drawn)
        ap = keypoint_ap(draw_gt, draw_results, sigmas)["AP"]
        figures[d] = (ap, *tracking_figures(counts[drawn].sum(axis=0)))
    out = {name: percentile_interval(figures[:, k], level) for k, name in enumerate(FIGURES)}
    return {**out, "draws": draws, "level": level, "seed": seed,
            "samples": {name: figures[:, k].tolist() for k, name in enumerate(FIGURES)}}


def percentile_interval(samples, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` share of the finite ``samples`` (D,), as (low, high); NaNs without any."""
    values = np.asarray(samples, np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def paired_interval(samples_a, samples_b, level: float = 0.95) -> tuple[float, float]:
    """Interval of ``a - b`` from two runs' per-draw figures (D,) drawn on the same clips with the same seed."""
    a, b = np.asarray(samples_a, np.float64), np.asarray(samples_b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"the two runs have {a.shape} and {b.shape} draws: bootstrap both with the same N")
    return percentile_interval(a - b, level)
