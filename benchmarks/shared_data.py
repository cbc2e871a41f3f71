"""Where the benchmarks find their data on any clone.

../shared (data and reference models) sits beside the repository on the project's machines only. The 60 RAVDESS
takes of actor 05 ship inside the package (viper/demo_data), so a benchmark on them runs anywhere; one that reads a
file only ../shared holds says so in one line, naming the file and why nothing bundled stands in, and exits with
code 2 (as tests/conftest.py's `needs_shared` skips a test).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared(relative: str) -> Path:
    """../shared/`relative`, whether it exists or not (for what a benchmark reads when it is there)."""
    return SHARED / relative


def needs(relative: str, why: str) -> Path:
    """../shared/`relative` where it exists; otherwise one line naming it and why, and exit code 2."""
    path = shared(relative)
    if not path.exists():
        stop(f"needs ../shared/{relative}, absent here: {why}")
    return path


def needs_package(module: str, why: str, install: str | None = None) -> None:
    """Exit with one line (code 2) unless the Python package `module` is importable here."""
    if importlib.util.find_spec(module) is None:
        stop(f"needs the Python package {module} (pip install {install or module}), absent here: {why}")


def stop(reason: str) -> None:
    """The one line a benchmark ends with when this machine lacks what it measures, prefixed with its name."""
    print(f"{Path(sys.argv[0]).name}: {reason}", file=sys.stderr)
    raise SystemExit(2)


def ravdess_takes() -> Path:
    """The folder of the 60 face-crop takes of RAVDESS actor 05: ../shared/data/ravdess-actor05/clips where it is,
    else the same 60 files bundled inside the package (viper.jobs.demo.demo_clips)."""
    folder = shared("data/ravdess-actor05/clips")
    if folder.is_dir():
        return folder
    from viper.jobs.demo import demo_clips

    return demo_clips()
