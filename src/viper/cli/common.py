"""What every command shares: the wrapper that turns a user's problem into one message instead of a traceback, and
small option helpers."""

from __future__ import annotations

import functools
import os
import signal

import typer

from ..errors import SettingError, ViperError
from ..filenames import printable

# The libraries of the [train] extra a command may find missing (top-level module -> what users call it)
EXTRA_LIBRARIES = {"torch": "PyTorch", "transformers": "Hugging Face Transformers"}

RUNTIME_HELP = ("onnx or torch: what runs the networks (the same features either way); default: onnx on the CPU where "
                "onnxruntime is installed, torch otherwise.")


def missing_library(command: str, error: ModuleNotFoundError) -> str | None:
    """The one line for a command that needs a library of the [train] extra this install lacks (None for any other
    missing module): the module is named as Python reports it."""
    name = error.name or ""
    library = EXTRA_LIBRARIES.get(name.partition(".")[0])
    if library is None:
        return None
    return f'viper {command} needs {library} ({name}), which this install lacks: pip install "viper-emotion[train]"'


def friendly(command):
    """Show a ViperError as `error: ...` with exit code 2, and a missing PyTorch or Transformers as one line with
    exit code 1 (the traceback only with --debug / VIPER_DEBUG=1)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ViperError as error:
            if os.environ.get("VIPER_DEBUG"):
                raise
            text = error.as_flag() if isinstance(error, SettingError) else str(error)
            typer.secho(f"error: {printable(text)}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        except ModuleNotFoundError as error:
            line = missing_library(command.__name__.replace("_", "-"), error)
            if line is None or os.environ.get("VIPER_DEBUG"):
                raise
            typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM where a job turns it into viper.errors.Interrupted
            text = str(stop) or "what was written so far is kept; run the same command to resume"
            typer.secho(f"interrupted: {text}", err=True)
            raise typer.Exit(128 + getattr(stop, "signum", signal.SIGINT)) from None

    return wrapper


def given(context: typer.Context, name: str) -> bool:
    """Whether the user set this option (rather than typer filling in its default)."""
    source = context.get_parameter_source(name)  # compared by name: typer may bring its own click enum
    return source is not None and source.name != "DEFAULT"


def split_list(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None
