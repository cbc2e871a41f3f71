"""MediaPipe's C++ code prints start-up warnings straight to file descriptor 2 on its first inferences
("Created TensorFlow Lite XNNPACK delegate", "Feedback manager requires ..."): noise for a user, and no
Python setting turns them off. Until a model has run once, its calls go through `native_stderr_silenced`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def native_stderr_silenced(active: bool = True) -> Iterator[None]:
    """Send fd 2 to /dev/null for the block (Python-level writes are flushed first and go there too)."""
    if not active:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
