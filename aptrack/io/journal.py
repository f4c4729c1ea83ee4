"""What makes a long run resumable: its saved state and results, and a clean stop on a signal.

Every run with an output folder keeps a journal in ``<out>/.<stem>.resume/``:
every ``checkpoint_every`` frames (and when SIGINT or SIGTERM stops it) it
saves, through :mod:`aptrack.core.statefile` (atomic, checksummed, no pickle):

* ``chunk-NNNNNN.bin``: the frames' results released since the last
  checkpoint (what the writers were given: tracked animals, and the raw
  keypoints under smoothing);
* ``state-NNNNNN.bin``: the state of the frame loop after the frame it was
  saved at (tracker tables, Kalman states, lost buffer and id counter, gap
  filler, smoothing filters, cadence), the list of chunks with their sha256,
  and the run's :func:`run_fingerprint`.

The chunk is written before the state that names it, and the two newest
states are kept, so an interruption at any point (between the two writes
too) leaves a good state: a damaged newest one (cut short by a power cut) is
passed over for the one before. ``aptrack run --resume`` loads the newest good
state, replays the saved results into fresh outputs (re-reading the frames
for the annotated video) and goes on from the next frame, so the outputs
are the ones an uninterrupted run writes. A finished run deletes its journal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import signal
import threading
from pathlib import Path
from typing import Iterator

from aptrack import __version__
from aptrack.core.errors import ConfigError, OutputError
from aptrack.core.instances import Instances
from aptrack.core.statefile import StateFileError, decode, encode, read_state, write_durably, write_state
from aptrack.io.exports import output_names

log = logging.getLogger(__name__)

JOURNAL_VERSION = 1
CHECKPOINT_EVERY = 300
"""Frames between two saved states of a run (``--checkpoint-every``)."""
HEAD_TAIL_BYTES = 1 << 20
"""How much of each end of a video goes into its fingerprint's sha256 (with its size and mtime)."""


def journal_folder(out_dir: Path, stem: str) -> Path:
    """Where the journal of the input named ``stem`` lives."""
    return Path(out_dir) / f".{stem}.resume"


def run_is_finished(out_dir: Path, stem: str, exports: tuple[str, ...]) -> bool:
    """Whether the run of the input named ``stem`` into ``out_dir`` is done: every output of
    ``exports`` is there under its final name, and no saved partial run."""
    folder = journal_folder(out_dir, stem)
    if folder.exists() and any(folder.glob("state-*.bin")):
        return False
    return all((Path(out_dir) / name).is_file() for name in output_names(exports, stem))


def input_identity(path: Path, images: tuple[Path, ...] = ()) -> dict:
    """Size, modification time and a sha256 of an input: a video's first and last MiB, or an image
    sequence's names, sizes and times, so that a changed input is noticed without reading it all."""
    digest = hashlib.sha256()
    if images:
        for p in images:
            st = p.stat()
            digest.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return {"path": str(Path(path).resolve()), "images": len(images), "sha256": digest.hexdigest()}
    st = Path(path).stat()
    with open(path, "rb") as fh:
        digest.update(fh.read(HEAD_TAIL_BYTES))
        if st.st_size > HEAD_TAIL_BYTES:
            fh.seek(max(HEAD_TAIL_BYTES, st.st_size - HEAD_TAIL_BYTES))
            digest.update(fh.read())
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "sha256": digest.hexdigest()}


def run_fingerprint(identity: dict, config, models: dict, options: dict) -> dict:
    """What a saved run must share with the run that resumes it: the input's :func:`input_identity`,
    the pipeline config (every field), the models' files and sha256, the options that change the
    outputs, and aptrack's version."""
    return {"aptrack_version": __version__, "input": identity,
            "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config,
            "models": models, "options": options}


def _flat(tree, prefix: str = "") -> dict[str, object]:
    if isinstance(tree, dict):
        out: dict[str, object] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): tree}


def differences(saved: dict, now: dict, limit: int = 3) -> list[str]:
    """``key: saved -> now`` for the first ``limit`` keys where two fingerprints differ."""
    a, b = _flat(_plain(saved)), _flat(_plain(now))
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return [f"{k}: {a.get(k)!r:.40} -> {b.get(k)!r:.40}" for k in keys[:limit]] + (
        [f"and {len(keys) - limit} more"] if len(keys) > limit else [])


def _plain(tree):
    """Tuples as lists and other values (paths) as text, so that a fingerprint can be saved and
    compares equal to itself read back from a state file."""
    if isinstance(tree, dict):
        return {str(k): _plain(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_plain(v) for v in tree]
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    return str(tree)


@dataclasses.dataclass(frozen=True)
class SavedRun:
    """A journal's newest good state: ``state`` (what the frame loop saved), ``seq`` (its number),
    and the chunks of results it names."""

    folder: Path
    seq: int
    state: dict
    chunks: tuple[tuple[str, str, int], ...]

    @property
    def frames_saved(self) -> int:
        """Frames whose results are in the chunks."""
        return sum(n for _, _, n in self.chunks)

    def results(self) -> Iterator[tuple[Instances, object]]:
        """The saved frames' ``(tracked, raw keypoints or None)``, in order, one chunk in memory at a time."""
        for name, sha, _ in self.chunks:
            data = (self.folder / name).read_bytes()
            if hashlib.sha256(data).hexdigest() != sha:
                raise OutputError(f"{self.folder / name} changed while the run resumed")
            for tracked, raw in read_chunk(data):
                yield tracked, raw


def read_chunk(data: bytes) -> list:
    """The ``(tracked, raw keypoints or None)`` pairs of one chunk's bytes."""
    return decode(data)["frames"]


class RunJournal:
    """The journal of one input's run (see the module docstring).

    Parameters
    ----------
    folder : Path
        :func:`journal_folder` of the output folder and input.
    fingerprint : dict
        :func:`run_fingerprint` of this run.
    """

    def __init__(self, folder: Path, fingerprint: dict):
        self.folder = Path(folder)
        self.fingerprint = _plain(fingerprint)
        self.seq = 0
        self._chunks: list[tuple[str, str, int]] = []
        self._pending: list = []

    def states(self) -> list[Path]:
        """The saved states, newest first."""
        return sorted(self.folder.glob("state-*.bin"), reverse=True)

    def discard(self) -> None:
        """Delete the journal (a finished run, or a fresh start)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def load(self) -> SavedRun | None:
        """The newest good saved state, to resume from; None when there is none (nothing was saved,
        or every state is damaged: the run then starts from its first frame).

        Raises
        ------
        ConfigError
            When the saved run had another input, config, models or options.
        """
        for path in self.states():
            try:
                tree = read_state(path)
                chunks = tuple((str(n), str(s), int(c)) for n, s, c in tree["chunks"])
                for name, sha, _ in chunks:
                    if hashlib.sha256((self.folder / name).read_bytes()).hexdigest() != sha:
                        raise StateFileError(f"its results {name} do not match their checksum")
                saved_print, seq, state = tree["fingerprint"], int(tree["seq"]), tree["state"]
                if not isinstance(state, dict) or not isinstance(saved_print, dict):
                    raise StateFileError("not a run's saved state")
            except (StateFileError, OSError, KeyError, TypeError, ValueError) as exc:
                log.warning("saved state %s is damaged (%s): trying the one before", path.name, exc)
                continue
            if _plain(saved_print) != self.fingerprint:
                raise ConfigError(f"cannot resume from {self.folder}: the saved run differs ("
                                  + "; ".join(differences(saved_print, self.fingerprint))
                                  + "); run without --resume to start afresh")
            self.seq, self._chunks = seq, list(chunks)
            self._drop_others(keep={path.name, *(name for name, _, _ in chunks)})
            return SavedRun(self.folder, seq, state, chunks)
        if self.folder.exists():
            log.warning("no saved state in %s could be read: starting from the first frame", self.folder)
        return None

    def record(self, tracked: Instances, raw: Instances) -> None:
        """One frame's results as the writers get them (``raw``: before smoothing, ``tracked`` itself when off)."""
        self._pending.append((tracked, None if raw is tracked else raw.keypoints))

    def checkpoint(self, state: dict) -> None:
        """Save the results recorded since the last checkpoint, then ``state`` (the frame loop's, after
        the frames those results came from), each atomically; keep the newest two states."""
        self.folder.mkdir(parents=True, exist_ok=True)
        seq = self.seq + 1
        chunk = f"chunk-{seq:06d}.bin"
        data = encode({"frames": self._pending})
        write_durably(self.folder / chunk, data)
        chunks = [*self._chunks, (chunk, hashlib.sha256(data).hexdigest(), len(self._pending))]
        self.write_state(seq, {"journal": JOURNAL_VERSION, "seq": seq, "fingerprint": self.fingerprint,
                               "chunks": chunks, "state": state})
        self.seq, self._chunks, self._pending = seq, chunks, []
        for old in self.states()[2:]:
            old.unlink(missing_ok=True)

    def write_state(self, seq: int, tree: dict) -> None:
        """The second write of a checkpoint (its own method, so tests can interrupt between the two)."""
        write_state(self.folder / f"state-{seq:06d}.bin", tree)

    def _drop_others(self, keep: set[str]) -> None:
        """Delete what a resumed run will write again: states and chunks after the one it resumes from."""
        for path in self.folder.iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)


class DeferredStop:
    """While active (a ``with`` block in the main thread), SIGINT and SIGTERM wait for the frame loop:
    it checks :attr:`requested` after each frame, saves its state and calls :meth:`stop_now`, which
    hands the signal to the handler that was there before (Ctrl-C's KeyboardInterrupt, the CLI's
    exit on SIGTERM). A second signal acts at once. Signals that were ignored stay ignored.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> "DeferredStop":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                if signal.getsignal(sig) not in (signal.SIG_IGN, None):
                    self._previous[sig] = signal.signal(sig, self._note)
        return self

    def _note(self, signum, frame) -> None:
        if self.requested is not None:
            self.stop_now(signum)
        self.requested = signum
        log.info("signal %d: stopping after this frame", signum)

    def stop_now(self, signum: int | None = None) -> None:
        """Restore the previous handlers and deliver the signal to them."""
        signum = self.requested if signum is None else signum
        self._restore()
        if signum is not None:
            signal.raise_signal(signum)

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __exit__(self, *exc) -> None:
        self._restore()
