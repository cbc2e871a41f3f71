"""A small synthetic feature store whose labels are a learnable function of the tokens (for fusion tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from viper.feature_spec import FeatureSpec
from viper.store import FeatureStore


def make_synthetic_store(
    root: Path,
    modalities: dict[str, tuple[str, int]],  # store key -> (modality, dim)
    emotions: tuple[str, ...],
    *,
    n_clips: int,
    n_frames: int,
    splits: tuple[str, ...] = ("train", "dev", "test"),
) -> FeatureStore:
    """Modalities with per-clip offsets; each label is a squashed linear function of the clip's mean token.

    About 20 % of frames are masked per modality (never the first); clips split 4 : 1 : 1 over `splits`.
    """
    rng = np.random.default_rng(0)
    store = FeatureStore.create(root, n_frames)
    for key, (modality, dim) in modalities.items():
        store.register_feature(FeatureSpec(modality, "test", "1", dim=dim, key=key))
    weights = rng.normal(size=(sum(dim for _, dim in modalities.values()), len(emotions)))
    rows = []
    for index in range(n_clips):
        video_id = f"clip{index:03d}"
        means = []
        for key, (_, dim) in modalities.items():
            values = rng.normal(loc=rng.normal(size=dim), size=(n_frames, dim)).astype(np.float32)
            mask = rng.random(n_frames) > 0.2
            mask[0] = True
            values[~mask] = 0
            store.write(key, video_id, values, mask)
            means.append(values[mask].mean(0))
        labels = 1 / (1 + np.exp(-np.concatenate(means) @ weights / 2))
        bucket = 0 if index < n_clips * 2 // 3 else 1 if index < n_clips * 5 // 6 else 2
        split = splits[min(bucket, len(splits) - 1)]
        rows.append({"video_id": video_id, "path": f"{video_id}.mp4", "split": split,
                     **dict(zip(emotions, labels, strict=True))})
    store.write_labels(pd.DataFrame(rows))
    return store
