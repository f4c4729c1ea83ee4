"""Fix identities after the fact: swap two ids from a frame on, or merge one id into another.

Pure functions on a run's frames (lists of :class:`Instances`); each returns new
frames and leaves its input alone. ``aptrack relabel`` reads a results file,
applies them in the order given and writes a new file.
"""

from __future__ import annotations

import numpy as np

from aptrack.core.errors import ConfigError
from aptrack.core.instances import Instances


def track_ids_of(frames: list[Instances]) -> set[int]:
    """Every track id that appears in ``frames``."""
    return {int(t) for f in frames for t in f.track_ids}


def _check_ids(frames: list[Instances], *ids: int) -> None:
    known = track_ids_of(frames)
    missing = [i for i in ids if i not in known]
    if missing:
        shown = ", ".join(map(str, sorted(known)[:20])) + (" ..." if len(known) > 20 else "")
        raise ConfigError(f"no track {', '.join(map(str, missing))} in these results (ids: {shown or 'none'})")


def swap_ids(frames: list[Instances], a: int, b: int, start: int = 0, end: int | None = None) -> list[Instances]:
    """Frames with ids ``a`` and ``b`` exchanged on frames ``start <= frame_index < end``.

    Raises
    ------
    ConfigError
        If ``a`` or ``b`` is not a track of these results, or they are the same.
    """
    if a == b:
        raise ConfigError(f"--swap needs two different ids, got {a} twice")
    _check_ids(frames, a, b)
    out = []
    for f in frames:
        if f.frame_index < start or (end is not None and f.frame_index >= end) or not len(f):
            out.append(f)
            continue
        ids = f.track_ids.copy()
        ids[f.track_ids == a], ids[f.track_ids == b] = b, a
        order = np.argsort(ids, kind="stable")  # frames list their animals by id
        out.append(f.take(order, track_ids=ids[order]))
    return out


def merge_ids(frames: list[Instances], source: int, target: int) -> list[Instances]:
    """Frames with id ``source`` renamed ``target`` (one animal that got two ids).

    Raises
    ------
    ConfigError
        If an id is not a track of these results, or both appear on one frame (two animals).
    """
    if source == target:
        raise ConfigError(f"--merge needs two different ids, got {source} twice")
    _check_ids(frames, source, target)
    both = [f.frame_index for f in frames if source in f.track_ids and target in f.track_ids]
    if both:
        shown = ", ".join(map(str, both[:10])) + (" ..." if len(both) > 10 else "")
        raise ConfigError(f"tracks {source} and {target} are both on frame(s) {shown}: they are two animals; "
                          f"use --swap from a frame instead")
    out = []
    for f in frames:
        if source not in f.track_ids:
            out.append(f)
            continue
        ids = np.where(f.track_ids == source, target, f.track_ids)
        order = np.argsort(ids, kind="stable")
        out.append(f.take(order, track_ids=ids[order]))
    return out
