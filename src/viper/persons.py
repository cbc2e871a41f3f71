"""Who is in each clip (the manifest's optional `person` column): splits that share people, per-person centring.

A model trained on some people learns those people: a dev or test split holding people of the train split
measures how well the model knows them, not how it does on someone new, so `viper train` refuses such splits
unless allowed. Centring each person's features on that person's mean takes out what stays constant about them
(face shape, voice, lighting of their recordings) and leaves how they vary from clip to clip.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import ViperError
from .manifest import normalise_split
from .store import FeatureStore

SHOWN = 5  # persons named in a message


def persons_by_split(store: FeatureStore) -> dict[str, set[str]]:
    """The known (non-blank) persons of each split of labels.csv."""
    table = store.labels()
    people = store.persons()
    found: dict[str, set[str]] = {}
    for video_id, split in zip(table["video_id"], table["split"].fillna(""), strict=True):
        if people[video_id]:
            found.setdefault(normalise_split(split), set()).add(people[video_id])
    return found


def shared_persons(
    store: FeatureStore, split: str = "train", others: Sequence[str] = ("dev", "test")
) -> dict[str, list[str]]:
    """For each split of `others` that shares someone with `split`: those persons, sorted."""
    found = persons_by_split(store)
    mine = found.get(split, set())
    return {other: sorted(mine & found[other]) for other in others if mine & found.get(other, set())}


def check_disjoint_persons(store: FeatureStore, *, allow: bool) -> dict[str, list[str]]:
    """The persons dev and test share with train; a ViperError when there are any and `allow` is false. Clips
    without a person are not compared (a store without persons always passes)."""
    shared = shared_persons(store)
    if shared and not allow:
        parts = "; ".join(f"{split} shares {len(names)} person(s) with train ({_first(names)})"
                          for split, names in shared.items())
        raise ViperError(
            f"{store.root / 'labels.csv'}: {parts}. A model scored on people it was trained on shows how well it "
            "knows them, not how it does on someone new: put each person in one split (RAVDESS: `viper dataset "
            "ravdess DIR --split-by actor`), or allow it with --allow-shared-people (allow_shared_people: true in "
            "a TrainConfig file)"
        )
    return shared


def centre_by_person(
    tokens: np.ndarray, modality_masks: np.ndarray, dims: Sequence[int], persons: Sequence[str],
    keep: Sequence[bool] = (),
) -> np.ndarray:
    """Tokens (V, N, Σdim) with each person's mean subtracted, per feature key: the mean over that person's clips'
    frames where the key's modality is valid. Masked frames stay 0, as `build_tokens` leaves them. Keys flagged in
    `keep` are left as they are (the `expression` probabilities, which an anchored model reads as probabilities)."""
    out = np.array(tokens, dtype=np.float32, copy=True)
    persons = np.asarray(persons, dtype=object)
    bounds = np.cumsum([0, *dims])
    for person in sorted(set(persons)):
        clips = np.flatnonzero(persons == person)
        for m in range(len(dims)):
            if m < len(keep) and keep[m]:
                continue
            part = slice(bounds[m], bounds[m + 1])
            valid = modality_masks[clips, :, m]  # (clips, N)
            if valid.any():
                block = out[clips, :, part]  # a copy (fancy index), written back below
                block[valid] -= block[valid].mean(0, dtype=np.float64).astype(np.float32)
                out[clips, :, part] = block
    return out


def _first(names: Sequence[str]) -> str:
    return ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
