"""User-facing errors: the CLI prints their message (no traceback) and exits non-zero."""

import signal


class ViperError(Exception):
    """An input or setup problem the user can fix; the message names the file and the problem."""


class VideoReadError(ViperError):
    """A file that cannot be read as a video (or has no usable frames)."""


class ModelNotFoundError(ViperError):
    """A model's weights, or the optional package a backend needs, are not on this machine; the message says how to
    get them. A package that is installed but broken is a plain ViperError, never this."""


class SettingError(ViperError):
    """A bad value of one setting, worded with the setting's name (`frames must be at least 1`); the CLI shows
    the flag instead (`--frames must be at least 1`)."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting, self.problem = setting, problem
        super().__init__(f"{setting} {problem}")

    def as_flag(self) -> str:
        return f"--{self.setting.replace('_', '-')} {self.problem}"


class Interrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C or SIGTERM (`signum`) after stopping its worker processes; what it finished is kept.
    The message says how far it got; the CLI exits with 128 + signum, as the shell reports a signal."""

    def __init__(self, message: str = "", signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = signum
