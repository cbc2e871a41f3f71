"""`viper predict`: videos to per-emotion scores with a trained run, extracting exactly the features it knows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ViperError


def predict(
    videos: list[Path | str], checkpoint: Path | str, device: str = "cpu"
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Scores of each readable video, `{"video": path, "scores": {emotion: value}}`, and (path, reason) failures.

    The checkpoint names its extractors (backend, version, config, frames, face-crop setting); the same ones
    run here, so a prediction sees the features the model was trained on.
    """
    from .checkpoint import load_checkpoint
    from .dataset import build_tokens
    from .errors import VideoReadError
    from .evaluation import predict_arrays
    from .pipeline import Extraction, configs_from_features

    bundle = load_checkpoint(checkpoint, device=device)
    extractions = []
    for config in configs_from_features(bundle.features, bundle.n_frames):
        config.device = device
        extraction = Extraction(config)
        keys = extraction.keys()
        for feature in bundle.features:
            if feature["face_crop"] == config.face_crop and feature["key"] not in keys:
                raise ViperError(
                    f"{bundle.path}: trained on {feature['key']} (version {feature['version']}), but this viper's "
                    f"{feature['modality']}:{feature['backend']} extractor differs; re-train or install that version"
                )
        extraction.load()
        extractions.append((extraction, keys))

    results, failures = [], []
    for video in map(Path, videos):
        try:
            features = {}
            for extraction, keys in extractions:
                clip = extraction.clip(video)
                features |= {key: extractor.extract(clip) for key, extractor in keys.items()}
        except VideoReadError as error:
            failures.append((str(video), str(error)))
            continue
        tokens, _, modality_masks = build_tokens(features, bundle.keys)
        scores = predict_arrays(bundle, tokens[None], modality_masks[None])[0]
        results.append({"video": str(video), "scores": dict(zip(bundle.emotions, map(float, scores), strict=True))})
    return results, failures
