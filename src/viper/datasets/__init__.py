"""Dataset layouts: each module reads one dataset's own files into viper's generic manifest table (video_id, path,
split, one column per emotion) and registers that reader here, for `viper extract --dataset NAME` and `viper
dataset NAME ROOT --out CSV`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..registry import Registry

DATASET_LAYOUTS: Registry[Callable[[Path], Any]] = Registry("dataset layout", "viper.datasets")


def write_manifest(table, out: Path) -> int:
    """Write a manifest table as CSV with paths relative to it (empty paths stay empty); returns its rows. A table
    with one id twice is refused: `viper extract` would refuse the manifest anyway, later and less clearly."""
    from ..atomic import atomic_write_text
    from ..errors import ViperError

    repeated = sorted(set(table["video_id"][table["video_id"].duplicated()]))
    if repeated:
        raise ViperError(f"{out}: not written, video_id(s) {', '.join(repeated[:10])} would appear more than once")
    out = Path(out).resolve()
    table = table.copy()
    table["path"] = [os.path.relpath(path, out.parent) if path else "" for path in table["path"]]
    atomic_write_text(out, table.to_csv(index=False))
    return len(table)
