"""User-facing errors.

Anything a user can cause (a missing file, a bad video, corrupt weights, a
malformed config) raises a subclass of :class:`AptrackError`. The CLI prints
its message as one line and exits with a non-zero status; nothing else should
reach the user as a traceback.
"""


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
