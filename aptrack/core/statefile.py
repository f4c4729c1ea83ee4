"""Saved state of a running job: a safe, self-checking file of nested values and arrays.

A resumable run (:mod:`aptrack.io.journal`) saves the tracker's tables, the
filters' states and the results so far. The file holds plain data only, so
reading one can never run code (unlike a pickle), and it carries a sha256
of its content, so a file cut short by a power cut or changed on disk is
refused rather than read as garbage.

Layout: ``MAGIC``, the header's length (8 bytes, little-endian), the header
(JSON: the tree of values, with each array as a reference into the body),
the body (the arrays' bytes, one after the other), then the sha256 of
everything before it (32 bytes).

The tree may hold ``None``, booleans, ints, floats (exactly, NaN included),
strings, lists, tuples, dicts (keys of those scalar types), NumPy arrays and
scalars of numeric or boolean dtype, and :class:`~aptrack.core.instances.Instances`
(an object met twice is stored once and read back as one object).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np

from aptrack.core.errors import OutputError
from aptrack.core.instances import _ARRAY_FIELDS, Instances

MAGIC = b"APTRACK-STATE-1\n"
_DIGEST = 32
_KINDS = "biufc"  # numeric and boolean dtypes; no object arrays (they would need a pickle)


class StateFileError(ValueError):
    """A state file that is not one, was cut short, or does not match its checksum."""


def encode(tree) -> bytes:
    """The bytes of a state file holding ``tree`` (see the module's docstring for what it may hold)."""
    body: list[bytes] = []
    offset = 0
    seen: dict[int, int] = {}
    kept: list = []  # objects already stored, kept alive so that their ids stay theirs

    def array(a: np.ndarray) -> dict:
        nonlocal offset
        if a.dtype.kind not in _KINDS:
            raise TypeError(f"a state file holds numeric arrays only, not dtype {a.dtype}")
        data = np.ascontiguousarray(a).tobytes()
        ref = {"dtype": a.dtype.str, "shape": list(a.shape), "at": offset, "n": len(data)}
        body.append(data)
        offset += len(data)
        return ref

    def node(value):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return {"int": str(value)} if abs(value) >= 2 ** 53 else value
        if isinstance(value, float):
            return value if np.isfinite(value) else {"float": repr(value)}
        if isinstance(value, np.ndarray):
            return {"array": array(value)}
        if isinstance(value, np.generic):
            return {"scalar": array(np.asarray(value))}
        if isinstance(value, (list, tuple)):
            items = [node(v) for v in value]
            return items if isinstance(value, list) else {"tuple": items}
        if isinstance(value, dict):
            return {"dict": [[node(k), node(v)] for k, v in value.items()]}
        if isinstance(value, Instances):
            if id(value) in seen:
                return {"ref": seen[id(value)]}
            seen[id(value)] = len(seen)
            kept.append(value)
            fields = {name: node(getattr(value, name)) for name in _ARRAY_FIELDS if name != "categories"}
            fields["categories"] = [str(c) for c in value.categories]
            return {"instances": fields, "frame_index": value.frame_index, "id": seen[id(value)]}
        raise TypeError(f"a state file cannot hold a {type(value).__name__}")

    header = json.dumps(node(tree), separators=(",", ":")).encode("utf-8")
    content = MAGIC + struct.pack("<Q", len(header)) + header + b"".join(body)
    return content + hashlib.sha256(content).digest()


def decode(data: bytes):
    """The tree of a state file's bytes (arrays come back writable, as copies).

    Raises
    ------
    StateFileError
        If ``data`` is not a whole, unchanged state file.
    """
    if len(data) < len(MAGIC) + 8 + _DIGEST or not data.startswith(MAGIC):
        raise StateFileError("not an aptrack state file (or cut short)")
    content, digest = data[:-_DIGEST], data[-_DIGEST:]
    if hashlib.sha256(content).digest() != digest:
        raise StateFileError("checksum mismatch: the file was cut short or changed")
    (length,) = struct.unpack("<Q", content[len(MAGIC):len(MAGIC) + 8])
    start = len(MAGIC) + 8
    try:
        header = json.loads(content[start:start + length])
    except (ValueError, RecursionError) as exc:
        raise StateFileError(f"unreadable header ({exc})") from None
    body = memoryview(content)[start + length:]
    objects: dict[int, Instances] = {}

    def array(ref: dict) -> np.ndarray:
        dtype = np.dtype(ref["dtype"])
        if dtype.kind not in _KINDS:
            raise StateFileError(f"dtype {dtype} is not allowed in a state file")
        at, n = int(ref["at"]), int(ref["n"])
        if at < 0 or at + n > len(body):
            raise StateFileError("an array lies outside the file")
        return np.frombuffer(body[at:at + n], dtype=dtype).reshape(ref["shape"]).copy()

    def value(node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [value(v) for v in node]
        if not isinstance(node, dict) or not node:
            raise StateFileError(f"unexpected node {node!r:.60}")
        if "int" in node:
            return int(node["int"])
        if "float" in node:
            return float(node["float"])
        if "array" in node:
            return array(node["array"])
        if "scalar" in node:
            return array(node["scalar"])[()]
        if "tuple" in node:
            return tuple(value(v) for v in node["tuple"])
        if "dict" in node:
            return {value(k): value(v) for k, v in node["dict"]}
        if "ref" in node:
            return objects[int(node["ref"])]
        if "instances" in node:
            fields = {k: value(v) for k, v in node["instances"].items()}
            out = Instances(frame_index=int(node["frame_index"]), **fields)
            objects[int(node["id"])] = out
            return out
        raise StateFileError(f"unexpected node {sorted(node)}")

    try:
        return value(header)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ArithmeticError, RecursionError) as exc:
        if isinstance(exc, StateFileError):
            raise
        raise StateFileError(f"malformed content ({type(exc).__name__}: {exc})") from None


def write_state(path: Path, tree) -> None:
    """Write ``tree`` to ``path`` as a state file, atomically and durably (:func:`write_durably`)."""
    write_durably(path, encode(tree))


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file flushed to the disk, renamed into place,
    then the folder flushed, so that a power cut leaves the old file or the new one, never half of one.

    Raises
    ------
    OutputError
        If the file cannot be written (nothing is left under the temporary name).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.incomplete")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _sync_folder(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot save the run's state to {path}: {exc.strerror or exc}") from None


def read_state(path: Path):
    """The tree saved in ``path``; raises :class:`StateFileError` for a damaged file, OSError when unreadable."""
    return decode(Path(path).read_bytes())


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename) to the disk, where the system allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not flush folders; the rename is still atomic
    finally:
        os.close(fd)
