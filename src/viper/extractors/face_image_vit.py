"""The paper's face image features: the CLS token of a Vision Transformer, one vector per face crop.

`face_image:vit` is ViT-Base (`google/vit-base-patch16-224-in21k`, 768-d) and `face_image:vit-face` ViT-Face
(`nateraw/vit-age-classifier`, a ViT-Base fine-tuned on faces; its classifier head is not used). Any ViT-family
checkpoint (hub id in the local cache, or a folder) works through `model`.

Pooling: by default the CLS token of the last encoder layer *before* the final layer norm
(`hidden_states[-1][:, 0]`), which is what the authors' code extracts, so features match the paper's. Set
`final_norm=True` for the normalised CLS (`last_hidden_state[:, 0]`), the usual transformers convention.
Frames without a face crop are masked.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..hf import load_config, load_model, load_preprocessor, pixel_values, prepare
from .base import Extractor, Features, register_extractor
from .batching import NOT_IN_IDENTITY, batched_features

if TYPE_CHECKING:
    from ..sampled_video import SampledVideo


@dataclass
class VitConfig:
    model: str = "google/vit-base-patch16-224-in21k"  # hub id (local cache only) or a folder
    final_norm: bool = False  # False: CLS before the final layer norm, as the authors did
    batch_size: int = field(default=32, metadata=NOT_IN_IDENTITY)  # items per forward pass


@dataclass
class VitFaceConfig(VitConfig):
    model: str = "nateraw/vit-age-classifier"


@register_extractor
class VitImage(Extractor):
    """ViT CLS embedding of each face crop."""

    modality = "face_image"
    backend = "vit"
    version = "1"
    Config = VitConfig

    @functools.cached_property
    def dim(self) -> int:
        return load_config(self.config.model, self.name).hidden_size

    def load(self) -> None:
        from transformers import AutoImageProcessor, AutoModel

        self._processor = load_preprocessor(AutoImageProcessor, self.config.model, self.name)
        self._model = prepare(load_model(AutoModel, self.config.model, self.name), self.device)

    def extract_batch(self, clips: list[SampledVideo]) -> list[Features]:
        self.ensure_loaded()
        items = [clip.face_crops for clip in clips]
        return batched_features(items, self.embed, self.dim, self.config.batch_size)

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """(B, hidden) CLS vectors of RGB uint8 crops."""
        import torch

        pixels = pixel_values(self._processor, crops, self.device, self._model.dtype)
        with torch.inference_mode():
            outputs = self._model(pixel_values=pixels, output_hidden_states=not self.config.final_norm)
        tokens = outputs.last_hidden_state if self.config.final_norm else outputs.hidden_states[-1]
        return tokens[:, 0].float().cpu().numpy()


@register_extractor
class VitFaceImage(VitImage):
    """The same, with the paper's ViT-Face checkpoint as default."""

    backend = "vit-face"
    Config = VitFaceConfig
