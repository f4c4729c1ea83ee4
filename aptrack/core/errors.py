"""User-facing errors, and writes that never leave a half-written file.

Anything a user can cause (a missing file, a bad video, corrupt weights, a
malformed config) raises a subclass of :class:`AptrackError`. The CLI prints
its message as one line and exits with a non-zero status; nothing else should
reach the user as a traceback.

Every output file is written under a temporary name and renamed into place
(:func:`write_atomic`), so a file under its final name is always complete.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


class AptrackError(Exception):
    """An error the user can fix; its message is one self-contained line."""

    exit_code = 2


class ConfigError(AptrackError):
    """A pipeline preset, layout or registry file is missing or malformed."""


class VideoError(AptrackError):
    """The input video is missing, unreadable, truncated or empty."""


class OutputError(AptrackError):
    """The output folder or file cannot be written."""


class WeightsError(AptrackError):
    """Model weights are missing, corrupt or of the wrong kind."""


class DatasetError(AptrackError):
    """A keypoint dataset is missing, malformed, or leaves nothing to use."""


MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError)
"""What reading a structure that is not the expected one raises (a missing key, a string for a list...)."""


@contextmanager
def malformed_data(path, what: str = "annotation file"):
    """Inside this block, a file's content of the wrong shape is one :class:`DatasetError` line.

    For loaders that walk a parsed file: a missing key, a value of the wrong
    type or an unparsable number (:data:`MALFORMED`) becomes ``PATH: malformed
    WHAT (the exception)`` instead of a traceback.
    """
    try:
        yield
    except MALFORMED as exc:
        detail = str(exc)[:120]
        raise DatasetError(f"{path}: malformed {what} ({type(exc).__name__}: {detail})") from None


def write_atomic(path: Path, write) -> None:
    """Call ``write(tmp)`` on a temporary name beside ``path``, then rename it into place.

    Raises
    ------
    OutputError
        If the file cannot be written (nothing is left under either name).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.incomplete{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def write_json_atomic(path: Path, data, indent: int | None = None) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary name and a rename."""
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=indent), encoding="utf-8"))


def writable_dir(path: Path) -> Path:
    """Create folder ``path`` if needed and check that a file can be written there.

    Raises
    ------
    OutputError
        If it cannot be created or written (e.g. it lies under a file).
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".aptrack-write-test"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {path}: {exc.strerror or exc}") from None
    return path
