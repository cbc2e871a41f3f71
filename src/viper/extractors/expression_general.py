"""`expression:general`, the per-frame evidence of viper's general model: a probability per basic emotion from
expression networks trained on many people, so it means the same on a face viper has never seen.

Per face, two experts, each on the face and its mirror image averaged (horizontal-flip test-time augmentation):
- mini-Xception (FER2013, ~28k grey faces of many people), its log-probabilities shifted by half the log of
  FER2013's class frequencies (`prior_shift`: FER2013 has 13x fewer disgust than happy faces, so the network
  under-calls disgust and fear; the full correction over-calls them on RAVDESS actor 05, half of it did not);
- Intel's AffectNet model (colour faces in the wild; 5 classes), mixed in with weight `affectnet`, its anger
  shared between angry and disgust and its surprise between surprised and fearful (it cannot tell them apart).
Values are in BASIC_EMOTIONS order and sum to 1 on frames with a face; frames without a face are masked.
benchmarks/general_model.py measures each part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .base import Extractor, register_default

if TYPE_CHECKING:
    from ..sampled_video import SampledVideo
    from .base import Features

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
    affectnet: float = 0.25  # weight of the AffectNet model in the mixture (0: mini-Xception alone)
    affectnet_margin: float = 0.1  # its own crop margin (it read 0-0.1 best on actor 05, 0.2 worse)


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
        if self.config.affectnet:
            from ..backbones.affectnet_emotions import load_affectnet_emotions

            load_affectnet_emotions(self.device)

    def _both_ways(self, classify, faces: list[np.ndarray]) -> np.ndarray:
        """A classifier's probabilities, averaged with those of the mirrored faces when `flip`."""
        probs = classify(faces)
        if self.config.flip:
            probs = (probs + classify([np.ascontiguousarray(face[:, ::-1]) for face in faces])) / 2
        return probs

    def extract_batch(self, clips: list[SampledVideo]) -> list[Features]:
        from ..backbones.mini_xception import INPUT_SIZE
        from ..faces import crop_square
        from .batching import batched_features

        self.ensure_loaded()
        margins = (self.config.margin, self.config.affectnet_margin) if self.config.affectnet else (self.config.margin,)
        items = [[tuple(crop_square(frame, box, margin, INPUT_SIZE) for margin in margins) if ok else None
                  for frame, box, ok in zip(clip.frames or [None] * clip.n, clip.face_boxes, clip.face_mask,
                                            strict=True)] for clip in clips]
        return batched_features(items, self._probabilities, self.dim, batch_size=256)

    def _probabilities(self, faces: list[tuple[np.ndarray, ...]]) -> np.ndarray:
        """(B, 7) probabilities of a batch of faces, each as (tight crop, wider crop for AffectNet)."""
        from ..backbones import affectnet_emotions, mini_xception

        fer = self._both_ways(lambda batch: mini_xception.classify(batch, self.device)[0], [f[0] for f in faces])
        probs = shift_prior(fer[:, FER_TO_BASIC], self.config.prior_shift)
        if self.config.affectnet:
            five = self._both_ways(lambda batch: affectnet_emotions.classify(batch, self.device), [f[1] for f in faces])
            neutral, happy, sad, surprise, anger = five.T  # its CLASSES order
            seven = np.stack([neutral, happy, sad, anger / 2, surprise / 2, anger / 2, surprise / 2], axis=1)
            probs = (1 - self.config.affectnet) * probs + self.config.affectnet * seven
        return probs
