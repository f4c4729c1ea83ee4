"""Fill the gaps of a track once its animal is found again, marked as interpolated.

A tracked animal that goes unseen for a few frames (behind cover, missed by
the detector) and then gets its id back leaves a hole in its trajectory. For
gaps of at most ``max_gap`` frames, :class:`GapFiller` puts in the frames
between the two observations the linear interpolation of the box and the
keypoints (each keypoint's score is the lower of its two ends' scores, the
detection score likewise), with ``interpolated`` set on the rows it adds.

It works on a stream: each frame is held back ``max_gap`` frames (until no
later observation can fill it any more), then released with its filled rows.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np

from aptrack.core.errors import ConfigError
from aptrack.core.instances import Instances


@dataclass(frozen=True)
class InterpolationConfig:
    """``max_gap``: the longest gap (frames without the animal) that is filled; 0 turns it off."""

    max_gap: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.max_gap <= 1000:
            raise ConfigError(f"interpolation.max_gap must be in [0, 1000] frames, got {self.max_gap}")


def interpolate_row(before: Instances, after: Instances, frame_index: int) -> Instances:
    """The one-animal Instances between ``before`` and ``after`` (one row each, same track) at
    ``frame_index``, strictly between their frames; marked interpolated."""
    t0, t1 = before.frame_index, after.frame_index
    w = (frame_index - t0) / (t1 - t0)
    same_pose = before.num_keypoints == after.num_keypoints
    keypoints = ((1 - w) * before.keypoints + w * after.keypoints) if same_pose else after.keypoints
    keypoint_scores = (np.minimum(before.keypoint_scores, after.keypoint_scores) if same_pose
                       else np.zeros_like(after.keypoint_scores))
    return Instances(boxes_xyxy=(1 - w) * before.boxes_xyxy + w * after.boxes_xyxy,
                     scores=np.minimum(before.scores, after.scores), labels=after.labels,
                     categories=after.categories, keypoints=keypoints, keypoint_scores=keypoint_scores,
                     track_ids=after.track_ids, frame_index=frame_index, interpolated=[True])


class GapFiller:
    """Streaming gap filling of tracked animals.

    :meth:`push` each frame's tracked animals in order; it returns the frames
    that are final (up to ``max_gap`` frames behind), each with the rows
    interpolated into it. :meth:`flush` returns the rest at the end.

    Parameters
    ----------
    max_gap : int
        Longest gap filled, in frames (by ``frame_index``).
    """

    def __init__(self, max_gap: int):
        self.max_gap = int(max_gap)
        self._held: deque[tuple[int, Any, list[Instances]]] = deque()
        self._last: dict[int, Instances] = {}  # track id -> its latest observed row

    def push(self, tracked: Instances, payload: Any = None) -> list[tuple[Any, Instances]]:
        """Add one frame (``payload`` travels with it, e.g. the image); returns the frames released."""
        t = tracked.frame_index
        for i in range(len(tracked)):
            tid = int(tracked.track_ids[i])
            prev = self._last.get(tid)
            row = tracked.take([i])
            if prev is not None and 1 < t - prev.frame_index <= self.max_gap + 1:
                for index, _, parts in self._held:
                    if prev.frame_index < index < t:
                        parts.append(interpolate_row(prev, row, index))
            self._last[tid] = row
        self._held.append((t, payload, [tracked]))
        self._last = {k: v for k, v in self._last.items() if t - v.frame_index <= self.max_gap + 1}
        released = []
        while self._held and self._held[0][0] <= t - self.max_gap:
            released.append(self._release())
        return released

    def state(self) -> dict:
        """The frames held back (index, payload, rows) and each track's latest row, for a resumable run."""
        return {"held": [(index, payload, list(parts)) for index, payload, parts in self._held],
                "last": dict(self._last)}

    def load_state(self, state: dict) -> None:
        """Continue from a :meth:`state`."""
        self._held = deque((int(index), payload, list(parts)) for index, payload, parts in state["held"])
        self._last = {int(k): v for k, v in state["last"].items()}

    def flush(self) -> list[tuple[Any, Instances]]:
        """The frames still held, at the end of the stream."""
        out = [self._release() for _ in range(len(self._held))]
        self._last = {}
        return out

    def _release(self) -> tuple[Any, Instances]:
        index, payload, parts = self._held.popleft()
        merged = parts[0] if len(parts) == 1 else Instances.concatenate(parts, frame_index=index)
        if len(parts) > 1:
            merged = merged.take(np.argsort(merged.track_ids, kind="stable"))
        return payload, merged


def fill_gaps(stream: Iterable[tuple[Any, Instances]], max_gap: int) -> Iterator[tuple[Any, Instances]]:
    """``(payload, tracked)`` pairs of a stream, with the gaps of up to ``max_gap`` frames filled
    (:class:`GapFiller`); the same pairs unchanged when ``max_gap`` is 0."""
    if max_gap <= 0:
        yield from stream
        return
    filler = GapFiller(max_gap)
    for payload, tracked in stream:
        yield from filler.push(tracked, payload)
    yield from filler.flush()
