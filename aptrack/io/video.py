"""Streaming video input and atomic video output (OpenCV)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from aptrack.core.errors import OutputError, VideoError
from aptrack.io.images import spread_indices

log = logging.getLogger(__name__)

H264_FOURCCS = ("avc1",)
FALLBACK_FOURCC = "mp4v"


@contextlib.contextmanager
def _quiet_stderr():
    """Silence native stderr (FFmpeg's messages while probing encoders)."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(fd, 2)
            os.close(fd)


_EXHAUSTED = np.zeros(0, np.uint8)
"""``_first`` of a reader skipped to its end."""


class VideoReader:
    """Read frames one at a time; never holds more than one frame.

    Parameters
    ----------
    path : str or Path
    start, end : int, optional
        Frame range ``[start, end)``; ``end`` defaults to the last frame.

    Raises
    ------
    VideoError
        If the file is missing, is not a readable video, or has no frames in
        range (the first frame is decoded here, before any model loads).
    """

    def __init__(self, path: str | Path, start: int = 0, end: int | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise VideoError(f"video not found: {self.path}")
        if not self.path.is_file():
            raise VideoError(f"not a file: {self.path}")
        with _quiet_stderr():
            cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise VideoError(f"cannot read {self.path}: not a video, or a format OpenCV cannot decode")
        self._cap = cap
        self.fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.frame_count = count if count > 0 else None
        if start < 0 or (end is not None and end <= start):
            self.close()
            raise VideoError(f"bad frame range: start {start}, end {end}")
        if self.frame_count is not None and start >= self.frame_count:
            self.close()
            raise VideoError(f"{self.path} has {self.frame_count} frames; --start {start} is past the end")
        self.start = start
        if self.frame_count is None:
            self.end = end
        else:
            self.end = self.frame_count if end is None else min(end, self.frame_count)
        if start:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        ok, first = cap.read()
        if not ok or first is None:
            self.close()
            raise VideoError(f"{self.path} has no decodable frames"
                             + (f" from frame {start}" if start else ""))
        self._first = first
        self._index = start  # the frame _first is
        self.height, self.width = first.shape[:2]

    @property
    def expected_frames(self) -> int | None:
        return None if self.end is None else self.end - self.start

    def sample(self, count: int) -> list[np.ndarray]:
        """Up to ``count`` frames spread over the range, read apart from the iteration (:func:`sample_video_frames`)."""
        return sample_video_frames(self.path, self.start, self.end, count)

    def skip_to(self, index: int) -> None:
        """Start the iteration at frame ``index`` (call before iterating): the frames from ``start``
        are read and dropped in order rather than sought, so the frames that follow are exactly
        those a run from ``start`` decodes (seeking is not frame-exact in every format)."""
        if self._first is None:
            raise RuntimeError("skip_to before iterating")
        if index <= self._index:
            return
        if self.end is not None and index >= self.end:
            self._first, self._index = _EXHAUSTED, self.end
            return
        for i in range(self._index + 1, index):
            if not self._cap.grab():
                raise VideoError(f"{self.path} stopped after {i - self.start} frames, before frame {index}")
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise VideoError(f"{self.path} stopped before frame {index}")
        self._first, self._index = frame, index

    def __iter__(self):
        """Yield ``(frame_index, frame)`` with frame (H, W, 3) uint8 BGR.

        Raises
        ------
        VideoError
            If the stream stops before the frame count in its header (a
            truncated or corrupt file).
        """
        frame, self._first = self._first, None
        if frame is None:
            raise RuntimeError("a VideoReader can be iterated once")
        if frame is _EXHAUSTED:
            return
        index = self._index
        while True:
            yield index, frame
            index += 1
            if self.end is not None and index >= self.end:
                break
            ok, frame = self._cap.read()
            if not ok or frame is None:
                break
        read = index - self.start
        if self.expected_frames is not None and read < self.expected_frames:
            raise VideoError(f"{self.path} stopped after {read} of {self.expected_frames} frames: "
                             f"the file is truncated or corrupt")

    def close(self) -> None:
        self._cap.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def sample_video_frames(path: str | Path, start: int, end: int | None, count: int) -> list[np.ndarray]:
    """Up to ``count`` frames spread evenly over ``[start, end)`` of a video, by seeking (a bounded
    sample: memory does not grow with the video). A video whose header gives no frame count
    gives its first ``count`` frames."""
    with _quiet_stderr():
        cap = cv2.VideoCapture(str(path))
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        stop = total if end is None or (total > 0 and end > total) else end
        frames = []
        if stop is None or stop <= 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, start)
            while len(frames) < count:
                ok, frame = cap.read()
                if not ok or frame is None:
                    break
                frames.append(frame)
            return frames
        for index in spread_indices(start, stop, count).tolist():
            cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = cap.read()
            if ok and frame is not None:
                frames.append(frame)
        return frames
    finally:
        cap.release()


@functools.lru_cache(maxsize=None)
def _encoder_works(fourcc: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.mp4")
        with _quiet_stderr():
            writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), 30.0, (64, 64))
            ok = writer.isOpened()
            if ok:
                writer.write(np.zeros((64, 64, 3), np.uint8))
            writer.release()
        return ok and os.path.getsize(path) > 0


def choose_fourcc() -> str:
    """H.264 where this OpenCV build can encode it, else MPEG-4 Part 2 (``mp4v``)."""
    for fourcc in H264_FOURCCS:
        if _encoder_works(fourcc):
            return fourcc
    return FALLBACK_FOURCC


class AtomicVideoWriter:
    """Write a video under a temporary name and rename it into place on :meth:`commit`.

    If the writer is closed without ``commit`` (an error, an interrupt), the
    partial file is deleted, so a file under the final name is always complete.
    ``fourcc`` defaults to :func:`choose_fourcc` (an .mp4).
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], fourcc: str | None = None):
        self.path = Path(path)
        self.fourcc = fourcc or choose_fourcc()
        self._tmp = self.path.with_name(f".{self.path.stem}.incomplete{self.path.suffix}")
        with _quiet_stderr():
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*self.fourcc),
                                           fps, tuple(size))
        if not self._writer.isOpened():
            self._tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write video {self.path} (codec {self.fourcc})")
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        self._writer.write(frame)
        self.frames += 1

    def commit(self) -> Path:
        self._writer.release()
        os.replace(self._tmp, self.path)
        return self.path

    def close(self) -> None:
        """Release and remove the partial file if not committed."""
        self._writer.release()
        self._tmp.unlink(missing_ok=True)
