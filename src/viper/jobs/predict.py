"""`viper predict`: videos to per-emotion scores with a trained run, extracting exactly the features it knows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import VideoReadError, ViperError

if TYPE_CHECKING:
    from ..checkpoint import ModelBundle
    from ..extractors.base import Extractor, Features
    from ..sampled_video import SampledVideo


@dataclass
class ClipPrediction:
    """One video as the model saw it: the decoded clips, every feature it read, and its scores."""

    video: Path
    clips: dict[str, SampledVideo]  # by store key: the decoded clip its features came from (one per face-crop setting)
    features: dict[str, Features]  # by store key, for every key of the checkpoint
    extractors: dict[str, Extractor]  # by store key: the loaded extractor that made those features
    scores: dict[str, float]  # emotion -> score, in the checkpoint's emotion order


class Predictor:
    """A checkpoint with the extractors it was trained on, loaded once; call it on a video path.

    The checkpoint names its extractors (backend, version, config, frames, face-crop setting); the same ones
    run here, so a prediction sees the features the model was trained on.
    """

    def __init__(self, checkpoint: Path | str, device: str = "cpu") -> None:
        from ..checkpoint import load_checkpoint
        from ..extraction import Extraction, configs_from_features

        self.bundle: ModelBundle = load_checkpoint(checkpoint, device=device)
        self.extractions = []
        for config in configs_from_features(self.bundle.features, self.bundle.n_frames):
            config.device = device
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

    def decode(self, video: Path | str) -> list[SampledVideo]:
        """The video decoded with its faces, once per face-crop setting of the checkpoint (the part of a prediction
        that can run in another thread while the models score the previous video)."""
        return [extraction.clip(Path(video)) for extraction, _ in self.extractions]

    def score(self, video: Path | str, decoded: list[SampledVideo]) -> ClipPrediction:
        """Extract the checkpoint's features from the decoded clips and run the model."""
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
        return ClipPrediction(
            video=video,
            clips=clips,
            features=features,
            extractors=extractors,
            scores=dict(zip(self.bundle.emotions, map(float, scores), strict=True)),
        )


    def many(self, videos: Iterable[Path]) -> Iterator[tuple[Path, ClipPrediction | VideoReadError]]:
        """(video, prediction or its read error) in order, the next video decoding in a second thread while the
        models score the current one."""
        from concurrent.futures import ThreadPoolExecutor

        def decoded(video: Path) -> list[SampledVideo] | VideoReadError:
            try:
                return self.decode(video)
            except VideoReadError as error:
                return error

        videos = list(videos)
        with ThreadPoolExecutor(1, thread_name_prefix="viper-decode") as reader:
            upcoming = reader.submit(decoded, videos[0]) if videos else None
            for index, video in enumerate(videos):
                clips = upcoming.result()
                if index + 1 < len(videos):
                    upcoming = reader.submit(decoded, videos[index + 1])
                yield video, clips if isinstance(clips, VideoReadError) else self.score(video, clips)


def predict(
    videos: list[Path | str], checkpoint: Path | str, device: str = "cpu"
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Scores of each readable video, `{"video": path, "scores": {emotion: value}}`, and (path, reason) failures."""
    predictor = Predictor(checkpoint, device=device)
    results, failures = [], []
    for video, prediction in predictor.many(map(Path, videos)):
        if isinstance(prediction, VideoReadError):
            failures.append((str(video), str(prediction)))
        else:
            results.append({"video": str(video), "scores": prediction.scores})
    return results, failures
