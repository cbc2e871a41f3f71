"""`expression:general`, the per-frame evidence of viper's general model: a probability per basic emotion from
expression networks trained on many people, so it means the same on a face viper has never seen.

Three experts, each fed as its own pipeline feeds it (crop, size, colour):
- `fer`: mini-Xception (FER2013, ~28k grey faces), cropped as the fer package crops for it: OpenCV's Haar face box
  squared and grown by 10 px a side. BlazeFace's box relates to that Haar box by a fixed geometry, measured on 242
  faces of 142 people (`benchmarks/crop_geometry.py`): the fer crop is 1.21 times BlazeFace's side, centred
  0.147 of the side higher. Its log-probabilities lose `prior_shift` of the log of FER2013's class frequencies
  (FER2013 has 13x fewer disgust than happy faces);
- `affectnet`: Intel's emotions-recognition-retail-0003 (AffectNet, 5 classes), on the detector's box grown 1.2
  times, the default of Open Model Zoo's face demo that feeds it (`-bb_enlarge_coef`);
- `face_api`: face-api.js's expression net (7 classes, several public datasets and web images), on the box of
  dlib's 68 landmarks grown by 20 % (face-api's `alignedRect`), which is 1.11 times BlazeFace's side, centred
  0.035 of it lower (same measurement).
They are combined by the mean of their log-probabilities (a product of experts: each may veto). An expert with no
class for an emotion (AffectNet: fear, disgust) abstains on it: the others say how much mass those classes get,
and it only ranks the classes it knows. One temperature (fitted for calibration only: it changes no ranking)
turns the mean into probabilities. All three experts over-call neutral on the 142 people of the London and Canada
sets (each alone: neutral 90-98 %, smiles 39-71 %), as their training sets hold far more neutral faces than most
emotions: `neutral_bias` takes a constant from neutral's log-probability, the largest that still keeps 95 % of
those people's neutral faces neutral. Frames without a face are masked. benchmarks/general_model.py measures each
part on many people.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..faces import FACE_API_CROP, CropRule
from .base import Extractor, register_default

if TYPE_CHECKING:
    from ..sampled_video import SampledVideo
    from .base import Features

BASIC_EMOTIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")
# each expert's output order, in BASIC_EMOTIONS names
FER_CLASSES = ("angry", "disgust", "fearful", "happy", "sad", "surprised", "neutral")
AFFECTNET_CLASSES = ("neutral", "happy", "sad", "surprised", "angry")
FACE_API_CLASSES = BASIC_EMOTIONS
# FER2013's training set per class (Goodfellow et al. 2013), in BASIC_EMOTIONS order
FER2013_TRAIN_COUNTS = np.array([4965, 7215, 4830, 3995, 4097, 436, 3171], dtype=np.float64)
EXPERTS = ("fer", "affectnet", "face_api")


CROPS = {"fer": CropRule(1.21, -0.147), "affectnet": CropRule(1.2), "face_api": FACE_API_CROP}
INPUT_SIZES = {"fer": 64, "affectnet": 64, "face_api": 112}


@dataclass
class ExpressionConfig:
    experts: list[str] = field(default_factory=lambda: list(EXPERTS))
    flip: bool = False  # also each face's mirror image (log-probabilities averaged): no gain measured, 2x the cost
    prior_shift: float = 1.0  # share of log(FER2013 class frequency) removed from mini-Xception's log-probabilities
    neutral_bias: float = 1.25  # taken from neutral's log-probability: the most that keeps 95 % of neutral faces
    temperature: float = 1.37  # divides the combined log-probabilities (calibration; no ranking changes)
    crops: dict[str, list[float]] = field(default_factory=dict)  # expert -> [scale, shift]: overrides CROPS


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def shift_prior(log_probs: np.ndarray, share: float) -> np.ndarray:
    """(B, 7) log-probabilities in BASIC_EMOTIONS order with `share` of FER2013's class-frequency log-prior
    removed (1: the classes as if FER2013 had held them equally often), renormalised."""
    prior = FER2013_TRAIN_COUNTS / FER2013_TRAIN_COUNTS.sum()
    return log_softmax(log_probs - share * np.log(prior))


def to_basic(probs: np.ndarray, classes: tuple[str, ...]) -> np.ndarray:
    """(B, K) probabilities in an expert's order -> (B, 7) log-probabilities in BASIC_EMOTIONS order, NaN for the
    emotions the expert has no class for (it abstains on them)."""
    out = np.full((len(probs), len(BASIC_EMOTIONS)), np.nan)
    for column, name in enumerate(classes):
        out[:, BASIC_EMOTIONS.index(name)] = np.log(np.clip(probs[:, column], 1e-7, 1.0))
    return out


def combine(experts: list[np.ndarray]) -> np.ndarray:
    """Per-expert (B, 7) log-probabilities (NaN: abstains) -> (B, 7) combined log-probabilities, the normalised
    mean of the experts' log-probabilities. An abstaining expert's missing classes take the full experts'
    consensus, and its own classes share what the consensus leaves them (so it ranks only what it knows); without
    a full expert, its missing classes get nothing."""
    full = [expert for expert in experts if np.isfinite(expert).all()]
    consensus = log_softmax(np.mean(full, axis=0)) if full else None
    filled = []
    for expert in experts:
        missing = np.isnan(expert)
        if missing.any():
            if consensus is None:
                expert = np.where(missing, -np.inf, expert)
            else:
                kept = np.log(np.where(missing, 0.0, np.exp(consensus)).sum(axis=1, keepdims=True))
                expert = np.where(missing, consensus, expert + kept)
        filled.append(expert)
    return log_softmax(np.mean(filled, axis=0))


def expert_log_probs(name: str, faces: list[np.ndarray], device: str, prior_shift: float = 0.0) -> np.ndarray:
    """One expert's (B, 7) log-probabilities (NaN where it abstains) for face crops cut by its own rule."""
    if name == "fer":
        from ..backbones import mini_xception

        return shift_prior(to_basic(mini_xception.classify(faces, device)[0], FER_CLASSES), prior_shift)
    if name == "affectnet":
        from ..backbones import affectnet_emotions

        return to_basic(affectnet_emotions.classify(faces, device), AFFECTNET_CLASSES)
    from ..backbones import face_api_expression

    return to_basic(face_api_expression.classify(faces, device), FACE_API_CLASSES)


@register_default
class GeneralExpression(Extractor):
    """7 basic-emotion probabilities per face from three expression networks trained on many people; masked
    without a face."""

    modality = "expression"
    backend = "general"
    version = "2"
    Config = ExpressionConfig
    feature_names = list(BASIC_EMOTIONS)

    @property
    def dim(self) -> int:
        return len(BASIC_EMOTIONS)

    def load(self) -> None:
        unknown = sorted(set(self.config.experts) - set(EXPERTS))
        if unknown or not self.config.experts:
            from ..errors import ViperError

            raise ViperError(f"expression:general experts must be some of {', '.join(EXPERTS)}; got "
                             f"{', '.join(self.config.experts) or 'none'}")
        from ..backbones import affectnet_emotions, face_api_expression, mini_xception

        backbones = {"fer": mini_xception, "affectnet": affectnet_emotions, "face_api": face_api_expression}
        for name in self.config.experts:
            backbones[name].load(self.device)

    def crop_rule(self, expert: str) -> CropRule:
        return CropRule(*self.config.crops[expert]) if expert in self.config.crops else CROPS[expert]

    def extract_batch(self, clips: list[SampledVideo]) -> list[Features]:
        from .batching import batched_features

        self.ensure_loaded()
        items = [[(frame, box) if ok else None
                  for frame, box, ok in zip(clip.frames or [None] * clip.n, clip.face_boxes, clip.face_mask,
                                            strict=True)] for clip in clips]
        return batched_features(items, self._probabilities, self.dim, batch_size=256)

    def expert_log_probs(self, faces: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
        """Each expert's (B, 7) log-probabilities (NaN where it abstains) for (frame, box) pairs, its crops cut by
        its own rule, averaged with those of the mirrored crops when `flip`."""
        from ..faces import crop_square

        out = {}
        for name in self.config.experts:
            rule, size = self.crop_rule(name), INPUT_SIZES[name]
            crops = [crop_square(frame, rule.box(box), 0.0, size) for frame, box in faces]
            shift = self.config.prior_shift if name == "fer" else 0.0
            if self.config.flip:  # the faces and their mirror images in one forward pass
                both = expert_log_probs(name, crops + [np.ascontiguousarray(c[:, ::-1]) for c in crops], self.device,
                                        shift)
                out[name] = (both[: len(crops)] + both[len(crops):]) / 2
            else:
                out[name] = expert_log_probs(name, crops, self.device, shift)
        return out

    def _probabilities(self, faces: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        combined = combine(list(self.expert_log_probs(faces).values()))
        combined[:, BASIC_EMOTIONS.index("neutral")] -= self.config.neutral_bias
        return np.exp(log_softmax(combined / self.config.temperature)).astype(np.float32)
