"""viper's general model: what `viper predict` uses without a checkpoint, and what training is anchored on.

It has no weights of its own and was never fitted to any clip viper ships: it pools the `expression:general`
evidence (per face, a probability per basic emotion from networks trained on many people) over the clip by the
mean of the frames' log-probabilities (their normalised geometric mean). A neutral clip stays neutral (no frame
is dropped for being neutral), and an expression held over the frames with a face wins over one seen on a few.
A clip without any face gets the uniform distribution (no evidence), and its prediction carries a warning.
"""

from __future__ import annotations

import numpy as np

from .extractors.expression_general import BASIC_EMOTIONS


def pool_expressions(probs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(B, N, 7) per-frame probabilities and (B, N) validity -> (B, 7) clip probabilities: the softmax of the mean
    log-probability over the valid frames; uniform where a clip has no valid frame. numpy, so a prediction needs
    no torch; `model.pool_expressions_torch` is its twin inside a trained model's graph (tested equal)."""
    probs = np.asarray(probs, np.float32)
    weights = np.asarray(valid, np.float32)[..., None]
    log_probs = np.log(np.maximum(probs, 1e-12)) * weights
    mean = log_probs.sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
    shifted = np.exp(mean - mean.max(axis=-1, keepdims=True))
    pooled = shifted / shifted.sum(axis=-1, keepdims=True)
    uniform = np.full_like(pooled, 1.0 / probs.shape[-1])
    return np.where(np.asarray(valid).any(axis=1, keepdims=True), pooled, uniform)


def expression_validity(values: np.ndarray) -> np.ndarray:
    """Frames whose expression evidence is present: its probabilities sum to 1 (masked frames hold zeros)."""
    return np.asarray(values).sum(axis=-1) > 0.5


class GeneralModel:
    """Tokens holding only `expression:general` (B, N, 7) and masks (B, N) or (B, N, 1) -> clip probabilities
    (B, 7), in BASIC_EMOTIONS order."""

    token_dims = (len(BASIC_EMOTIONS),)
    num_outputs = len(BASIC_EMOTIONS)

    def __call__(self, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask, bool)
        frame_mask = mask if mask.ndim == 2 else mask.all(axis=-1)
        values = np.asarray(tokens, np.float32)
        return pool_expressions(values, frame_mask & expression_validity(values))


SYNONYMS = {"anger": "angry", "fear": "fearful", "afraid": "fearful", "surprise": "surprised", "happiness": "happy",
            "joy": "happy", "sadness": "sad", "disgusted": "disgust", "calm": "", "contempt": ""}


def anchoring(modalities: list[str], dims: list[int], emotions: list[str]) -> dict[str, object]:
    """The Perceiver settings that anchor a model on the general model (`anchor_start`, `anchor_map`), or {} when
    the tokens hold no `expression` modality or no output is a basic emotion (by name: angry/anger, ...)."""
    if "expression" not in modalities:
        return {}
    mapped = []
    for emotion in emotions:
        name = emotion.strip().lower()
        name = SYNONYMS.get(name, name)
        mapped.append(BASIC_EMOTIONS.index(name) if name in BASIC_EMOTIONS else -1)
    if max(mapped) < 0:
        return {}
    start = sum(dims[: modalities.index("expression")])
    return {"anchor_start": start, "anchor_map": mapped}
