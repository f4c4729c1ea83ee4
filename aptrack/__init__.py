"""aptrack: track animals and their poses in video.

Stages pass one dataclass, :class:`~aptrack.structures.Instances`:
detector (Ultralytics YOLO) -> top-down heatmap pose estimator -> tracker.
"""

__version__ = "0.1.0"

from .structures import Instances  # noqa: E402

__all__ = ["Instances", "__version__"]
