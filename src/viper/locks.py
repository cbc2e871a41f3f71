"""File locks the OS releases when their process dies, so a killed run never leaves a lock that blocks the next one
(the lock file stays; it is only a name to lock). filelock's descriptor lock takes them: flock on Linux and macOS,
LockFileEx on Windows, so viper runs where there is no fcntl. Every lock is exclusive (that lock has no shared
mode); a store's readers hold theirs for milliseconds."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from pathlib import Path
from typing import IO

from .errors import ViperError

log = logging.getLogger(__name__)

FOLDER_LOCK = ".lock"


@contextlib.contextmanager
def locked(path: Path):
    """Hold the lock on `path` (created if needed), waiting for it; on a read-only folder, or a file system that
    cannot lock, go on without it."""
    try:
        handle = open(path, "a")  # noqa: SIM115 - closed below
    except OSError:
        yield
        return
    with handle, _held(handle, blocking=True):
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
    with handle, _held(handle, blocking=False) as held:
        if held is False:
            holder = _holder(handle)
            by = f" (process {holder})" if holder.isdigit() else ""
            raise ViperError(
                f"{folder}: another {job} is using this folder{by}; wait for it to finish, or use another folder"
            )
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        yield


@contextlib.contextmanager
def _held(handle: IO[str], *, blocking: bool):
    """Lock the open file `handle` while the block runs, giving True; False when another process holds it (only
    when not `blocking`), None where the file system cannot lock (a warning says so once, and the work goes on)."""
    from filelock import lock_descriptor, unlock_descriptor

    try:
        held = lock_descriptor(handle.fileno(), blocking=blocking)
    except OSError as error:
        _cannot_lock(error.strerror or str(error))
        held = None
    try:
        yield held
    finally:
        if held:
            unlock_descriptor(handle.fileno())


def _holder(handle: IO[str]) -> str:
    """The process id the holder wrote into the lock file; empty where it cannot be read (Windows forbids reading
    the byte another process has locked)."""
    try:
        handle.seek(0)
        return handle.read().strip()
    except OSError:
        return ""


@functools.cache
def _cannot_lock(reason: str) -> None:
    """One warning per reason: a store or run folder on a file system without locks (some network mounts)."""
    log.warning("file locks are not available here (%s): viper goes on without them, so run one `viper extract` per "
                "store and one `viper train` per run folder at a time", reason)
