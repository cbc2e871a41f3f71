"""File locks with fcntl.flock: the OS releases a lock when its process dies, so a killed run never leaves a lock
that blocks the next one (the lock file stays; it is only a name to lock)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from .errors import ViperError

FOLDER_LOCK = ".lock"


@contextlib.contextmanager
def locked(path: Path, operation: int = fcntl.LOCK_EX):
    """Hold an flock on `path` (created if needed), waiting for it; on a read-only folder, go on without it."""
    try:
        handle = open(path, "a")  # noqa: SIM115 - closed below
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, operation)
        yield


@contextlib.contextmanager
def folder_in_use(folder: Path, job: str):
    """Hold FOLDER/.lock for the whole of a job that must be alone in the folder (a training run): a second one is
    refused at once, naming the folder and the process that holds it, rather than mixing two runs' files."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / FOLDER_LOCK, "a+")  # noqa: SIM115 - closed below
    except OSError as error:
        raise ViperError(f"{folder}: cannot be used as a folder ({error.strerror or error})") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            by = f" (process {holder})" if holder.isdigit() else ""
            raise ViperError(
                f"{folder}: another {job} is using this folder{by}; wait for it to finish, or use another folder"
            ) from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        yield
