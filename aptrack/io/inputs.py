"""What ``aptrack run`` takes: video files, folders, globs, images and image folders.

:func:`expand_inputs` turns the command line's inputs into one :class:`RunInput`
per output set: each video file (folders are searched recursively by video
extension), each image folder (its images, in natural order, are one
sequence) and each single image. Every input gets a unique output stem: its
file (or folder) name, with as many parent folder names in front as it takes
to tell apart inputs of the same name. :class:`ImageSequenceReader` reads an
image sequence with :class:`aptrack.io.video.VideoReader`'s interface.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aptrack.core.errors import VideoError
from aptrack.io.images import load_image, spread_indices

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm", ".mts")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
IMAGE_SEQUENCE_FPS = 10.0
"""Frame rate given to an image sequence's annotated video."""


@dataclass(frozen=True)
class RunInput:
    """One output set: a video file, or an image sequence (``images``), named ``stem``."""

    path: Path
    stem: str
    images: tuple[Path, ...] = field(default=())

    @property
    def is_images(self) -> bool:
        return bool(self.images)


@dataclass(frozen=True)
class BadInput:
    """An input that names nothing aptrack can read, and why."""

    text: str
    reason: str


def _natural_key(path: Path):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def images_in(folder: Path) -> list[Path]:
    """The images directly in ``folder``, in natural order (``img2`` before ``img10``)."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
                  key=_natural_key)


def _expand_path(path: Path, images_as: str) -> list[tuple[Path, tuple[Path, ...]]]:
    """(path, images) per output set under ``path``."""
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return [(path, (path,))]
        return [(path, ())]  # a video, or a file the reader will say it cannot decode
    found: list[tuple[Path, tuple[Path, ...]]] = []
    for folder in sorted([path, *(p for p in path.rglob("*") if p.is_dir())]):
        images = images_in(folder)
        if images:
            if images_as == "independent":
                found.extend((img, (img,)) for img in images)
            else:
                found.append((folder, tuple(images)))
        found.extend((p, ()) for p in sorted(folder.iterdir(), key=_natural_key)
                     if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    return found


def expand_inputs(texts: list[str], images_as: str = "sequence") -> tuple[list[RunInput], list[BadInput]]:
    """The output sets named by ``texts`` (files, folders, globs), and the texts that name none.

    Parameters
    ----------
    texts : list of str
    images_as : {"sequence", "independent"}
        An image folder is one sequence, or each image its own input.

    Returns
    -------
    inputs : list of RunInput, in the order given (a path named twice counts once)
    bad : list of BadInput
    """
    found: list[tuple[Path, tuple[Path, ...]]] = []
    bad: list[BadInput] = []
    for text in texts:
        if glob.has_magic(text):
            paths = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
            if not paths:
                bad.append(BadInput(text, "no file matches this pattern"))
        else:
            paths = [Path(text)]
        for path in paths:
            if not path.exists():
                bad.append(BadInput(text, f"not found: {path}"))
                continue
            items = _expand_path(path, images_as)
            if not items and path.is_dir():
                bad.append(BadInput(text, f"no video or image in {path}"))
            found.extend(items)
    seen, unique = set(), []
    for path, images in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((path, images))
    stems = unique_stems([p for p, _ in unique])
    return [RunInput(p, s, imgs) for (p, imgs), s in zip(unique, stems)], bad


def safe_stem(name: str) -> str:
    """``name`` as a plain file name in the output folder: letters, digits, ``_``, ``-`` and ``.``
    only (runs of anything else become ``_``), no leading dot, never empty or ``..``; so an
    output named after an input cannot escape ``-o`` or hide."""
    cleaned = re.sub(r"[^\w.\-]+", "_", name).lstrip(".")
    return cleaned or "input"


def unique_stems(paths: list[Path]) -> list[str]:
    """Output names for ``paths``: the stem, with the fewest parent folder names in front
    (``day1_cam_rec``) that tell apart the paths whose stems collide; where no number of
    folders does, a counter (``rec``, ``rec-2``)."""
    parents = [p.resolve().parent.parts[1:] for p in paths]
    names = [safe_stem(p.stem if p.suffix else p.name) for p in paths]
    out = list(names)
    for name in set(names):
        group = [i for i, n in enumerate(names) if n == name]
        if len(group) == 1:
            continue
        for depth in range(1, max(len(parents[i]) for i in group) + 1):
            candidates = [safe_stem("_".join([*parents[i][max(0, len(parents[i]) - depth):], name])) for i in group]
            if len(set(candidates)) == len(group):
                for i, c in zip(group, candidates):
                    out[i] = c
                break
        else:
            for k, i in enumerate(group):
                out[i] = name if k == 0 else f"{name}-{k + 1}"
    return out


class ImageSequenceReader:
    """Images as the frames of a video, with :class:`~aptrack.io.video.VideoReader`'s interface.

    Every image must have the size of the first one.

    Raises
    ------
    VideoError
        If the range is empty or the first image cannot be read (here), or a later
        image cannot be read or has another size (while iterating).
    """

    def __init__(self, files: tuple[Path, ...], start: int = 0, end: int | None = None):
        self.path = Path(files[0]).parent if len(files) > 1 else Path(files[0])
        self.files = list(files)
        self.fps = IMAGE_SEQUENCE_FPS
        self.frame_count = len(self.files)
        if start < 0 or (end is not None and end <= start) or start >= self.frame_count:
            raise VideoError(f"{self.path} has {self.frame_count} images; bad range start {start}, end {end}")
        self.start = start
        self.end = self.frame_count if end is None else min(end, self.frame_count)
        first = self._read(start)
        self.height, self.width = first.shape[:2]
        self._first = first
        self._index = start

    def skip_to(self, index: int) -> None:
        """Start the iteration at image ``index`` (call before iterating)."""
        if index > self._index:
            self._index = min(index, self.end)
            self._first = self._read(self._index) if self._index < self.end else None

    def sample(self, count: int) -> list[np.ndarray]:
        """Up to ``count`` images spread over the range."""
        return [self._read(i) for i in spread_indices(self.start, self.end, count).tolist()]

    def _read(self, index: int) -> np.ndarray:
        try:
            return load_image(self.files[index])
        except OSError as exc:
            raise VideoError(str(exc)) from exc

    @property
    def expected_frames(self) -> int:
        return self.end - self.start

    def __iter__(self):
        if self._index >= self.end:
            return
        frame, self._first = self._first, None
        if frame is None:
            raise RuntimeError("an ImageSequenceReader can be iterated once")
        for index in range(self._index, self.end):
            if index > self._index:
                frame = self._read(index)
            if frame.shape[:2] != (self.height, self.width):
                raise VideoError(f"{self.files[index]} is {frame.shape[1]}x{frame.shape[0]}, the "
                                 f"sequence's first image {self.width}x{self.height}")
            yield index, frame

    def close(self) -> None:
        pass
