"""The paper's audio features: WavLM x-vectors (`microsoft/wavlm-base-plus-sv`, 512-d), one per paper fragment.

Fragments go through the checkpoint's own feature extractor at 16 kHz and `WavLMForXVector`; the features are
its `embeddings` output as is (not L2-normalised). A batch only holds fragments of one length: WavLM-Base's
first convolution is group-normalised over time, so padding would change a fragment's x-vector with its batch
mates. The paper's fragments are equal (half at the two ends, +-1 sample of rounding), so this costs a few
forward passes per clip, and a fragment's features never depend on how it was batched.

Short fragments: the x-vector head needs two frames after its TDNN layers, about 0.33 s of audio for the default
config (computed from the model's config). A fragment shorter than that (e.g. 3.4 s / 32 = 0.1 s) is zero-padded
at its end up to that minimum rather than masked, so short clips keep audio features; fragments shorter than
one 25 ms window, or without audio, are masked.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ViperError
from ..hf import load_config, load_model, load_preprocessor, prepare
from ..video import AUDIO_RATE
from .base import Extractor, Features, register_extractor
from .batching import NOT_IN_IDENTITY, batched_features

if TYPE_CHECKING:
    from ..sampled_video import SampledVideo

MIN_FRAGMENT = 400  # samples: one 25 ms window, the shortest fragment worth embedding


def min_samples(config) -> int:
    """Shortest input for which WavLMForXVector gives finite output: 2 frames left after the TDNN layers
    (its statistics pooling takes a standard deviation), traced back through the convolutional front end."""
    frames = 2 + sum((k - 1) * d for k, d in zip(config.tdnn_kernel, config.tdnn_dilation, strict=True))
    for kernel, stride in reversed(list(zip(config.conv_kernel, config.conv_stride, strict=True))):
        frames = (frames - 1) * stride + kernel
    return frames


def padded_length(fragment: np.ndarray, minimum: int) -> int:
    return max(len(fragment), minimum)


@dataclass
class WavlmConfig:
    model: str = "microsoft/wavlm-base-plus-sv"  # hub id (local cache only) or a folder
    batch_size: int = field(default=16, metadata=NOT_IN_IDENTITY)  # items per forward pass


@register_extractor
class WavlmAudio(Extractor):
    """WavLM x-vector of each audio fragment."""

    modality = "audio"
    backend = "wavlm"
    version = "1"
    Config = WavlmConfig

    @functools.cached_property
    def dim(self) -> int:
        return load_config(self.config.model, self.name).xvector_output_dim

    def load(self) -> None:
        from transformers import AutoFeatureExtractor, AutoModelForAudioXVector

        self._features = load_preprocessor(AutoFeatureExtractor, self.config.model, self.name)
        if self._features.sampling_rate != AUDIO_RATE:
            raise ViperError(f"{self.config.model} expects {self._features.sampling_rate} Hz audio, viper gives 16 kHz")
        self._model = prepare(load_model(AutoModelForAudioXVector, self.config.model, self.name), self.device)
        self._min_samples = min_samples(self._model.config)

    def extract_batch(self, clips: list[SampledVideo]) -> list[Features]:
        self.ensure_loaded()
        items = [[f if len(f) >= MIN_FRAGMENT else None for f in clip.audio_fragments()] for clip in clips]
        length = functools.partial(padded_length, minimum=self._min_samples)
        return batched_features(items, self.embed, self.dim, self.config.batch_size, length, same_key_batches=True)

    def embed(self, fragments: list[np.ndarray]) -> np.ndarray:
        """(B, 512) x-vectors; fragments under the model's minimum are zero-padded to it first."""
        import torch

        padded = [np.pad(f, (0, padded_length(f, self._min_samples) - len(f))).astype(np.float32) for f in fragments]
        inputs = self._features(padded, sampling_rate=AUDIO_RATE, padding=True, return_tensors="pt")
        inputs = {key: value.to(self.device) for key, value in inputs.items()}
        inputs["input_values"] = inputs["input_values"].to(self._model.dtype)
        with torch.inference_mode():
            return self._model(**inputs).embeddings.float().cpu().numpy()
