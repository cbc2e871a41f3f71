"""Atomic file writes: a crash or Ctrl-C leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import io as _io
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

_mode: int | None = None
_lock = threading.Lock()


def file_mode() -> int:
    """0o666 less the process umask: the mode `open()` would give. mkstemp makes 0600 whatever the umask, which
    would keep every output from colleagues on a shared server. Read once per process (reading the umask means
    setting it, so it is done under a lock, once)."""
    global _mode
    with _lock:
        if _mode is None:
            mask = os.umask(0o077)
            os.umask(mask)
            _mode = 0o666 & ~mask
    return _mode


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[BinaryIO]:
    """A file to write `path` through, a piece at a time (nothing has to fit in memory): a temp file beside it,
    synced and renamed over `path` when the block ends, removed if the block fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # not on Windows before Python 3.13
            os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename is None:
            error.filename = str(path)  # write() and fsync() do not say which file they failed on
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_output(path) as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    buffer = _io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    buffer = _io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())
