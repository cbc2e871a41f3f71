"""The MuSe 2022 Reaction challenge's own features as store modalities, aligned to viper's N frames per clip.

Source: ROOT/feats/<feature>/<id>.csv (see `viper.datasets.hume_reaction`): two meta columns, then the values.
Each feature folder becomes modality `<folder name lowercased>` (`faus`, `vggface2`, `egemaps`, `deepspectrum`;
a name that is also a viper extractor's modality, e.g. `fau`, gets `_challenge` appended so `--modalities`
stays unambiguous), backend `challenge`. Its store key hashes the folder name, its file listing (names and
sizes) and the alignment settings, so re-exported features never mix with old ones.

Alignment. A clip already extracted into the store keeps its sampled frame times (`clips/<id>.json` `times`),
so challenge features line up with viper's own; for any other clip, N times are spread evenly from its feature
file's first to its last timestamp (as `video.sample_frame_times` spreads them over a video). Import after
`viper extract` for exact alignment; importing again re-aligns. Each frame takes the feature row with the nearest
timestamp; a frame with no row within the tolerance (default: the file's median row spacing) is masked, so gaps
in a feature file (e.g. no face found) read as missing, never as invented values. Rows whose values are all
empty count as absent; single empty values become 0 (as the baseline's early fusion fills them).

Timestamps are the meta column whose name contains "time" (else the first numeric meta column), in seconds or
milliseconds: `time_unit="auto"` takes milliseconds when the median last timestamp of the folder's first 50
files exceeds 300 (no Hume-Reaction clip lasts 5 minutes; a millisecond stamp passes 300 within a second).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path

import numpy as np

from ..config import config_hash
from ..errors import SettingError, ViperError
from ..feature_spec import FeatureSpec
from ..progress import Hook, notify
from ..settings import MAX_FRAMES, real_number, whole_number
from ..store import FeatureStore
from ..video import nearest_indices, sample_frame_times

log = logging.getLogger(__name__)

BACKEND = "challenge"
DEFAULT_FRAMES = 32  # viper extract's default N, for a store this import creates
META_COLUMNS = 2  # the baseline's feature_idx: values start at column 2
UNIT_SAMPLE = 50


def import_challenge_features(
    root: Path | str,
    store: Path | str | FeatureStore,
    feature_names: list[str] | None = None,
    *,
    frames: int | None = None,
    tolerance: float | None = None,
    time_unit: str = "auto",
    hook: Hook | None = None,
) -> dict[str, str]:
    """Import feats/<feature>/ folders (None: all of them) into a store (created if needed, N = `frames`, else
    the store's or 32) for every clip in partition.csv; adds those clips' labels. Returns {folder: store key}.

    `tolerance` is in seconds; `time_unit` is auto, s or ms.
    """
    from ..datasets.hume_reaction import dataset_root, hume_reaction_manifest

    if time_unit not in ("auto", "s", "ms"):
        raise SettingError("time_unit", f"must be auto, s or ms, got {time_unit!r}")
    if frames is not None:
        whole_number("frames", frames, 1, MAX_FRAMES)
    if tolerance is not None:
        real_number("tolerance", tolerance, above_minimum=True)
    root = dataset_root(root)
    table = hume_reaction_manifest(root, require_media=False)
    folders = feature_folders(root / "feats", feature_names)
    store = _open_store(store, frames)
    known = set(store.labels()["video_id"]) if (store.root / "labels.csv").exists() else set()
    new_rows = table[~table["video_id"].isin(known)]
    if len(new_rows):
        store.write_labels(new_rows)  # rows from `viper extract` (with video paths) are kept as they are
    return {
        folder.name: _import_folder(folder, store, list(table["video_id"]), tolerance, time_unit, hook)
        for folder in folders
    }


def feature_folders(feats: Path, names: list[str] | None) -> list[Path]:
    """The named folders of feats/ (exact name, else case-insensitive), or all of them."""
    if not feats.is_dir():
        raise ViperError(f"{feats}: no challenge feature folder")
    available = sorted(p for p in feats.iterdir() if p.is_dir())
    if not names:
        if not available:
            raise ViperError(f"{feats}: no feature folders in it")
        return available
    chosen = []
    for name in names:
        match = [p for p in available if p.name == name] or [p for p in available if p.name.lower() == name.lower()]
        if len(match) != 1:
            raise ViperError(
                f"{feats}: no feature folder {name!r}; it has {', '.join(p.name for p in available) or 'none'}"
            )
        chosen.append(match[0])
    return chosen


def modality_name(folder_name: str) -> str:
    """The folder name lowercased, with `_challenge` appended where a viper extractor already uses that name."""
    from ..extractors.base import EXTRACTORS

    name = folder_name.lower()
    return f"{name}_{BACKEND}" if name in {spec.partition(":")[0] for spec in EXTRACTORS.names()} else name


def read_feature_file(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Timestamps (rows,) as written, values (rows, dim) float32 and dim, without rows that hold no values."""
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ViperError(f"{path}: not a readable feature CSV ({error})") from None
    if table.shape[1] <= META_COLUMNS:
        raise ViperError(f"{path}: needs {META_COLUMNS} meta columns (timestamp ...) and then feature values")
    meta, values = table.iloc[:, :META_COLUMNS], table.iloc[:, META_COLUMNS:]
    numeric = [c for c in meta.columns if pd.api.types.is_numeric_dtype(meta[c])]
    named = [c for c in numeric if "time" in str(c).lower()]
    if not numeric:
        raise ViperError(f"{path}: neither of the first two columns ({', '.join(map(str, meta.columns))}) is a time")
    text = [str(c) for c in values.columns if not pd.api.types.is_numeric_dtype(values[c])]
    if text:
        raise ViperError(f"{path}: non-numeric feature column(s) {', '.join(text[:5])}")
    timestamps = meta[(named or numeric)[0]].to_numpy(np.float64)
    array = values.to_numpy(np.float32)
    keep = np.isfinite(timestamps) & ~np.isnan(array).all(axis=1)
    return timestamps[keep], np.nan_to_num(array[keep]), values.shape[1]


def align(
    timestamps: np.ndarray, values: np.ndarray, times: np.ndarray, tolerance: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Values (N, dim) of the row nearest each of N times (seconds) and mask (N,): a row within `tolerance`
    (default: the median spacing of the rows; any distance when there are fewer than two distinct times)."""
    times = np.asarray(times, dtype=np.float64)
    out = np.zeros((len(times), values.shape[1]), np.float32)
    if len(timestamps) == 0:
        return out, np.zeros(len(times), bool)
    order = np.argsort(timestamps, kind="stable")
    timestamps, values = timestamps[order], values[order]
    if tolerance is None:
        steps = np.diff(np.unique(timestamps))
        tolerance = float(np.median(steps)) if len(steps) else np.inf
    rows = nearest_indices(timestamps, times)
    mask = np.abs(timestamps[rows] - times) <= tolerance + 1e-9
    out[mask] = values[rows[mask]]
    return out, mask


def folder_listing_hash(folder: Path) -> str:
    """A hash of the folder's CSV names and sizes: re-exported features get another store key."""
    listing = "\n".join(f"{p.name}\t{p.stat().st_size}" for p in sorted(folder.glob("*.csv")))
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def _open_store(store: Path | str | FeatureStore, frames: int | None) -> FeatureStore:
    root = store.root if isinstance(store, FeatureStore) else Path(store)
    if frames is None:
        frames = FeatureStore.open(root).n_frames if (root / "store.json").exists() else DEFAULT_FRAMES
    return FeatureStore.create(root, frames)


def _guess_unit(paths: list[Path]) -> str:
    ends = [stamps.max() for stamps in (read_feature_file(p)[0] for p in paths[:UNIT_SAMPLE]) if len(stamps)]
    return "ms" if ends and float(np.median(ends)) > 300 else "s"


def _import_folder(
    folder: Path, store: FeatureStore, video_ids: list[str], tolerance: float | None, time_unit: str,
    hook: Hook | None
) -> str:
    """One feature folder into the store; returns its key."""
    from ..datasets.hume_reaction import bare_id

    files = {bare_id(p.stem): p for p in folder.glob("*.csv")}
    missing = [video_id for video_id in video_ids if video_id not in files]
    if missing:
        raise ViperError(f"{folder}: {len(missing)} clip(s) of partition.csv have no <id>.csv: {', '.join(missing)}")
    extra = sorted(set(files) - set(video_ids))
    if extra:
        log.warning("%s: %d file(s) not in partition.csv are skipped: %s", folder, len(extra), ", ".join(extra[:10]))
    unit = _guess_unit([files[i] for i in video_ids]) if time_unit == "auto" else time_unit
    scale = 1e-3 if unit == "ms" else 1.0
    n = store.n_frames
    config = {"feature": folder.name, "listing": folder_listing_hash(folder), "time_unit": unit, "tolerance": tolerance}
    spec = FeatureSpec(modality_name(folder.name), BACKEND, "1", config, frames=n)
    key = f"{spec.modality}-{BACKEND}-{config_hash(spec.identity())}"
    dim = None
    for done, video_id in enumerate(video_ids, 1):
        notify(hook, folder.name, completed=done, total=len(video_ids))
        stamps, values, width = read_feature_file(files[video_id])
        if dim is None:
            dim = width
            store.register_feature(dataclasses.replace(spec, dim=dim, key=key))
        elif width != dim:
            raise ViperError(f"{files[video_id]}: {width} feature values per row, other files of {folder} have {dim}")
        stamps = stamps * scale
        meta = store.clip_meta(video_id)
        if meta is not None:
            times = np.asarray(meta["times"], dtype=np.float64)
        elif len(stamps):
            times = sample_frame_times(float(stamps.min()), float(stamps.max()), n)
        else:
            times = np.zeros(n)  # no rows at all: every frame is masked
        store.write(key, video_id, *align(stamps, values, times, tolerance))
    store.pack(key)
    return key
