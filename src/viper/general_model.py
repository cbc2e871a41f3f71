"""viper's general model: what `viper predict` uses without a checkpoint, and what training is anchored on.

It has no weights of its own and was never fitted to any clip viper ships: it pools the `expression:general`
evidence (per face, a probability per basic emotion from networks trained on many people) over the clip by the
mean of the frames' log-probabilities (their normalised geometric mean). A neutral clip stays neutral (no frame
is dropped for being neutral), and an expression held over the frames with a face wins over one seen on a few.
A clip without any face gets the uniform distribution (no evidence), and its prediction carries a warning.
"""

from __future__ import annotations

import torch
from torch import nn

from .extractors.expression_general import BASIC_EMOTIONS


def pool_expressions(probs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, N, 7) per-frame probabilities and (B, N) validity -> (B, 7) clip probabilities: the softmax of the mean
    log-probability over the valid frames; uniform where a clip has no valid frame."""
    weights = valid.to(probs.dtype)[..., None]
    log_probs = torch.log(probs.clamp(min=1e-12)) * weights
    mean = log_probs.sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    pooled = torch.softmax(mean, dim=-1)
    uniform = torch.full_like(pooled, 1.0 / probs.shape[-1])
    return torch.where(valid.any(dim=1, keepdim=True), pooled, uniform)


def expression_validity(values: torch.Tensor) -> torch.Tensor:
    """Frames whose expression evidence is present: its probabilities sum to 1 (masked frames hold zeros)."""
    return values.sum(dim=-1) > 0.5


class GeneralModel(nn.Module):
    """Tokens holding only `expression:general` (B, N, 7) -> clip probabilities (B, 7), in BASIC_EMOTIONS order."""

    token_dims = (len(BASIC_EMOTIONS),)
    num_outputs = len(BASIC_EMOTIONS)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        frame_mask = mask if mask.dim() == 2 else mask.all(dim=-1)
        values = tokens.float()
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
