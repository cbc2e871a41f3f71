"""The feature store: per extractor and per video, arrays written atomically; packed memory-mapped reads.

Layout (every file is written to a temp name and renamed, so a crash never leaves half a file):

    STORE/store.json                         format, N (frames per clip), viper version
    STORE/labels.csv                         video_id, path, split, [person,] one column per emotion (the manifest's)
    STORE/clips/<video_id>.json              source path, size, mtime, sha256, sampled times, face mask, ...
    STORE/features/<key>/extractor.json      modality, backend, version, config, dim, key
    STORE/features/<key>/videos/<id>.npz     values (N, dim) float32, mask (N,) bool
    STORE/features/<key>/packed/             values.npy (V, N, dim), mask.npy (V, N), ids.json: one read per split

<key> is `modality-backend-<hash of version + config + face-crop setting>`, so features from a changed
extractor never mix with old ones. A video id or key that is not one file name (see `filenames.name_problem`) is
refused by every path the store builds, so no id leads outside the store. Writers share the store through file
locks (`locks.locked`): .store.lock (store.json's creation), .labels.lock (labels.csv's read-merge-write),
packed/.lock (a pack, and its readers).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_output, atomic_save_npy, atomic_save_npz, atomic_write_text
from .errors import ViperError
from .feature_spec import FeatureSpec
from .filenames import name_problem
from .label_merge import ID_COLUMNS, merge_labels
from .locks import locked

log = logging.getLogger(__name__)

STORE_FORMAT = 1
STALE_TMP_SECONDS = 60  # temp files older than this are leftovers of a killed writer
LABEL_DTYPES = {"video_id": str, "split": str, "person": str}
PACKED_DTYPE = np.dtype("<f4")  # values.npy: little-endian float32, whatever the machine


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DamagedFeatures(ViperError):
    """A clip's feature file that cannot be read; it has been removed, so the clip counts as not extracted."""


class FeatureStore:
    """A folder of cached per-frame features; training reads whole splits from packed arrays."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # --- creation and settings -------------------------------------------------------------------
    @classmethod
    def create(cls, root: Path | str, n_frames: int) -> FeatureStore:
        """Open a store for writing, creating it if needed; N must match the store's."""
        store = cls(root)
        info_path = store.root / "store.json"
        store.root.mkdir(parents=True, exist_ok=True)
        with locked(store.root / ".store.lock"):  # two first runs at once: one writes store.json, one checks it
            if info_path.exists():
                if store.n_frames != n_frames:
                    raise ViperError(
                        f"{store.root}: this store holds clips sampled at {store.n_frames} frames, not {n_frames}; "
                        "use another store folder for a different number of frames"
                    )
            else:
                from . import __version__

                info = {"format": STORE_FORMAT, "n_frames": n_frames, "viper_version": __version__}
                atomic_write_text(info_path, json.dumps(info, indent=2))
        store.remove_stale_tmp()
        return store

    def remove_stale_tmp(self, older_than: float = STALE_TMP_SECONDS) -> None:
        """Delete `.*.tmp` files a killed writer left behind (readers never see them; they only take space)."""
        cutoff = time.time() - older_than
        for path in self.root.rglob(".*.tmp"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass  # another process renamed or removed it meanwhile

    @classmethod
    def open(cls, root: Path | str) -> FeatureStore:
        """Open an existing store for reading."""
        store = cls(root)
        if not (store.root / "store.json").exists():
            raise ViperError(f"{store.root}: not a viper feature store (no store.json); run `viper extract` first")
        store.n_frames  # noqa: B018 - a damaged store.json or another format is reported here, not halfway through
        return store

    @property
    def info(self) -> dict[str, Any]:
        """store.json; damaged (cut short, edited) it is a ViperError saying how to write it again, and a format
        this viper does not know is refused (its layout may mean something else)."""
        path = self.root / "store.json"
        try:
            info = json.loads(path.read_text())
            if isinstance(info, dict) and isinstance(info.get("n_frames"), int) and info["n_frames"] >= 1:
                if info.get("format") != STORE_FORMAT:
                    from . import __version__

                    raise ViperError(f"{path}: store format {info.get('format')!r}; viper {__version__} reads "
                                     f"format {STORE_FORMAT} only: use the viper that made this store, or extract "
                                     "into a new one")
                return info
            problem = "no frames per clip (n_frames) in it"
        except ValueError as error:
            problem = f"not JSON: {error}"
        raise ViperError(
            f"{path} is damaged ({problem}): delete it and run `viper extract` into this store with the --frames it "
            "was made with (each clips/*.json says it as \"frames\"); the features already extracted are kept"
        )

    @property
    def n_frames(self) -> int:
        return int(self.info["n_frames"])

    # --- labels --------------------------------------------------------------------------------------
    def write_labels(self, manifest) -> None:
        """Merge manifest rows (a DataFrame) into labels.csv (see `label_merge`: a blank erases nothing), under a
        lock, so extractions into one store at once each keep their rows."""
        import pandas as pd

        path = self.root / "labels.csv"
        with locked(self.root / ".labels.lock"):
            if path.exists():
                old = pd.read_csv(path, dtype=LABEL_DTYPES, keep_default_na=False, na_values=[""])
                manifest = merge_labels(old, manifest, str(path))
            atomic_write_text(path, manifest.to_csv(index=False))

    def labels(self):
        """The manifest rows of every extracted clip (video_id, path, split, person when given, emotion columns).
        labels.csv edited by hand is checked as a manifest is: a column or id given twice, a ragged row or a split
        that is none is refused, naming the lines."""
        import pandas as pd

        from .manifest import check_csv_table, split_problem

        path = self.root / "labels.csv"
        if not path.exists():
            raise ViperError(f"{self.root}: the store has no labels.csv; extract from a manifest CSV with labels")
        table = pd.read_csv(path, dtype=LABEL_DTYPES, keep_default_na=False, na_values=[""])
        check_csv_table(path, table)
        problem = split_problem(table["split"]) if "split" in table.columns else None
        repeated = table.index[table["video_id"].duplicated(keep=False)] if "video_id" in table.columns else []
        if len(repeated):
            names = ", ".join(sorted(set(table.loc[repeated, "video_id"].astype(str)))[:10])
            lines = ", ".join(str(index + 2) for index in repeated[:20])
            problem = f"video_id(s) {names} given more than once (lines {lines}); keep one row per clip"
        if problem:
            raise ViperError(f"{path}: {problem}")
        return table

    def emotions(self) -> list[str]:
        """Emotion names: the label columns other than video_id, path, split and person."""
        return [column for column in self.labels().columns if column not in ID_COLUMNS]

    def persons(self) -> dict[str, str]:
        """video_id -> person of every clip in labels.csv; "" where unknown (blank, or a store without persons)."""
        table = self.labels()
        if "person" not in table.columns:
            return dict.fromkeys(table["video_id"], "")
        people = table["person"].fillna("").astype(str).str.strip()
        return dict(zip(table["video_id"], people, strict=True))

    # --- per-clip metadata -----------------------------------------------------------------------
    def checked_name(self, name: str, what: str = "video id") -> str:
        """`name` when it can be a file name in the store, else a ViperError: an id never leads outside the store."""
        problem = name_problem(name)
        if problem:
            raise ViperError(f"{self.root}: {what} {name!r} {problem}; it cannot name a file in the store")
        return name

    def clip_path(self, video_id: str) -> Path:
        return self.root / "clips" / f"{self.checked_name(video_id)}.json"

    def write_clip(self, video_id: str, meta: dict[str, Any]) -> None:
        atomic_write_text(self.clip_path(video_id), json.dumps(meta, indent=1))

    def clip_meta(self, video_id: str) -> dict[str, Any] | None:
        """The clip's metadata; None when it was never written or is damaged (the clip is then extracted again)."""
        path = self.clip_path(video_id)
        try:
            meta = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def source_unchanged(self, video_id: str, source: Path) -> bool:
        """True when the clip was extracted from this very file (same size and mtime, or same hash)."""
        meta = self.clip_meta(video_id)
        if meta is None:
            return False
        stat = source.stat()
        if meta.get("source_size") != stat.st_size or "face_mask" not in meta:  # another file, or edited metadata
            return False
        return meta.get("source_mtime") == stat.st_mtime or meta.get("source_sha256") == file_sha256(source)

    # --- features --------------------------------------------------------------------------------
    def feature_dir(self, key: str) -> Path:
        return self.root / "features" / self.checked_name(key, "feature key")

    def register_feature(self, spec: FeatureSpec) -> None:
        """Record what the features under `spec.key` are (once: a key names one spec)."""
        path = self.feature_dir(spec.key) / "extractor.json"
        if not path.exists():
            atomic_write_text(path, json.dumps(spec.to_dict(), indent=2))

    def extractor_keys(self) -> list[str]:
        folder = self.root / "features"
        return sorted(p.name for p in folder.iterdir() if (p / "extractor.json").exists()) if folder.exists() else []

    def feature_spec(self, key: str) -> FeatureSpec:
        path = self.feature_dir(key) / "extractor.json"
        if not path.exists():
            raise ViperError(f"{self.root}: no features {key!r}; the store has {', '.join(self.extractor_keys())}")
        return FeatureSpec.from_dict(json.loads(path.read_text()))

    def key_for(self, modality: str) -> str:
        """The one feature key of a modality (or a key given in full); several need the full key."""
        keys = self.extractor_keys()
        if modality in keys:
            return modality
        matches = [key for key in keys if self.feature_spec(key).modality == modality]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ViperError(f"{self.root}: no {modality!r} features; the store has: {', '.join(keys) or 'none'}")
        raise ViperError(f"{self.root}: several {modality!r} features ({', '.join(matches)}); name one key")

    def video_path(self, key: str, video_id: str) -> Path:
        return self.feature_dir(key) / "videos" / f"{self.checked_name(video_id)}.npz"

    def has(self, key: str, video_id: str) -> bool:
        return self.video_path(key, video_id).exists()

    def write(self, key: str, video_id: str, values: np.ndarray, mask: np.ndarray) -> None:
        (self.feature_dir(key) / "packed" / "ids.json").unlink(missing_ok=True)  # the pack is stale now
        atomic_save_npz(self.video_path(key, video_id), values=values.astype(np.float32), mask=mask.astype(bool))

    def read(self, key: str, video_id: str) -> tuple[np.ndarray, np.ndarray]:
        """A clip's values (N, dim) and mask (N,). A file that cannot be read as those two arrays (cut short,
        corrupt, pickled objects) is removed, so the clip counts as missing and `viper extract` makes it again,
        and a DamagedFeatures error names it."""
        path = self.video_path(key, video_id)
        if not path.exists():
            raise ViperError(f"{self.root}: clip {video_id!r} has no {key} features; run `viper extract` for it")
        try:
            with np.load(path) as data:
                values, mask = data["values"], data["mask"]
            if values.ndim != 2 or mask.shape != values.shape[:1] or values.dtype.kind != "f" or mask.dtype != bool:
                raise ValueError(f"values {values.dtype} {values.shape} and mask {mask.dtype} {mask.shape}")
        except OSError as error:  # the disk or the permissions, not the file: keep it
            raise ViperError(f"{path}: cannot read ({error.strerror or error})") from error
        except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            path.unlink(missing_ok=True)
            raise DamagedFeatures(
                f"{path} was damaged ({type(error).__name__}: {error}) and is removed: run `viper extract` into "
                f"{self.root} again to extract clip {video_id!r} anew"
            ) from error
        return values, mask

    def video_ids(self, key: str) -> list[str]:
        folder = self.feature_dir(key) / "videos"
        return sorted(p.name[: -len(".npz")] for p in folder.glob("*.npz")) if folder.exists() else []

    # --- packed reads ------------------------------------------------------------------------------
    def pack(self, key: str) -> None:
        """Gather one extractor's per-video arrays into two .npy files (memory-mapped by `load`).

        An exclusive lock on packed/.lock keeps two processes from interleaving values.npy of one pack with
        ids.json of another."""
        folder = self.feature_dir(key) / "packed"
        folder.mkdir(parents=True, exist_ok=True)
        with locked(folder / ".lock"):
            self._pack_locked(key, folder)

    def _pack_locked(self, key: str, folder: Path) -> None:
        """The pack of every readable clip, streamed into values.npy one clip at a time (a store of any size packs
        in the memory of one clip, plus the small mask), then mask.npy, then ids.json. A damaged clip file is
        removed by `read` with a warning, and the pack starts over without it (rare: a file cut short)."""
        while True:
            try:
                return self._stream_pack(key, folder, self.video_ids(key))
            except DamagedFeatures as error:
                log.warning("%s", error)

    def _stream_pack(self, key: str, folder: Path, ids: list[str]) -> None:
        if not ids:
            return
        shape = self.read(key, ids[0])[0].shape
        mask = np.zeros((len(ids), shape[0]), bool)
        header = {"descr": np.lib.format.dtype_to_descr(PACKED_DTYPE), "fortran_order": False,
                  "shape": (len(ids), *shape)}
        with atomic_output(folder / "values.npy") as handle:
            np.lib.format.write_array_header_1_0(handle, header)
            for row, video_id in enumerate(ids):
                values, one_mask = self.read(key, video_id)
                if values.shape != shape:
                    raise ViperError(
                        f"{self.video_path(key, video_id)} holds {values.shape} values where the store's clips have "
                        f"{shape}: delete it and run `viper extract` again to extract clip {video_id!r} anew"
                    )
                mask[row] = one_mask
                handle.write(values.astype(PACKED_DTYPE, copy=False).tobytes())
        atomic_save_npy(folder / "mask.npy", mask)
        atomic_write_text(folder / "ids.json", json.dumps(ids))  # written last: marks the pack complete

    def _packed(self, key: str):
        folder = self.feature_dir(key) / "packed"
        ids_path = folder / "ids.json"
        if not ids_path.exists():
            return None
        with locked(folder / ".lock"):  # never read while another process packs
            try:
                ids = json.loads(ids_path.read_text())
                values = np.load(folder / "values.npy", mmap_mode="r")
                mask = np.load(folder / "mask.npy", mmap_mode="r")
            except (OSError, ValueError):
                return None  # gone, cut short or corrupt: the per-clip files rebuild it
        if not isinstance(ids, list) or values.ndim != 3 or mask.ndim != 2 or not len(ids) == len(values) == len(mask):
            return None  # a pack from another moment; rebuild
        return {video_id: row for row, video_id in enumerate(ids)}, values, mask

    def load(self, key: str, video_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Features of many clips at once: values (V, N, dim) float32 and mask (V, N) bool."""
        packed = self._packed(key)
        if packed is None or any(video_id not in packed[0] for video_id in video_ids):
            try:
                self.pack(key)
            except OSError as error:
                raise ViperError(
                    f"{self.feature_dir(key) / 'packed'}: stale or damaged, and it cannot be rebuilt here "
                    f"({error.strerror or error}); run `viper extract` where the store can be written"
                ) from error
            packed = self._packed(key)
        if packed is None:
            raise ViperError(f"{self.root}: no {key} features at all; run `viper extract` first")
        rows, values, mask = packed
        missing = [video_id for video_id in video_ids if video_id not in rows]
        if missing:
            raise ViperError(
                f"{self.root}: {len(missing)} clip(s) lack {key} features (e.g. {', '.join(missing[:5])}); "
                "run `viper extract` for them"
            )
        index = np.array([rows[video_id] for video_id in video_ids], dtype=np.int64)
        return np.asarray(values[index], dtype=np.float32), np.asarray(mask[index], dtype=bool)

