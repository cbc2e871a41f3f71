"""User-facing errors: the CLI prints their message (no traceback) and exits non-zero."""


class ViperError(Exception):
    """An input or setup problem the user can fix; the message names the file and the problem."""


class VideoReadError(ViperError):
    """A file that cannot be read as a video (or has no usable frames)."""


class ModelNotFoundError(ViperError):
    """A model's weights are not available locally."""
