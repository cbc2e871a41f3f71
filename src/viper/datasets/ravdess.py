"""RAVDESS: labels are encoded in file names; one column per emotion with an intensity target.

File name: modality-channel-emotion-intensity-statement-repetition-actor, e.g. 01-01-06-02-01-02-05.mp4
(modality 01 audio-video, 02 video-only, 03 audio-only; channel 01 speech, 02 song). Targets: the portrayed
emotion gets 1.0 at strong intensity and 0.5 at normal intensity, every other emotion 0.0. `person` is the actor
number (`05`).

Two splits. By statement (the default): statement 01 ("Kids are talking by the door") trains, statement 02 ("Dogs
are sitting by the door") tests, so the two near-identical repetitions of a take never straddle train and test;
every actor is on both sides, so `viper train` needs `--allow-shared-people` (the only split one actor allows).
By actor (several actors): whole actors go to one split, in actor-number order: the highest-numbered sixth
(at least one) tests, the sixth below it (at least one, from three actors on) is dev, the rest trains. With the
24 RAVDESS actors: 01-16 train, 17-20 dev, 21-24 test; consecutive numbers alternate male (odd) and female (even),
so each split holds as many men as women.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from ..errors import SettingError, ViperError
from ..filenames import safe_name, unique_names
from . import DATASET_LAYOUTS, write_manifest

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
INTENSITY_TARGET = {"01": 0.5, "02": 1.0}
MODALITIES = {"01": "audio-video", "02": "video-only", "03": "audio-only"}
NAME = re.compile(r"^(0[1-3])-(0[12])-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d{2})$")
SUFFIXES = (".mp4", ".wav", ".avi", ".mov", ".mkv")
SPLITS_BY = ("statement", "actor")


def parse_name(stem: str) -> dict[str, str] | None:
    """The seven codes of a RAVDESS file name, or None if the name does not follow the scheme."""
    match = NAME.match(stem)
    if not match:
        return None
    modality, channel, emotion, intensity, statement, repetition, actor = match.groups()
    return {
        "modality": MODALITIES[modality],
        "channel": "speech" if channel == "01" else "song",
        "emotion": EMOTIONS[int(emotion) - 1],
        "intensity": intensity,
        "statement": statement,
        "repetition": repetition,
        "actor": actor,
    }


def ravdess_manifest(folder: Path, test_statement: str = "02", split_by: str = "statement"):
    """A generic manifest (video_id, path, split, person, one column per emotion) for every RAVDESS file under
    folder; `split_by` is statement or actor (see the module's docstring)."""
    import pandas as pd

    if split_by not in SPLITS_BY:
        raise SettingError("split_by", f"must be statement or actor, got {split_by!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise ViperError(f"{folder}: not a folder")
    # files only: a folder named like a take would become a row whose path is no file, and the manifest refused
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES and parse_name(p.stem))
    if not files:
        raise ViperError(f"{folder}: no RAVDESS files (names like 01-01-06-02-01-02-05.mp4) found")
    stems = [p.stem for p in files]
    counts = Counter(stems)
    actors = sorted({parse_name(p.stem)["actor"] for p in files})
    split_of_actor = actor_splits(actors, folder) if split_by == "actor" else {}
    # the same take can exist twice (e.g. full frame and face crop): its folder's name keeps the ids apart, and a
    # hash of the relative path where even that is shared (two folders of one name, an .mp4 beside a .wav)
    relative = [path.relative_to(folder) for path in files]
    ids = [stem if counts[stem] == 1 else safe_name(f"{stem}_{where.parent.name or 'root'}")
           for stem, where in zip(stems, relative, strict=True)]
    rows = []
    for path, video_id in zip(files, unique_names(ids, [str(where) for where in relative]), strict=True):
        codes = parse_name(path.stem)
        by_statement = "test" if codes["statement"] == test_statement else "train"
        split = split_of_actor.get(codes["actor"], by_statement)
        row = {"video_id": video_id, "path": str(path.resolve()), "split": split, "person": codes["actor"]}
        row |= {emotion: 0.0 for emotion in EMOTIONS}
        row[codes["emotion"]] = INTENSITY_TARGET[codes["intensity"]]
        rows.append(row)
    return pd.DataFrame(rows)


def actor_splits(actors: list[str], folder: Path) -> dict[str, str]:
    """actor -> train/dev/test, whole actors per split: the last sixth (at least one) tests, the sixth before it
    dev (from three actors on), the rest trains; `actors` sorted."""
    if len(actors) < 2:
        raise ViperError(
            f"{folder}: a split by actor needs two actors or more; this folder holds only actor {actors[0]} "
            "(split by statement instead)"
        )
    held_out = max(1, len(actors) // 6)
    dev = held_out if len(actors) >= 3 else 0
    train = len(actors) - held_out - dev
    return {actor: "train" if i < train else "dev" if i < train + dev else "test" for i, actor in enumerate(actors)}


def write_ravdess_manifest(folder: Path, out: Path, test_statement: str = "02", split_by: str = "statement") -> int:
    """Write the manifest CSV with paths relative to it; returns the number of rows."""
    return write_manifest(ravdess_manifest(folder, test_statement, split_by), out)


DATASET_LAYOUTS.register("ravdess", ravdess_manifest)
