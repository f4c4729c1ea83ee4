"""Where ``aptrack bench`` finds its clips when no ``--data`` is given.

In order:

1. ``$APTRACK_DATA``: an APTv2 folder (either layout) or one annotation json;
2. ``CACHE/data/aptv2``: a real APTv2 copy placed in aptrack's cache folder;
3. ``CACHE/data/aptv2_synth``: the synthetic APTv2 set, once built;
4. otherwise, when the offline mirror (``$APTRACK_MIRROR``) holds the
   Animal-Pose images, the synthetic set is to be built there, once
   (:func:`build_synthetic_clips`).

``CACHE`` is :func:`aptrack.core.hub.cache_root`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aptrack.core import hub
from aptrack.core.errors import DatasetError, OutputError

APTV2_URL = "https://github.com/ViTAE-Transformer/APTv2"
SYNTH_CLIPS = 40
"""Clips of the synthetic set bench builds (alternately easy and hard), as ``make synth``."""
SYNTH_SEED = 0


@dataclass(frozen=True)
class ClipSource:
    """Where the clips are (``path``), or, with ``build_from`` set, the Animal-Pose
    folder to build the synthetic set from into ``path``."""

    path: Path
    origin: str  # "APTRACK_DATA", "cache", "synthetic (cache)" or "to build"
    build_from: Path | None = None


def find_clip_data() -> ClipSource:
    """The clips ``aptrack bench`` uses without ``--data`` (see the module docstring).

    Raises
    ------
    DatasetError
        When ``$APTRACK_DATA`` names a missing path, or nothing is found and
        there is no Animal-Pose mirror to build from: the message says how to
        get APTv2 or build the synthetic set.
    """
    env = os.environ.get("APTRACK_DATA")
    if env:
        path = Path(env).expanduser()
        if not path.exists():
            raise DatasetError(f"APTRACK_DATA={env} does not exist")
        return ClipSource(path, "APTRACK_DATA")
    data = hub.cache_root() / "data"
    if (data / "aptv2").exists():
        return ClipSource(data / "aptv2", "cache")
    synth = data / "aptv2_synth"
    if (synth / "test_annotations.json").is_file():
        return ClipSource(synth, "synthetic (cache)")
    mirror = hub.mirror_root()
    source = mirror / "animalpose" if mirror is not None else None
    if source is not None and (source / "keypoints.json").is_file():
        return ClipSource(synth, "to build", build_from=source)
    raise DatasetError(
        f"no APTv2 clips found: get APTv2 ({APTV2_URL}) and pass --data DIR or set APTRACK_DATA, "
        f"or build the synthetic set with 'aptrack synth --source ANIMALPOSE_DIR --out DIR' "
        f"(or set APTRACK_MIRROR to a folder holding animalpose/)")


def build_synthetic_clips(source: ClipSource, progress=None) -> dict:
    """Build the synthetic APTv2 set of ``source`` into ``source.path``, atomically.

    It is written into a temporary folder beside ``source.path`` and renamed
    when complete, so an interrupted build leaves nothing under the final name.
    Returns :func:`aptrack.data.synth.synthesize`'s summary.
    """
    from aptrack.core.layout import load_layout
    from aptrack.data.datasets import load_keypoint_dataset
    from aptrack.data.synth import synthesize

    assert source.build_from is not None
    animals = load_keypoint_dataset(source.build_from / "keypoints.json", source.build_from / "images",
                                    load_layout("ap10k"))
    try:
        source.path.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{source.path.name}.", dir=source.path.parent))
    except OSError as exc:
        raise OutputError(f"cannot write to {source.path.parent}: {exc.strerror or exc}") from None
    try:
        summary = synthesize(animals, work, SYNTH_CLIPS, SYNTH_SEED, progress=progress)
        for split in summary["files"]:
            summary["files"][split] = str(source.path / Path(summary["files"][split]).name)
        os.replace(work, source.path)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return summary
