"""aptrack: track animals and their poses in video.

Stages pass one dataclass, :class:`~aptrack.core.instances.Instances`:
detector (Ultralytics YOLO) -> top-down pose estimator -> tracker.

>>> import aptrack
>>> for animals in aptrack.process_video("dog.mp4"):           # doctest: +SKIP
...     print(animals.frame_index, animals.track_ids)

The package's parts, bottom up: ``core`` (Instances, boxes, layouts, OKS,
errors, resources, weights), ``models`` (presets and networks), ``pose``,
``detect``, ``track``, ``io``, then :mod:`aptrack.pipeline` and
:mod:`aptrack.runner`, then ``data``, ``eval``, ``train`` and ``cli``.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "Instances": "aptrack.core.instances",
    "process_video": "aptrack.runner",
    "iter_frames": "aptrack.runner",
    "Pipeline": "aptrack.pipeline",
    "build_pipeline": "aptrack.pipeline",
    "load_pipeline": "aptrack.pipeline",
    "create_model": "aptrack.models",
    "list_models": "aptrack.models",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    """Import the public names on first use, so ``import aptrack`` stays light."""
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'aptrack' has no attribute {name!r}")
