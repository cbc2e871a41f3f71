"""The paper's caption features: CLIP picks the template sentence that fits each face best, RoBERTa embeds it.

CLIP (`openai/clip-vit-base-patch32` by default; the paper used one fine-tuned on image emotion recognition, give
its folder through `clip_model`) scores each face crop against the 53 templates of `assets/templates.json` (the
authors' list); the highest cosine similarity wins. The winning sentence's features are the CLS token of
RoBERTa's last hidden state (`roberta-base`, 768-d) with the sentence padded/truncated to 16 tokens, as the
authors did. Since there are only 53 sentences, both the CLIP text features and the 53 RoBERTa vectors are
computed once per process; per frame only the image goes through a model. Frames without a face are masked.
`choose(clips)` gives the chosen template index per frame (-1 where masked) for inspection, as caption:rule-minilm.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..hf import load_config, load_model, load_preprocessor, pixel_values, prepare
from ..templates import caption_templates as templates
from .base import Extractor, Features, register_extractor
from .batching import NOT_IN_IDENTITY, batched_features, chosen_rows

if TYPE_CHECKING:
    from ..sampled_video import SampledVideo


@dataclass
class ClipCaptionConfig:
    clip_model: str = "openai/clip-vit-base-patch32"  # hub id (local cache only) or a folder
    text_model: str = "roberta-base"
    max_tokens: int = 16  # RoBERTa input padded/truncated to this many tokens, as the authors did
    batch_size: int = field(default=32, metadata=NOT_IN_IDENTITY)  # items per forward pass


def pooled(output):
    """The projected CLIP features: transformers 5 returns an output object from get_*_features, 4.x a tensor."""
    import torch

    return output if isinstance(output, torch.Tensor) else output.pooler_output


@register_extractor
class ClipCaption(Extractor):
    """RoBERTa CLS embedding of the template sentence CLIP matches to each face."""

    modality = "caption"
    backend = "clip"
    version = "1"
    Config = ClipCaptionConfig

    @functools.cached_property
    def dim(self) -> int:
        return load_config(self.config.text_model, self.name).hidden_size

    def load(self) -> None:
        import torch
        from transformers import AutoModel, AutoProcessor, AutoTokenizer

        sentences = [template["sentence"] for template in templates()]
        role = f"{self.name} (CLIP)"
        self._processor = load_preprocessor(AutoProcessor, self.config.clip_model, role)
        self._clip = prepare(load_model(AutoModel, self.config.clip_model, role), self.device)
        text_role = f"{self.name} (text encoder)"
        tokenizer = load_preprocessor(AutoTokenizer, self.config.text_model, text_role)
        text_model = prepare(load_model(AutoModel, self.config.text_model, text_role), self.device)
        with torch.inference_mode():
            tokens = self._processor.tokenizer(sentences, padding=True, return_tensors="pt").to(self.device)
            text = pooled(self._clip.get_text_features(**tokens))
            self._text_features = torch.nn.functional.normalize(text.float(), dim=-1)
            encoded = tokenizer(
                sentences,
                padding="max_length",
                truncation=True,
                max_length=self.config.max_tokens,
                return_tensors="pt",
            ).to(self.device)
            self._sentence_vectors = text_model(**encoded).last_hidden_state[:, 0].float().cpu().numpy()

    def extract_batch(self, clips: list[SampledVideo]) -> list[Features]:
        return chosen_rows(self.choose(clips), self._sentence_vectors)

    def choose(self, clips: list[SampledVideo]) -> list[np.ndarray]:
        """The template index CLIP picks for each frame of each clip; -1 where there is no face."""
        self.ensure_loaded()
        items = [clip.face_crops for clip in clips]
        picked = batched_features(items, lambda crops: self.best_templates(crops)[:, None], 1, self.config.batch_size)
        return [np.where(found.mask, found.values[:, 0], -1).astype(np.int64) for found in picked]

    def best_templates(self, crops: list[np.ndarray]) -> np.ndarray:
        """Index of the best-matching template sentence for each RGB crop."""
        import torch

        pixels = pixel_values(self._processor.image_processor, crops, self.device, self._clip.dtype)
        with torch.inference_mode():
            image = pooled(self._clip.get_image_features(pixel_values=pixels))
            similarity = torch.nn.functional.normalize(image.float(), dim=-1) @ self._text_features.T
        return similarity.argmax(dim=-1).cpu().numpy()
