"""The per-clip engine every extraction job shares: which features a run makes (`ExtractConfig`), the models of a
run loaded once (`Extraction`), and the work on a batch of clips, split into decoding and computing halves."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .faces import DEFAULT_FACE_DETECTOR
from .feature_spec import FeatureSpec

DEFAULT_EXTRACTORS = ("face_image", "fau", "caption", "audio", "expression")  # the paper's four + the prior


@dataclass
class ExtractConfig:
    """Everything that decides which features a run produces (saved next to the store as extract.json)."""

    frames: int = 32
    extractors: list[str] = field(default_factory=lambda: list(DEFAULT_EXTRACTORS))
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per extractor spec: its Config fields
    face_crop: bool = True
    face_detector: str = DEFAULT_FACE_DETECTOR
    face_margin: float = 0.2
    faces: str = "main"  # whose face: main (the person seen most) or largest (each frame's: the paper's, old stores')
    device: str = "cpu"
    batch_videos: int = 1  # clips whose frames each model sees in one batch (how, not what: not in the store key)
    runtime: str | None = None  # onnx or torch (viper.runtime; None: its choice); the same features, not in the key


def configs_from_features(features: list[FeatureSpec], frames: int) -> list[ExtractConfig]:
    """The extraction settings that made a checkpoint's features (one config per face-crop setting)."""
    groups: dict[tuple, ExtractConfig] = {}
    for feature in features:
        face = (feature.face_crop, feature.face_detector or "mediapipe",  # recorded before there was a choice
                0.2 if feature.face_margin is None else feature.face_margin, feature.faces or "largest")
        config = groups.setdefault(face, ExtractConfig(frames=frames, extractors=[], face_crop=face[0],
                                                        face_detector=face[1], face_margin=face[2], faces=face[3]))
        config.extractors.append(feature.name)
        config.options[feature.name] = feature.config
    return list(groups.values())


@dataclass(frozen=True)
class SourceStamp:
    """A source file as it was just before it was decoded: what the store records as the clip's source. `identity`
    (device, inode, size, mtime and ctime in ns) changes with any write to the file or its replacement by another,
    so comparing it after decoding tells whether the hash is that of the bytes decoded."""

    identity: tuple[int, ...]
    size: int
    mtime: float
    sha256: str

    @classmethod
    def of(cls, path: Path) -> SourceStamp:
        from .store import file_sha256

        stat = path.stat()  # before hashing: a change while hashing shows as another identity afterwards
        return cls(_identity(stat), stat.st_size, stat.st_mtime, file_sha256(path))


def file_identity(path: Path) -> tuple[int, ...] | None:
    """A file's `SourceStamp.identity` now, None when it is gone."""
    try:
        return _identity(path.stat())
    except OSError:
        return None


def _identity(stat: os.stat_result) -> tuple[int, ...]:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


@dataclass
class Prepared:
    """A batch of clips between decoding and computing: per job its record (set once it is skipped or failed),
    the store keys it lacks, its source file as it was before decoding, and its decoded clip."""

    store: Any
    jobs: list[tuple[str, str]]
    records: list[dict[str, Any] | None]
    todo: dict[int, dict[str, Any]] = field(default_factory=dict)
    stamps: dict[int, SourceStamp] = field(default_factory=dict)
    clips: dict[int, Any] = field(default_factory=dict)


class Extraction:
    """The models of one run, loaded once per process, and the work on one clip."""

    def __init__(self, config: ExtractConfig) -> None:
        """Also sets the process's runtime to the run's (viper.runtime.force): every process that extracts (a
        worker, a Ray actor) builds its own Extraction, so the setting reaches each of them."""
        from .extractors.base import create_extractor
        from .runtime import check_setting, force

        force(check_setting(config.runtime, config.device))
        self.config = config
        self.extractors = [
            create_extractor(spec, config.options.get(spec), device=config.device) for spec in config.extractors
        ]
        self.detector = None

    def keys(self) -> dict[str, Any]:
        """Store key of each extractor: its identity plus the face-crop setting, which changes its input."""
        return {self.spec(extractor).key: extractor for extractor in self.extractors}

    def spec(self, extractor) -> FeatureSpec:
        """What this run makes with `extractor`, keyed by a hash of its identity (the width is looked up later)."""
        from .config import config_hash

        face = {"face_crop": self.config.face_crop}
        if self.config.face_crop:
            face |= {"face_detector": self.config.face_detector, "face_margin": self.config.face_margin}
            face |= {"faces": self.config.faces} if self.config.faces != "largest" else {}
        spec = FeatureSpec.from_dict({**extractor.identity(), "frames": self.config.frames, **face})
        suffix = "" if self.config.face_crop else "-nocrop"
        return dataclasses.replace(spec, key=f"{spec.modality}-{spec.backend}{suffix}-{config_hash(spec.identity())}")

    def load(self) -> None:
        from .faces import create_face_detector

        if self.config.face_crop and self.detector is None:
            self.detector = create_face_detector(self.config.face_detector, self.config.device)
            self.detector.load()
        for extractor in self.extractors:
            extractor.ensure_loaded()

    def clip(self, path: Path, video_id: str | None = None, still_frames: int | None = None,
             whole_frames: bool = False, faces: str | None = None):
        """Decode one clip and crop its faces with this run's settings (models must be loaded). `still_frames`: how
        often a still image's one frame is repeated (default N); `whole_frames`: every frame taken whole as the
        face, whatever the run's setting (inputs that are face crops already); `faces`: whose face, in place of the
        run's (a prediction's choice)."""
        from .sampled_video import sample_video

        crop = self.config.face_crop and not whole_frames
        return sample_video(path, self.config.frames, self.detector, crop, video_id, self.config.face_margin,
                            still_frames, faces or self.config.faces, self.config.device)

    def windows(self, path: Path, seconds: float, still_frames: int | None = None, whole_frames: bool = False,
                faces: str | None = None):
        """Decode a recording as consecutive windows of `seconds`, each a clip of N frames with its faces (models
        must be loaded): (window, clip) pairs, one window in memory at a time. Options as `clip`'s."""
        from .sampled_video import sample_windows

        crop = self.config.face_crop and not whole_frames
        return sample_windows(path, self.config.frames, seconds, self.detector, crop, margin=self.config.face_margin,
                              still_frames=still_frames, faces=faces or self.config.faces, device=self.config.device)

    def _pending(self, store, video_id: str, source: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """(the extractors the store lacks for this clip, None), or ({}, the record of a clip with nothing to do)."""
        try:
            unchanged = store.source_unchanged(video_id, source)
        except OSError as error:
            return {}, {"status": "failed", "reason": f"cannot read the file ({error.strerror or error})"}
        todo = {key: ex for key, ex in self.keys().items() if not (unchanged and store.has(key, video_id))}
        if todo:
            return todo, None
        meta = store.clip_meta(video_id)
        return {}, {"status": "skipped", "faces": sum(meta["face_mask"]), "frames": len(meta["face_mask"])}

    def check(self, store_root: str, video_id: str, path: str) -> dict[str, Any] | None:
        """The record of a clip that needs no work (already in the store, or unreadable); None when it does.

        Lets a run drop finished clips before it starts worker processes or hands work to other machines."""
        from .store import FeatureStore

        return self._pending(FeatureStore(store_root), video_id, Path(path))[1]

    def run_batch(self, store_root: str, jobs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Extract what the store lacks for several clips, each model seeing the frames of all of them at once
        (one batch across videos: what keeps a GPU busy). One record per job; a bad video fails alone."""
        return self.finish(self.prepare(store_root, jobs))

    def prepare(self, store_root: str, jobs: list[tuple[str, str]]) -> Prepared:
        """The decoding half of `run_batch`: what each clip lacks, and the clips decoded with their faces. It can
        run in a second thread while `finish` computes the previous batch (PyAV decodes without the GIL)."""
        from .store import FeatureStore

        batch = Prepared(FeatureStore(store_root), jobs, [None] * len(jobs))
        for index, (video_id, path) in enumerate(jobs):
            batch.todo[index], batch.records[index] = self._pending(batch.store, video_id, Path(path))
        pending = [index for index in batch.todo if batch.records[index] is None]
        if pending:
            self.load()  # a missing model stops the run with one message: it is not this video's fault
        for index in pending:
            video_id, path = jobs[index]
            stamp, failure = _guarded(Path(path), SourceStamp.of, Path(path))
            if failure is None:
                batch.stamps[index] = stamp
                batch.clips[index], failure = _guarded(Path(path), self.clip, Path(path), video_id)
            if failure:
                batch.records[index] = failure
        return batch

    def finish(self, batch: Prepared) -> list[dict[str, Any]]:
        """The computing half of `run_batch`: every extractor over the prepared clips at once, then the writes."""
        keys, jobs, records, clips = self.keys(), batch.jobs, batch.records, batch.clips
        computed: dict[int, dict[str, Any]] = {index: {} for index in clips if records[index] is None}
        for key, extractor in keys.items():
            group = [index for index in computed if key in batch.todo[index] and records[index] is None]
            if not group:
                continue
            rows, failure = _guarded(Path(jobs[group[0]][1]), extractor.extract_batch, [clips[i] for i in group])
            if failure is None:
                for index, features in zip(group, rows, strict=True):
                    computed[index][key] = features
                continue
            for index in group:  # the batch failed: find which clip it was, one by one
                features, failure = _guarded(Path(jobs[index][1]), extractor.extract, clips[index])
                if failure:
                    records[index] = failure
                else:
                    computed[index][key] = features
        for index, features in computed.items():
            if records[index] is None:
                records[index] = self._write(batch.store, clips[index], Path(jobs[index][1]), batch.stamps[index],
                                             features, keys)
        return records  # type: ignore[return-value]

    def _write(self, store, clip, source: Path, stamp: SourceStamp, computed: dict[str, Any],
               keys: dict[str, Any]) -> dict[str, Any]:
        """A clip's features, then its metadata (so a clip with metadata always has its features), recording the
        source as it was before decoding. A source changed or replaced since then is not recorded at all: its
        features may be of either file, and the next run extracts it again."""
        if file_identity(source) != stamp.identity:
            return _failed("the file changed while it was being extracted; run the same command again to extract "
                           "the file as it is now")
        for key, features in computed.items():
            store.register_feature(dataclasses.replace(self.spec(keys[key]), dim=keys[key].dim))
            store.write(key, clip.video_id, features.values, features.mask)
        store.write_clip(clip.video_id, {
            "video_id": clip.video_id,
            "source": str(source),
            "source_size": stamp.size,
            "source_mtime": stamp.mtime,
            "source_sha256": stamp.sha256,
            "frames": clip.n,
            "times": clip.times.tolist(),
            "frame_times": clip.frame_times.tolist(),
            "repeated_frames": clip.repeated,
            "duration": clip.duration,
            "fps": clip.fps,
            "has_video": clip.frames is not None,
            "video_stream": clip.video_stream,
            "has_audio": clip.audio is not None,
            "face_mask": clip.face_mask.tolist(),
            "face_boxes": [None if box[0] != box[0] else [round(float(v), 1) for v in box] for box in clip.face_boxes],
            "audio_windows": clip.windows.tolist(),
            "audio_mask": clip.audio_mask.tolist(),
        })
        return {"status": "done", "faces": int(clip.face_mask.sum()), "frames": clip.n}


def _failed(reason: str) -> dict[str, Any]:
    return {"status": "failed", "reason": reason}


def _guarded(source: Path, work, *args):
    """(work(*args), None), or (None, a failed record) when a video's own problem stops `work`."""
    from .errors import VideoReadError

    try:
        return work(*args), None
    except VideoReadError as error:
        return None, _failed(str(error).removeprefix(f"{source}: "))
    except OSError as error:
        return None, _failed(f"cannot read the file ({error.strerror or error})")
    except Exception as error:  # noqa: BLE001 - one bad clip must not stop a long run
        if os.environ.get("VIPER_DEBUG"):
            raise
        return None, _failed(f"{type(error).__name__}: {error} (VIPER_DEBUG=1 shows where)")


