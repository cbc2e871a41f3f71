"""`viper predict`: videos to per-emotion scores with viper's general model or a trained run, extracting exactly the
features the model reads."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import VideoReadError, ViperError
from ..face_choice import check_faces
from ..progress import Hook, notify
from ..settings import check_device
from .clip_prediction import ClipPrediction, Coverage, largest_warning, people_warning

if TYPE_CHECKING:
    from ..checkpoint import ModelBundle
    from ..sampled_video import SampledVideo
    from ..windows import Window


AUDIO_MODALITIES = ("audio",)  # every other modality is read from the face
PER_FRAME = ("fau:blendshapes", "expression:general")  # the named per-frame values `--per-frame` always shows
SMALL_SIDE = 160  # px: below this on the shorter side, a "no face found" warning suggests --no-face-crop


class Predictor:
    """A checkpoint (or, without one, viper's general model) with the extractors it reads, loaded once; call it on
    a video path.

    The checkpoint names its extractors (backend, version, config, frames, face-crop setting); the same ones
    run here, so a prediction sees the features the model was trained on. A checkpoint trained with person_norm
    is refused: a single video carries no person's mean to subtract. A still image is one frame: scored once by
    the general model (it pools any number of frames), repeated to N for a checkpoint trained on N frames.
    `faces` says whose face is scored (face_choice): main, all (a prediction per person) or largest.
    """

    def __init__(self, checkpoint: Path | str | None = None, device: str = "cpu", also: Iterable[str] = (),
                 face_crop: bool = True, faces: str = "main", runtime: str | None = None) -> None:
        """`also`: extractors to run beside the model's own (e.g. `PER_FRAME` for `frame_table`), read by nobody
        but the caller. `face_crop=False`: every frame is taken whole as the face (inputs that are face crops).
        `runtime`: onnx or torch runs the networks (default: viper.runtime's choice)."""
        from ..extraction import ExtractConfig, Extraction, configs_from_features
        from ..general_model import GeneralModel

        check_device(device)
        self.faces = check_faces(faces)
        if checkpoint is None:
            from ..checkpoint import general_model_bundle

            self.bundle: ModelBundle = general_model_bundle(device=device)
        else:
            from ..checkpoint import load_checkpoint

            self.bundle = load_checkpoint(checkpoint, device=device)
        any_length = isinstance(self.bundle.model, GeneralModel)
        self.decoding = {"still_frames": 1 if any_length else None, "whole_frames": not face_crop, "faces": faces}
        if self.bundle.train_config.get("person_norm"):
            raise ViperError(
                f"{self.bundle.path} was trained with person_norm: its inputs are features minus the person's mean "
                "over their clips, which one video does not give. Score that person's clips with `viper evaluate` "
                "on a store whose manifest has a person column, or use a run trained without --person-norm"
            )
        self.extractions = []
        configs = configs_from_features(self.bundle.features, self.bundle.n_frames)
        extra = [spec for spec in also if spec not in {feature.name for feature in self.bundle.features}]
        default = ExtractConfig(frames=self.bundle.n_frames, extractors=[])
        same = [c for c in configs if (c.face_crop, c.face_detector, c.face_margin) ==
                (default.face_crop, default.face_detector, default.face_margin)]
        if extra:  # into the clip decoded with the default face settings, so no video is decoded twice for them
            if not same:
                configs.append(default)
                same = [default]
            same[0].extractors.extend(extra)
        for config in configs:
            config.device, config.runtime = device, runtime
            extraction = Extraction(config)
            keys = extraction.keys()
            for feature in self.bundle.features:
                if feature.face_crop == config.face_crop and feature.key not in keys:
                    raise ViperError(
                        f"{self.bundle.path}: trained on {feature.key} (version {feature.version}), but this "
                        f"viper's {feature.name} extractor differs; re-train or install that version"
                    )
            extraction.load()
            self.extractions.append((extraction, keys))

    def decode(self, video: Path | str, faces: str | None = None) -> list[SampledVideo]:
        """The video decoded with its faces, once per face-crop setting of the checkpoint (the part of a prediction
        that can run in another thread while the models score the previous video); `faces` in place of the
        predictor's (a live camera frame: the largest, with no people to follow over one frame)."""
        decoding = self.decoding | ({"faces": faces} if faces else {})
        return [extraction.clip(Path(video), **decoding) for extraction, _ in self.extractions]

    def score_people(self, video: Path | str, decoded: list[SampledVideo],
                     window: Window | None = None) -> list[ClipPrediction]:
        """The predictions of decoded clips: with faces `all`, one per person seen on them (in order of appearance;
        one without a face when nobody is), else one."""
        people = [seen.track for seen in decoded[0].people]
        if self.faces != "all" or not people:
            return [self.score(video, decoded, window)]
        return [self.score(video, [clip.for_person(track) if clip.tracked is not None else clip for clip in decoded],
                           window) for track in people]

    def score(self, video: Path | str, decoded: list[SampledVideo], window: Window | None = None) -> ClipPrediction:
        """Extract the checkpoint's features from the decoded clips (of `window` of the video, when given) and run
        the model."""
        from ..checkpoint import predict_arrays
        from ..tokens import build_tokens

        video = Path(video)
        clips, features, extractors = {}, {}, {}
        for (_, keys), clip in zip(self.extractions, decoded, strict=True):
            clips |= dict.fromkeys(keys, clip)
            features |= {key: extractor.extract(clip) for key, extractor in keys.items()}
            extractors |= keys
        tokens, _, modality_masks = build_tokens(features, self.bundle.keys)
        scores = predict_arrays(self.bundle, tokens[None], modality_masks[None])[0]
        clip = decoded[0]
        coverage = Coverage(frames=clip.n, face=int(clip.face_mask.sum()), audio=int(clip.sound_mask.sum()),
                            people=None if clip.tracked is None else len(clip.people))
        modalities = {feature.modality for feature in self.bundle.features}
        face_based, audio_based = bool(modalities - set(AUDIO_MODALITIES)), bool(modalities & set(AUDIO_MODALITIES))
        warnings = coverage.warnings(face_based, audio_based)
        if face_based and not coverage.face and (hint := small_frame_hint(clip)):
            warnings.insert(1, hint)
        if face_based and self.faces == "main" and (several := people_warning(clip)):
            warnings.append(several)
        if face_based and self.faces == "largest" and not self.decoding["whole_frames"]:
            cropped = next(((extraction.config.device, found) for (extraction, _), found in
                            zip(self.extractions, decoded, strict=True) if extraction.config.face_crop), None)
            if cropped and (mixed := largest_warning(cropped[1], cropped[0])):
                warnings.append(mixed)
        return ClipPrediction(
            video=video,
            clips=clips,
            features=features,
            extractors=extractors,
            scores=dict(zip(self.bundle.emotions, map(float, scores), strict=True)),
            coverage=coverage,
            warnings=warnings,
            bundle=self.bundle,
            window=window,
            person=clip.person,
            seen=next((seen for seen in clip.people if seen.track == clip.person), None),
        )


    def many(self, videos: Iterable[Path]) -> Iterator[tuple[Path, list[ClipPrediction] | VideoReadError]]:
        """(video, its predictions (`score_people`) or its read error) in order, the next video decoding in a second
        thread while the models score the current one."""

        def decoded(video: Path) -> tuple[Path, list[SampledVideo] | VideoReadError]:
            try:
                return video, self.decode(video)
            except VideoReadError as error:
                return video, error

        for video, clips in read_ahead(map(decoded, videos)):
            yield video, clips if isinstance(clips, VideoReadError) else self.score_people(video, clips)

    def windows(self, video: Path | str, seconds: float) -> Iterator[ClipPrediction]:
        """A recording scored window by window (consecutive spans of `seconds`, N frames each, as a clip would be),
        the next window decoding in a second thread; raises VideoReadError when the file cannot be read at all.
        People keep their number over the windows; with faces `main`, a window whose main person (the one seen most
        so far) is not the previous window's says so."""
        video = Path(video)
        streams = [extraction.windows(video, seconds, **self.decoding) for extraction, _ in self.extractions]
        before = None
        for decoded in read_ahead(zip(*streams, strict=True)):  # one (window, clip) per face-crop setting
            for prediction in self.score_people(video, [clip for _, clip in decoded], window=decoded[0][0]):
                if self.faces == "main" and before is not None and prediction.person not in (None, before):
                    prediction.warnings.append(f"the scores are now of person {prediction.person}, seen most so "
                                               f"far (of person {before} before this window)")
                before = prediction.person if prediction.person is not None else before
                yield prediction


def small_frame_hint(clip: SampledVideo) -> str | None:
    """For a clip without a face whose frames are small (a face crop from a dataset, a thumbnail): the suggestion
    to take the whole frame as the face; None for larger frames."""
    if clip.frames is None or min(clip.frames[0].shape[:2]) >= SMALL_SIDE:
        return None
    height, width = clip.frames[0].shape[:2]
    return (f"the {clip.media} is {width}x{height} px: a face this small, or cropped this tightly, can escape the "
            "detector; if it is a face crop, try --no-face-crop (Python: face_crop=False)")


def read_ahead(items: Iterator) -> Iterator:
    """The items of an iterator, each next one made in a second thread while the caller works on the current one
    (PyAV decodes and torch computes without holding the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    end = object()
    with ThreadPoolExecutor(1, thread_name_prefix="viper-decode") as reader:
        upcoming = reader.submit(next, items, end)
        while (item := upcoming.result()) is not end:
            upcoming = reader.submit(next, items, end)
            yield item


def predictions(
    videos: list[Path | str] | Path | str, checkpoint: Path | str | None, device: str, also: Iterable[str] = (),
    window: float | None = None, hook: Hook | None = None, face_crop: bool = True, faces: str = "main",
    runtime: str | None = None,
) -> Iterator[tuple[Path, ClipPrediction | str]]:
    """(video, its prediction or the reason it has none), in the order given (a folder: its videos and images);
    with `window`, one prediction per window of each video, in time order; `face_crop=False` takes whole frames as
    the face; `faces` all: one prediction per person (of each window). When no video exists, no model loads."""
    from ..checkpoint import checkpoint_file
    from ..runtime import check_setting

    check_setting(runtime, device)  # before the device's own checks: onnx on cuda is wrong on any machine
    check_device(device)
    check_faces(faces)
    if window is not None:
        from ..windows import check_window

        window = check_window(window)
    if checkpoint is not None:
        checkpoint_file(checkpoint)  # a wrong run folder is refused first, before any model loads
    videos, problems = video_list(videos)
    readable = [video for video in videos if video not in problems]
    predictor = Predictor(checkpoint, device=device, also=also, face_crop=face_crop, faces=faces,
                          runtime=runtime) if readable else None
    scored = predictor.many(readable) if predictor and window is None else iter(())
    for video in videos:
        if video in problems:
            yield video, problems[video]
        elif window is None:
            _, people = next(scored)
            if isinstance(people, VideoReadError):
                yield video, str(people)
            for prediction in () if isinstance(people, VideoReadError) else people:
                yield video, prediction
        else:
            try:
                for prediction in predictor.windows(video, window):
                    notify(hook, "windows", completed=prediction.window.index + 1, total=prediction.window.count,
                           details={"video": video.name})
                    yield video, prediction
            except VideoReadError as error:
                yield video, str(error)


def video_list(videos: list[Path | str] | Path | str) -> tuple[list[Path], dict[Path, str]]:
    """The videos to score, in the order given (a folder: its videos, as `viper extract` finds them, and its
    images), and why those that cannot be read cannot (missing, a folder without videos)."""
    from ..images import IMAGE_SUFFIXES
    from ..manifest import scan_folder
    from ..video import VIDEO_SUFFIXES

    given = [Path(video) for video in ([videos] if isinstance(videos, (str, Path)) else videos)]  # not characters
    found, problems = [], {}
    for path in given:
        try:
            inside = scan_folder(path, VIDEO_SUFFIXES + IMAGE_SUFFIXES)["path"] if path.is_dir() else None
            found += [path] if inside is None else [_under(path, Path(video)) for video in inside]
        except ViperError as error:  # a folder without videos
            found.append(path)
            problems[path] = str(error)
    problems |= {video: f"{video}: file does not exist" for video in found if not video.exists()}
    return found, problems


def _under(folder: Path, video: Path) -> Path:
    """A video found in `folder` as the folder was given (relative stays relative, as a file given alone prints);
    its resolved path where it lies elsewhere (a link out of the folder)."""
    try:
        return folder / video.relative_to(folder.resolve())
    except ValueError:
        return video


def predict(
    videos: list[Path | str] | Path | str, checkpoint: Path | str | None = None, device: str = "cpu",
    window: float | None = None, hook: Hook | None = None, face_crop: bool = True, faces: str = "main",
    runtime: str | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Per readable video or image `{"video": path, "media": "video" | "image", "scores": {emotion: value},
    "coverage": {"frames": N, "face": k, "audio": m}, "warnings": [...]}`, and (path, reason) failures. Without a
    checkpoint the scores are the general model's probabilities of the 7 basic emotions (they sum to 1). With
    `window` (seconds), one record per window of each video, with its `window` index and its `start` and `end` in
    seconds (`trace_table` makes a table); `hook` hears of each window. `face_crop=False`: each frame is taken
    whole as the face (for inputs that are face crops already). `faces`: whose face (main: the person seen most,
    all: a record per person, largest: the largest of each frame); with main or all, records carry `person`,
    `person_frames`, `person_first`, `person_last`, `person_box`, and coverage `people`. `runtime`: onnx or torch
    runs the networks (default: viper.runtime's choice; the same scores)."""
    results, failures = [], []
    for video, prediction in predictions(videos, checkpoint, device, window=window, hook=hook, face_crop=face_crop,
                                         faces=faces, runtime=runtime):
        if isinstance(prediction, str):
            failures.append((str(video), prediction))
        else:
            results.append(prediction.record())
    return results, failures


def predict_frames(
    videos: list[Path | str] | Path | str, checkpoint: Path | str | None = None, device: str = "cpu",
    window: float | None = None, hook: Hook | None = None, face_crop: bool = True, faces: str = "main",
    runtime: str | None = None,
) -> tuple[Any, list[dict[str, Any]], list[tuple[str, str]]]:
    """The per-frame table of every readable video (one pandas DataFrame, `ClipPrediction.frame_table`'s columns;
    the blendshapes and expression probabilities are always in it; with `window`, N frames per window and the
    window's columns), the records `predict` returns, and (path, reason) failures."""
    import pandas as pd

    tables, results, failures = [], [], []
    for video, prediction in predictions(videos, checkpoint, device, also=PER_FRAME, window=window, hook=hook,
                                         face_crop=face_crop, faces=faces, runtime=runtime):
        if isinstance(prediction, str):
            failures.append((str(video), prediction))
        else:
            tables.append(prediction.frame_table())
            results.append(prediction.record())
    return (pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()), results, failures


def check_table_path(path: Path | str) -> Path:
    """`path` if a per-frame table can be written there, checked before any model loads (scoring many videos to
    lose the table at the end costs the user the whole run): a .csv or .parquet name (Parquet with pyarrow), not a
    folder, in a folder where a file can be made (a probe file is made and removed, as `atomic_output` would)."""
    import tempfile

    path = Path(path)
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise ViperError(f"--per-frame {path}: name a .csv or .parquet file")
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ViperError(f"--per-frame {path}: writing Parquet needs pyarrow (pip install pyarrow), or name a "
                             ".csv") from None
    if path.is_dir():
        raise ViperError(f"--per-frame {path}: is a folder; name a .csv or .parquet file")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # missing folders are made when the table is written
        folder = folder.parent
    if not folder.is_dir():
        raise ViperError(f"--per-frame {path}: {folder} is not a folder")
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise ViperError(f"--per-frame {path}: cannot write in {folder} ({error.strerror or error})") from None
    os.close(handle)
    os.unlink(probe)
    return path


def write_table(table, path: Path | str) -> None:
    """A per-frame table as CSV or Parquet (by suffix), atomically; Parquet needs pyarrow. A failed write is a
    ViperError naming the file and why."""
    import io

    from ..atomic import atomic_write_bytes, atomic_write_text

    path = Path(path)
    try:
        if path.suffix.lower() == ".parquet":
            buffer = io.BytesIO()
            try:
                table.to_parquet(buffer, index=False, engine="pyarrow")
            except ImportError as error:
                raise ViperError(f"{path}: writing Parquet needs pyarrow (pip install pyarrow), or name a .csv") \
                    from error
            atomic_write_bytes(path, buffer.getvalue())
        else:
            atomic_write_text(path, table.to_csv(index=False))
    except OSError as error:
        raise ViperError(f"{path}: cannot write the per-frame table ({error.strerror or error})") from error


def format_records(results: list[dict[str, Any]], output_format: str, header: bool = True) -> str:
    """`predict`'s records as `viper predict` prints them: one JSON object per line, or CSV
    (`video,media,[window,start,end,]<emotions>,frames,face_frames,audio_frames,warnings`; the header line only with
    `header`, so records can be printed as they come)."""
    import csv
    import io
    import json

    if output_format == "json":
        return "".join(json.dumps(result) + "\n" for result in results)
    if not results:
        return ""
    from ..trace import record_row

    text = io.StringIO()
    rows = [record_row(result) for result in results]
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    if header:
        writer.writeheader()
    for row, result in zip(rows, results, strict=True):
        writer.writerow(row | {emotion: f"{value:.6f}" for emotion, value in result["scores"].items()})
    return text.getvalue()
