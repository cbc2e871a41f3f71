"""Shared fixtures: real media from ../shared/data (skipped when absent) and clips the tests make."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def pyfeat_samples() -> Path:
    folder = SHARED_DATA / "pyfeat-samples"
    if not folder.is_dir():
        pytest.skip("../shared/data/pyfeat-samples is not present")
    return folder


@pytest.fixture(scope="session")
def ravdess_dir() -> Path:
    folder = SHARED_DATA / "ravdess-actor05"
    if not folder.is_dir():
        pytest.skip("../shared/data/ravdess-actor05 is not present")
    return folder


sys.path.insert(0, str(Path(__file__).parent))  # tests import their media helpers


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and lose a lot when another process holds a core."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
