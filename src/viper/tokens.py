"""A split of the feature store as in-memory arrays: frame tokens of the chosen modalities side by side, masks,
labels. Training, evaluation and prediction all build their tokens with `build_tokens`, so they cannot drift apart.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import ViperError
from .manifest import SPLIT_NAMES
from .manifest import normalise_split as read_split
from .persons import centre_by_person
from .store import FeatureStore

log = logging.getLogger(__name__)
LOAD_CLIPS = 1024  # clips copied out of a modality's packed arrays at once


def normalise_split(name: str) -> str:
    """train / dev / test from any spelling the manifest accepts (Train, devel, Val, ...); others are refused."""
    split = read_split(name)
    if split not in SPLIT_NAMES.values():
        raise ViperError(f"unknown split {name!r}; use train, dev (or devel/val) or test")
    return split


def build_tokens(
    features_by_modality: Mapping[str, Any], order: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame tokens of several modalities, concatenated in `order`.

    Each entry is `(values (..., N, dim), mask (..., N))` or an object with `.values` and `.mask` (an extractor's
    Features). Returns tokens (..., N, Σdim) float32 with zeros where a modality is masked, the frame mask
    (..., N) (any modality valid) and the per-modality masks (..., N, M).
    """
    values, masks = [], []
    for name in order:
        if name not in features_by_modality:
            raise ViperError(f"no {name!r} features to build tokens from (have {', '.join(features_by_modality)})")
        item = features_by_modality[name]
        value, mask = (item.values, item.mask) if hasattr(item, "values") else item
        mask = np.asarray(mask, dtype=bool)
        values.append(np.where(mask[..., None], np.asarray(value, dtype=np.float32), np.float32(0)))
        masks.append(mask)
    modality_masks = np.stack(masks, axis=-1)
    return np.concatenate(values, axis=-1), modality_masks.any(-1), modality_masks


@dataclass
class SplitData:
    """One split in memory: tokens (V, N, Σdim), frame mask (V, N), modality masks (V, N, M), labels (V, E), and
    the person of each clip ("" where unknown)."""

    tokens: np.ndarray
    mask: np.ndarray
    modality_masks: np.ndarray
    labels: np.ndarray | None
    video_ids: list[str]
    emotions: list[str]
    keys: list[str]
    dims: list[int]
    persons: list[str]

    def __len__(self) -> int:
        return len(self.video_ids)


def resolve_keys(store: FeatureStore, modalities: Sequence[str] | None) -> list[str]:
    """Feature keys for modality names or keys; None means every modality in the store (one key each)."""
    if modalities is None:
        modalities = list(dict.fromkeys(store.feature_spec(key).modality for key in store.extractor_keys()))
        if not modalities:
            raise ViperError(f"{store.root}: the store holds no features; run `viper extract` first")
    return [store.key_for(name) for name in modalities]


def split_ids(store: FeatureStore, split: str) -> list[str]:
    """Ids of the clips in a split, in labels.csv order."""
    table = store.labels()
    wanted = normalise_split(split)
    in_split = [read_split(value) == wanted for value in table["split"]]
    return table.loc[in_split, "video_id"].tolist()


def read_labels(store: FeatureStore, video_ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Labels (V, E) float32 of these clips; a missing or non-numeric value is a ViperError naming row and file."""
    import pandas as pd

    table = store.labels()
    emotions = store.emotions()
    if not emotions:
        raise ViperError(f"{store.root / 'labels.csv'}: no emotion columns after video_id, path, split")
    rows = table.set_index("video_id", drop=False).loc[list(video_ids)]
    positions = table.index[table["video_id"].isin(video_ids)]
    line_of = {table.at[i, "video_id"]: i + 2 for i in positions}  # line 1 is the header
    values = rows[emotions].apply(pd.to_numeric, errors="coerce")
    bad = ~np.isfinite(values.astype(float))  # NaN, text and inf (1e400 reads as inf): none trains
    if bad.any().any():
        problems = []
        for video_id, row in bad.iterrows():
            for emotion in row.index[row.to_numpy()]:
                raw = rows.at[video_id, emotion]
                shown = repr(raw) if isinstance(raw, str) else str(float(raw))  # not numpy 2's np.float64(inf)
                what = "is missing" if pd.isna(raw) or str(raw).strip() == "" else f"is {shown}, not a finite number"
                problems.append(f"line {line_of[video_id]} (clip {video_id!r}): {emotion} {what}")
        listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise ViperError(f"{store.root / 'labels.csv'}: bad labels: {listed}")
    outside = [f"{emotion} in [{values[emotion].min():g}, {values[emotion].max():g}]" for emotion in emotions
               if values[emotion].min() < 0 or values[emotion].max() > 1]
    if outside:  # any scale trains (MSE, Pearson), but intensities are usually in [0, 1]: say so, once
        log.warning("%s: labels outside [0, 1]: %s; training on them as they are", store.root / "labels.csv",
                    ", ".join(outside))
    return values.to_numpy(np.float32, copy=True), emotions


def load_split(
    store: FeatureStore, modalities: Sequence[str] | None, split: str, *, labels: bool = True, person_norm: bool = False
) -> SplitData:
    """Tokens, masks and (with `labels`) labels of every clip of a split; modalities are names or keys.

    `person_norm` centres the tokens on each person's mean over this split's clips (`persons.centre_by_person`);
    every clip of the split then needs a person."""
    keys = resolve_keys(store, modalities)
    video_ids = split_ids(store, split)
    if not video_ids:
        raise ViperError(
            f"{store.root}: no clips in the {normalise_split(split)!r} split of labels.csv; training needs a store "
            "extracted from a manifest CSV with a split column and emotion columns (video_id,path,split,<emotions>)"
        )
    dims = [int(store.feature_spec(key).dim) for key in keys]
    tokens, modality_masks = _split_tokens(store, keys, dims, video_ids)
    mask = modality_masks.any(-1)
    label_values, emotions = read_labels(store, video_ids) if labels else (None, store.emotions())
    people = store.persons()
    persons = [people[video_id] for video_id in video_ids]
    if person_norm:
        unknown = [video_id for video_id, person in zip(video_ids, persons, strict=True) if not person]
        if unknown:
            raise ViperError(
                f"{store.root / 'labels.csv'}: per-person normalisation needs the person of every clip; "
                f"{len(unknown)} clip(s) of the {normalise_split(split)!r} split have none (e.g. "
                f"{', '.join(unknown[:5])}); give the manifest a person column, or train without person_norm"
            )
        kept = [store.feature_spec(key).modality == "expression" for key in keys]  # probabilities the anchor reads
        tokens = centre_by_person(tokens, modality_masks, dims, persons, kept)
    return SplitData(tokens, mask, modality_masks, label_values, video_ids, emotions, keys, dims, persons)


def _split_tokens(store: FeatureStore, keys: list[str], dims: list[int],
                  video_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """`build_tokens` of a split's clips, filled into one array a modality and `LOAD_CLIPS` clips at a time: the
    peak is the tokens plus one such slice, not three copies of every modality (loaded, masked, concatenated)."""
    tokens = np.zeros((len(video_ids), store.n_frames, sum(dims)), np.float32)
    modality_masks = np.zeros((len(video_ids), store.n_frames, len(keys)), bool)
    column = 0
    for index, (key, dim) in enumerate(zip(keys, dims, strict=True)):
        for first in range(0, len(video_ids), LOAD_CLIPS):
            rows = slice(first, first + LOAD_CLIPS)
            values, mask = store.load(key, video_ids[rows])
            if values.shape[1:] != (store.n_frames, dim):
                raise ViperError(f"{store.feature_dir(key)}: its features are {values.shape[1:]} (frames, width), but "
                                 f"store.json says ({store.n_frames}, {dim}); extract them again into a new store")
            np.copyto(tokens[rows, :, column : column + dim], values, where=mask[..., None])
            modality_masks[rows, :, index] = mask
        column += dim
    return tokens, modality_masks


def standardisation_stats(data: SplitData) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std over the frames where that feature's modality is valid (train split only)."""
    means, stds = [], []
    start = 0
    for m, dim in enumerate(data.dims):
        part = data.tokens[..., start : start + dim][data.modality_masks[..., m]]  # (valid frames, dim)
        start += dim
        if len(part) == 0:
            means.append(np.zeros(dim, np.float32))
            stds.append(np.ones(dim, np.float32))
            continue
        means.append(part.mean(0, dtype=np.float64).astype(np.float32))
        std = part.std(0, dtype=np.float64).astype(np.float32)
        stds.append(np.where(std > 1e-6, std, np.float32(1)))  # constant features (zero padding) stay as they are
    return np.concatenate(means), np.concatenate(stds)
