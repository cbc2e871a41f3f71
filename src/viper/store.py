"""The feature store: per extractor and per video, arrays written atomically; packed memory-mapped reads.

Layout (every file is written to a temp name and renamed, so a crash never leaves half a file):

    STORE/store.json                         format, N (frames per clip), viper version
    STORE/labels.csv                         video_id, path, split, [person,] one column per emotion (the manifest's)
    STORE/clips/<video_id>.json              source path, size, mtime, sha256, sampled times, face mask, ...
    STORE/features/<key>/extractor.json      modality, backend, version, config, dim, key
    STORE/features/<key>/videos/<id>.npz     values (N, dim) float32, mask (N,) bool
    STORE/features/<key>/packed/             values.npy (V, N, dim), mask.npy (V, N), ids.json: one read per split

<key> is `modality-backend-<hash of version + config + face-crop setting>`, so features from a changed
extractor never mix with old ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_output, atomic_save_npy, atomic_save_npz, atomic_write_text
from .errors import ViperError
from .feature_spec import FeatureSpec

STORE_FORMAT = 1
STALE_TMP_SECONDS = 60  # temp files older than this are leftovers of a killed writer
ID_COLUMNS = ("video_id", "path", "split", "person")  # every other labels.csv column is an emotion
LABEL_DTYPES = {"video_id": str, "split": str, "person": str}
PACKED_DTYPE = np.dtype("<f4")  # values.npy: little-endian float32, whatever the machine


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
        return store

    @property
    def info(self) -> dict[str, Any]:
        return json.loads((self.root / "store.json").read_text())

    @property
    def n_frames(self) -> int:
        return int(self.info["n_frames"])

    # --- labels --------------------------------------------------------------------------------------
    def write_labels(self, manifest) -> None:
        """Merge manifest rows (a DataFrame) into labels.csv; newer rows replace older ones of the same id."""
        import pandas as pd

        path = self.root / "labels.csv"
        if path.exists():
            old = pd.read_csv(path, dtype=LABEL_DTYPES, keep_default_na=False, na_values=[""])
            manifest = pd.concat([old[~old["video_id"].isin(manifest["video_id"])], manifest], ignore_index=True)
        atomic_write_text(path, manifest.to_csv(index=False))

    def labels(self):
        """The manifest rows of every extracted clip (video_id, path, split, person when given, emotion columns)."""
        import pandas as pd

        path = self.root / "labels.csv"
        if not path.exists():
            raise ViperError(f"{self.root}: the store has no labels.csv; extract from a manifest CSV with labels")
        return pd.read_csv(path, dtype=LABEL_DTYPES, keep_default_na=False, na_values=[""])

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
    def clip_path(self, video_id: str) -> Path:
        return self.root / "clips" / f"{video_id}.json"

    def write_clip(self, video_id: str, meta: dict[str, Any]) -> None:
        atomic_write_text(self.clip_path(video_id), json.dumps(meta, indent=1))

    def clip_meta(self, video_id: str) -> dict[str, Any] | None:
        path = self.clip_path(video_id)
        return json.loads(path.read_text()) if path.exists() else None

    def source_unchanged(self, video_id: str, source: Path) -> bool:
        """True when the clip was extracted from this very file (same size and mtime, or same hash)."""
        meta = self.clip_meta(video_id)
        if meta is None:
            return False
        stat = source.stat()
        if meta["source_size"] == stat.st_size and meta["source_mtime"] == stat.st_mtime:
            return True
        return meta["source_size"] == stat.st_size and meta["source_sha256"] == file_sha256(source)

    # --- features --------------------------------------------------------------------------------
    def feature_dir(self, key: str) -> Path:
        return self.root / "features" / key

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
        return self.feature_dir(key) / "videos" / f"{video_id}.npz"

    def has(self, key: str, video_id: str) -> bool:
        return self.video_path(key, video_id).exists()

    def write(self, key: str, video_id: str, values: np.ndarray, mask: np.ndarray) -> None:
        (self.feature_dir(key) / "packed" / "ids.json").unlink(missing_ok=True)  # the pack is stale now
        atomic_save_npz(self.video_path(key, video_id), values=values.astype(np.float32), mask=mask.astype(bool))

    def read(self, key: str, video_id: str) -> tuple[np.ndarray, np.ndarray]:
        path = self.video_path(key, video_id)
        if not path.exists():
            raise ViperError(f"{self.root}: clip {video_id!r} has no {key} features; run `viper extract` for it")
        with np.load(path) as data:
            return data["values"], data["mask"]

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
        with _locked(folder / ".lock", fcntl.LOCK_EX):
            self._pack_locked(key, folder)

    def _pack_locked(self, key: str, folder: Path) -> None:
        """Stream the clips' values into values.npy one clip at a time (a store of any size packs in the memory of
        one clip, plus the small mask), then mask.npy, then ids.json."""
        ids = self.video_ids(key)
        if not ids:
            return
        shape = self.read(key, ids[0])[0].shape
        mask = np.zeros((len(ids), shape[0]), bool)
        header = {"descr": np.lib.format.dtype_to_descr(PACKED_DTYPE), "fortran_order": False,
                  "shape": (len(ids), *shape)}
        with atomic_output(folder / "values.npy") as handle:
            np.lib.format.write_array_header_1_0(handle, header)
            for row, video_id in enumerate(ids):
                values, mask[row] = self.read(key, video_id)
                if values.shape != shape:
                    raise ViperError(
                        f"{self.video_path(key, video_id)}: values of shape {values.shape}, the other clips' are "
                        f"{shape}; delete the file and run `viper extract` again"
                    )
                handle.write(values.astype(PACKED_DTYPE, copy=False).tobytes())
        atomic_save_npy(folder / "mask.npy", mask)
        atomic_write_text(folder / "ids.json", json.dumps(ids))  # written last: marks the pack complete

    def _packed(self, key: str):
        folder = self.feature_dir(key) / "packed"
        ids_path = folder / "ids.json"
        if not ids_path.exists():
            return None
        with _locked(folder / ".lock", fcntl.LOCK_SH):  # never read while another process packs
            if not ids_path.exists():
                return None
            ids = json.loads(ids_path.read_text())
            values = np.load(folder / "values.npy", mmap_mode="r")
            mask = np.load(folder / "mask.npy", mmap_mode="r")
        if len(ids) != values.shape[0] or len(ids) != mask.shape[0]:
            return None  # a pack from another moment; rebuild
        return {video_id: row for row, video_id in enumerate(ids)}, values, mask

    def load(self, key: str, video_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Features of many clips at once: values (V, N, dim) float32 and mask (V, N) bool."""
        packed = self._packed(key)
        if packed is None or any(video_id not in packed[0] for video_id in video_ids):
            self.pack(key)
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


@contextlib.contextmanager
def _locked(path: Path, operation: int):
    """Hold an flock on `path` (created if needed); on a read-only store, go on without the lock."""
    try:
        handle = open(path, "a")  # noqa: SIM115 - closed below
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, operation)
        yield
