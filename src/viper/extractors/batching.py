"""Run one model over the per-frame items of several clips in fixed-size batches, then split rows per clip.

Backends say what an item is (a face crop, an audio fragment) and how a batch becomes rows; this module owns the
bookkeeping every backend would otherwise repeat: skipping absent items, batching across clips, masking.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from .base import Features

Item = TypeVar("Item")

# Metadata of config fields that change speed, not features (batch sizes): identity() should leave them out.
NOT_IN_IDENTITY = {"identity": False}


def batched_features(
    items: Sequence[Sequence[Item | None]],
    embed: Callable[[list[Item]], np.ndarray],
    dim: int,
    batch_size: int,
    sort_key: Callable[[Item], int] | None = None,
    same_key_batches: bool = False,
) -> list[Features]:
    """Features per clip from `embed(batch) -> (len(batch), dim)` run over every item that is not None.

    A row that `embed` returns non-finite (NaN) is masked: that is how a backend says "no usable output here"
    (no face found, a segment too short for the model). `sort_key` groups similar items (audio lengths) so a
    batch pads little; with `same_key_batches` a batch never mixes keys, for models whose output would change
    with padding. The rows always land in their own clip and frame.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    where = [(c, i) for c, clip_items in enumerate(items) for i, item in enumerate(clip_items) if item is not None]
    if same_key_batches and sort_key is None:
        raise ValueError("same_key_batches needs a sort_key")
    if sort_key is not None:
        where.sort(key=lambda ci: sort_key(items[ci[0]][ci[1]]))
    values = [np.zeros((len(clip_items), dim), np.float32) for clip_items in items]
    for chunk in chunks(where, batch_size, [sort_key(items[c][i]) for c, i in where] if same_key_batches else None):
        rows = np.asarray(embed([items[c][i] for c, i in chunk]), dtype=np.float32)
        if rows.shape != (len(chunk), dim):
            raise ValueError(f"embed returned {rows.shape}, expected {(len(chunk), dim)}")
        for (c, i), row in zip(chunk, rows, strict=True):
            values[c][i] = row
    masks = [
        np.array([item is not None for item in clip_items], dtype=bool) & np.isfinite(clip_values).all(axis=1)
        for clip_items, clip_values in zip(items, values, strict=True)
    ]
    return [Features(clip_values, mask) for clip_values, mask in zip(values, masks, strict=True)]


def chosen_rows(choices: Sequence[np.ndarray], table: np.ndarray) -> list[Features]:
    """Features per clip whose row at each frame is `table[i]` for the index i chosen there (a template's sentence
    vector); -1 marks a frame where nothing was chosen, masked."""
    out = []
    for indices in choices:
        mask = indices >= 0
        values = np.zeros((len(indices), table.shape[1]), np.float32)
        values[mask] = table[indices[mask]]
        out.append(Features(values, mask))
    return out


def chunks(where: list, size: int, keys: list | None) -> list[list]:
    """Consecutive runs of at most `size`, cut also wherever the key changes (when keys are given)."""
    out: list[list] = []
    for index, entry in enumerate(where):
        new_key = keys is not None and index > 0 and keys[index] != keys[index - 1]
        if not out or len(out[-1]) == size or new_key:
            out.append([])
        out[-1].append(entry)
    return out
