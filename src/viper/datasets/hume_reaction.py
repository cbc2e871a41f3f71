"""Hume-Reaction (MuSe 2022 Reaction sub-challenge): the challenge's own folders as a viper manifest.

Layout (ROOT is `c2_muse_reaction/` itself or a folder that holds it):

    c2_muse_reaction/
        labels.csv                  File_ID,Adoration,Amusement,Anxiety,Disgust,Empathic-Pain,Fear,Surprise
                                    one row per clip, File_ID in brackets ([00001]), values in [0, 1];
                                    test clips have no row or empty values
        partition.csv               id,partition: the id in brackets in the first column, train/devel/test in
                                    the last
        mp4/<id>.mp4                the videos, named without brackets (00001.mp4); any video suffix is read
        feats/<feature>/<id>.csv    the challenge's features (FAUs, VGGFace2, eGeMAPS, DeepSpectrum): two meta
                                    columns (the timestamp among them), then the values; see
                                    `viper.jobs.import_features`

Where these facts come from: the MuSe 2022 baseline (github.com/EIHW/MuSe2022) — config.py (`c2_muse_reaction`,
`feats/`, labels.csv and partition.csv in the root, the 7 emotion names), data_parser.py (partition ids have
their brackets stripped to name feature files; labels looked up by `File_ID`; feature values from column 2 on),
run_exp_reaction.sh (feature folders FAUs, DeepSpectrum, VGGFace2, eGeMAPS), eval.py (predictions file:
`File_ID` as in partition.csv, then the 7 emotions). The baseline reads only the features, so it never names the
video folder; `mp4/` is where the ViPER authors' scripts read the Hume-Reaction videos from
(github.com/VaianiLorenzo/ViPER get_frame.py and README: data/mp4, data/wav).

viper's video ids are the bracket-less ids (as in the file names); `viper.jobs.submit` puts the brackets back.
These files name no subject (partition.csv's first column, which the baseline's parser calls `subject`, is the
clip id), so the manifest has no person column: `viper train` cannot check whether splits share people, and
`person_norm` cannot be used.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..errors import ViperError
from ..filenames import name_problem
from ..manifest import check_csv_table
from ..video import VIDEO_SUFFIXES
from . import DATASET_LAYOUTS

EMOTIONS = ("Adoration", "Amusement", "Anxiety", "Disgust", "Empathic-Pain", "Fear", "Surprise")
FOLDER = "c2_muse_reaction"
MEDIA_DIR = "mp4"
PARTITIONS = {"train": "train", "devel": "dev", "test": "test"}


def dataset_root(root: Path | str) -> Path:
    """The folder holding partition.csv: ROOT/c2_muse_reaction or ROOT itself."""
    root = Path(root)
    for candidate in (root / FOLDER, root):
        if (candidate / "partition.csv").is_file():
            return candidate
    raise ViperError(f"{root}: not a Hume-Reaction folder (no partition.csv in it or in {FOLDER}/)")


def bare_id(text: str) -> str:
    """`[00001]` -> `00001` (ids without brackets pass through)."""
    text = str(text).strip()
    return text[1:-1].strip() if text.startswith("[") and text.endswith("]") else text


def hume_reaction_manifest(root: Path | str, *, require_media: bool = True):
    """The generic manifest (video_id, path, split, the 7 emotions) of every clip in partition.csv, in its order.

    Every problem is reported at once in one ViperError: duplicate ids, unknown partitions, train/devel clips
    without (numeric) labels, label rows and videos with no partition entry, and, with `require_media`, every
    clip whose video is missing. Without `require_media` (challenge features only) `path` is empty where no
    video exists.
    """
    import pandas as pd

    root = dataset_root(root)
    problems: list[str] = []
    splits = _read_partition(root / "partition.csv", problems)
    labels = _read_labels(root / "labels.csv", problems)
    media_dir = root / MEDIA_DIR
    if require_media and not media_dir.is_dir():
        raise ViperError(f"{root}: no {MEDIA_DIR}/ folder with the videos (expected {media_dir}/<id>.mp4)")
    media = _media_files(media_dir, problems) if media_dir.is_dir() else {}

    unlabelled = [i for i, split in splits.items() if split != "test" and i not in labels.index]
    if unlabelled:
        problems.append(f"{len(unlabelled)} train/devel clip(s) have no row in labels.csv: {', '.join(unlabelled)}")
    labels = labels.apply(pd.to_numeric, errors="coerce")
    bad = [i for i in labels.index[labels.isna().any(axis=1)] if splits.get(i, "test") != "test"]
    if bad:
        problems.append(f"{len(bad)} train/devel clip(s) have empty or non-numeric labels: {', '.join(bad)}")
    orphan_labels = sorted(set(labels.index) - set(splits))
    if orphan_labels:
        problems.append(f"{len(orphan_labels)} labels.csv row(s) not in partition.csv: {', '.join(orphan_labels)}")
    orphan_media = sorted(set(media) - set(splits))
    if orphan_media:
        names = ", ".join(media[i].name for i in orphan_media)
        problems.append(f"{len(orphan_media)} video(s) in {media_dir} not in partition.csv: {names}")
    if require_media:
        missing = [i for i in splits if i not in media]
        if missing:
            problems.append(f"{len(missing)} video(s) missing (expected {media_dir}/<id>.mp4): {', '.join(missing)}")
    if problems:
        raise ViperError(f"{root}: bad Hume-Reaction data:\n  " + "\n  ".join(problems))

    table = pd.DataFrame(
        {
            "video_id": list(splits),
            "path": [str(media[i].resolve()) if i in media else "" for i in splits],
            "split": list(splits.values()),
        }
    )
    emotions = labels.reindex(list(splits)).reset_index(drop=True)  # test clips without a row: empty labels
    return pd.concat([table, emotions[list(EMOTIONS)]], axis=1)


def _read_csv(path: Path):
    import pandas as pd

    if not path.is_file():
        raise ViperError(f"{path}: file not found")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ViperError(f"{path}: not a readable CSV ({error})") from None
    check_csv_table(path, table, unnamed_ok=True)  # columns are picked by name: an unnamed index is no emotion
    return table


def _read_partition(path: Path, problems: list[str]) -> dict[str, str]:
    """id -> train/dev/test; as the baseline reads it, the id is the first column and the partition the last."""
    table = _read_csv(path)
    if table.shape[1] < 2:
        raise ViperError(f"{path}: needs two columns, the clip id and its partition (train/devel/test)")
    ids = [bare_id(value) for value in table.iloc[:, 0]]
    duplicated = sorted(i for i, count in Counter(ids).items() if count > 1)
    if duplicated:
        problems.append(f"partition.csv: duplicate id(s) {', '.join(duplicated)}")
    unsafe = [f"line {line}: {i[:80]!r} {name_problem(i)}" for line, i in enumerate(ids, 2) if name_problem(i)]
    if unsafe:
        problems.append(f"partition.csv: id(s) that cannot be file names in the store: {'; '.join(unsafe[:20])}")
    raw = [str(value).strip().lower() for value in table.iloc[:, -1]]
    unknown = sorted({value for value in raw if value not in PARTITIONS})
    if unknown:
        problems.append(f"partition.csv: unknown partition(s) {', '.join(map(repr, unknown))}; use train/devel/test")
    return {i: PARTITIONS.get(value, value) for i, value in zip(ids, raw, strict=True)}


def _read_labels(path: Path, problems: list[str]):
    """The 7 emotion columns indexed by bare id (strings, checked by the caller)."""
    table = _read_csv(path)
    missing = [column for column in ("File_ID", *EMOTIONS) if column not in table.columns]
    if missing:
        raise ViperError(f"{path}: missing column(s) {', '.join(missing)}; expected File_ID,{','.join(EMOTIONS)}")
    ids = table["File_ID"].map(bare_id)
    duplicated = sorted(set(ids[ids.duplicated()]))
    if duplicated:
        problems.append(f"labels.csv: duplicate File_ID(s) {', '.join(duplicated)}")
    return table.assign(File_ID=ids).drop_duplicates("File_ID").set_index("File_ID")[list(EMOTIONS)]


def _media_files(folder: Path, problems: list[str]) -> dict[str, Path]:
    """bare id -> video file; two files for one id is a problem."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            found.setdefault(bare_id(path.stem), []).append(path)
    duplicated = {i: paths for i, paths in found.items() if len(paths) > 1}
    if duplicated:
        listing = "; ".join(" and ".join(p.name for p in paths) for paths in duplicated.values())
        problems.append(f"{len(duplicated)} clip(s) with more than one video in {folder}: {listing}")
    return {i: paths[0] for i, paths in found.items()}


DATASET_LAYOUTS.register("hume-reaction", hume_reaction_manifest)
