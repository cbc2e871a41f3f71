"""RAVDESS: labels are encoded in file names; one column per emotion with an intensity target.

File name: modality-channel-emotion-intensity-statement-repetition-actor, e.g. 01-01-06-02-01-02-05.mp4
(modality 01 audio-video, 02 video-only, 03 audio-only; channel 01 speech, 02 song). Targets: the portrayed
emotion gets 1.0 at strong intensity and 0.5 at normal intensity, every other emotion 0.0. Split by statement:
statement 01 ("Kids are talking by the door") trains, statement 02 ("Dogs are sitting by the door") tests, so
the two near-identical repetitions of a take never straddle train and test.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ViperError
from . import DATASET_LAYOUTS, write_manifest

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
INTENSITY_TARGET = {"01": 0.5, "02": 1.0}
MODALITIES = {"01": "audio-video", "02": "video-only", "03": "audio-only"}
NAME = re.compile(r"^(0[1-3])-(0[12])-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d{2})$")
SUFFIXES = (".mp4", ".wav", ".avi", ".mov", ".mkv")


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


def ravdess_manifest(folder: Path, test_statement: str = "02"):
    """A generic manifest (video_id, path, split, one column per emotion) for every RAVDESS file under folder."""
    import pandas as pd

    folder = Path(folder)
    if not folder.is_dir():
        raise ViperError(f"{folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES and parse_name(p.stem))
    if not files:
        raise ViperError(f"{folder}: no RAVDESS files (names like 01-01-06-02-01-02-05.mp4) found")
    stems = [p.stem for p in files]
    rows = []
    for path in files:
        codes = parse_name(path.stem)
        relative = path.relative_to(folder)
        # the same take can exist twice (e.g. full frame and face crop): prefix the folder to keep ids unique
        video_id = path.stem if stems.count(path.stem) == 1 else f"{path.stem}_{relative.parent.name or 'root'}"
        row = {"video_id": video_id, "path": str(path.resolve()),
               "split": "test" if codes["statement"] == test_statement else "train"}
        row |= {emotion: 0.0 for emotion in EMOTIONS}
        row[codes["emotion"]] = INTENSITY_TARGET[codes["intensity"]]
        rows.append(row)
    return pd.DataFrame(rows)


def write_ravdess_manifest(folder: Path, out: Path, test_statement: str = "02") -> int:
    """Write the manifest CSV with paths relative to it; returns the number of rows."""
    return write_manifest(ravdess_manifest(folder, test_statement), out)


DATASET_LAYOUTS.register("ravdess", ravdess_manifest)
