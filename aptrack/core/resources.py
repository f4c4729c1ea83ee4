"""Where aptrack's data files are.

Pipelines, keypoint layouts and mappings, model presets, training configs, the
weight registry and the default pose weights are data, not code. A source
checkout keeps them in its top-level ``pipelines/``, ``configs/`` and
``weights/`` folders, the copies users read and edit. Building the package
(``pip install .``, or a wheel) copies the same files into
``aptrack/resources/``, so an installed aptrack finds them without the
checkout; there is one hand-maintained copy.
"""

from __future__ import annotations

from pathlib import Path

from aptrack.core.errors import ConfigError

PACKAGE_DATA = Path(__file__).resolve().parent.parent / "resources"
"""Filled by the build (see ``setup.py``); absent in a source checkout."""

CHECKOUT = Path(__file__).resolve().parents[2]

KINDS = {
    "pipelines": ("pipelines", "pipeline preset"),
    "layouts": ("configs/layouts", "keypoint layout"),
    "mappings": ("configs/mappings", "keypoint mapping"),
    "models": ("configs/models", "model"),
    "train": ("configs/train", "training config"),
    "weights": ("weights", "weights file"),
}
"""Each kind of resource: its folder relative to the resource root, and what one is called."""


def root() -> Path:
    """The folder holding ``pipelines/``, ``configs/`` and ``weights/``.

    Raises
    ------
    ConfigError
        If neither an installed package's data nor a source checkout is there.
    """
    if (PACKAGE_DATA / "pipelines").is_dir():
        return PACKAGE_DATA
    if (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "pipelines").is_dir():
        return CHECKOUT
    raise ConfigError(f"aptrack's data files are missing: neither {PACKAGE_DATA} nor a source "
                      f"checkout at {CHECKOUT}; reinstall aptrack")


def folder(kind: str) -> Path:
    """The folder of one kind of resource (a key of :data:`KINDS`)."""
    return root() / KINDS[kind][0]


def names(kind: str, suffix: str = ".yaml") -> list[str]:
    """Sorted names (file stems) of the resources of ``kind``."""
    return sorted(p.stem for p in folder(kind).glob(f"*{suffix}"))


def find(kind: str, name_or_path: str | Path, suffix: str = ".yaml") -> Path:
    """A resource by name (``folder(kind)/NAME.yaml``) or a file path (anything with a suffix).

    Raises
    ------
    ConfigError
        If a name is not among the resources of ``kind``.
    """
    path = Path(name_or_path)
    if path.suffix:
        return path
    path = folder(kind) / f"{name_or_path}{suffix}"
    if not path.is_file():
        raise ConfigError(f"unknown {KINDS[kind][1]} '{name_or_path}'; "
                          f"available: {', '.join(names(kind, suffix)) or 'none'}")
    return path
