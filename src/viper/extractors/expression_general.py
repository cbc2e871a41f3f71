"""`expression:general`, the per-frame evidence of viper's general model: a probability per basic emotion from
expression networks trained on many people, so it means the same on a face viper has never seen.

Per face: mini-Xception (FER2013, ~28k faces of many people) on the face and its mirror image, averaged
(horizontal-flip test-time augmentation); its log-probabilities are shifted by half the log of FER2013's class
frequencies (`PRIOR_SHIFT`: FER2013 has 13x fewer disgust than happy faces, so the network under-calls disgust and
fear; the full correction over-calls them on RAVDESS actor 05, half of it helped, see benchmarks/general_model.py).
Where the AffectNet model is installed in the assets, its 5 classes join as a second expert (product of experts:
its centred log-probabilities are added for the classes it knows, fear and disgust get no vote from it).
Values are in `viper.general_model.BASIC_EMOTIONS` order and sum to 1 on frames with a face; frames without a
face are masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .base import Extractor, Features, register_default

if TYPE_CHECKING:
    from ..sampled_video import SampledVideo

BASIC_EMOTIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # mini-Xception's order
FER_TO_BASIC = [FER_CLASSES.index(name) for name in ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")]
# FER2013's training set per class (Goodfellow et al. 2013), in BASIC_EMOTIONS order
FER2013_TRAIN_COUNTS = np.array([4965, 7215, 4830, 3995, 4097, 436, 3171], dtype=np.float64)


@dataclass
class ExpressionConfig:
    margin: float = 0.05  # margin around the detected face box, share of its side (mini-Xception reads tight crops)
    flip: bool = True  # average each face with its mirror image
    prior_shift: float = 0.5  # share of log(FER2013 class frequency) removed from mini-Xception's log-probabilities


def shift_prior(probs: np.ndarray, share: float) -> np.ndarray:
    """(B, 7) probabilities in BASIC_EMOTIONS order with `share` of FER2013's class-frequency log-prior removed."""
    prior = FER2013_TRAIN_COUNTS / FER2013_TRAIN_COUNTS.sum()
    logits = np.log(np.clip(probs, 1e-7, 1.0)) - share * np.log(prior)
    logits -= logits.max(axis=1, keepdims=True)
    shifted = np.exp(logits)
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


@register_default
class GeneralExpression(Extractor):
    """7 basic-emotion probabilities per face from expression networks trained on many people; masked without a
    face."""

    modality = "expression"
    backend = "general"
    version = "1"
    Config = ExpressionConfig
    feature_names = list(BASIC_EMOTIONS)

    @property
    def dim(self) -> int:
        return len(BASIC_EMOTIONS)

    def load(self) -> None:
        from ..backbones.mini_xception import load_mini_xception

        load_mini_xception(self.device)

    def extract_batch(self, clips: list[SampledVideo]) -> list[Features]:
        from ..backbones.mini_xception import classify, face_inputs

        self.ensure_loaded()
        faces = [face for clip in clips for face in face_inputs(clip, self.config.margin)]
        probs = classify(faces, self.device)[0] if faces else np.zeros((0, 7), np.float32)
        if self.config.flip and faces:
            probs = (probs + classify([np.ascontiguousarray(face[:, ::-1]) for face in faces], self.device)[0]) / 2
        probs = shift_prior(probs[:, FER_TO_BASIC], self.config.prior_shift)
        out, row = [], 0
        for clip in clips:
            mask = np.asarray(clip.face_mask, bool) & (clip.frames is not None)
            values = np.zeros((len(mask), self.dim), np.float32)
            values[mask] = probs[row : row + int(mask.sum())]
            row += int(mask.sum())
            out.append(Features(values, mask))
        return out
