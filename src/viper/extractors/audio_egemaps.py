"""Hand-crafted audio features: openSMILE's eGeMAPSv02 functionals (88 values) of each paper fragment.

No weights at all, so it is offline by construction; an interpretable alternative to the speaker encoders
(pitch, loudness, jitter, shimmer, formants and their statistics). openSMILE needs at least 60 ms of audio
(960 samples at 16 kHz) for its functionals; shorter fragments are masked, as are fragments without audio.
"""

from __future__ import annotations

import warnings
from importlib.util import find_spec
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelNotFoundError
from ..video import AUDIO_RATE
from .base import Extractor, Features, register_extractor
from .batching import batched_features

if TYPE_CHECKING:
    from ..audio_track import AudioFragment
    from ..sampled_video import SampledVideo

DIM = 88


@register_extractor
class EgemapsAudio(Extractor):
    """eGeMAPS functionals per fragment (not normalised: standardise them with training statistics)."""

    modality = "audio"
    backend = "egemaps"
    version = "1"

    @property
    def dim(self) -> int:
        return DIM

    def load(self) -> None:
        if find_spec("opensmile") is None:
            raise ModelNotFoundError("audio:egemaps needs openSMILE, which is not installed: pip install opensmile")
        import opensmile
        self._smile = opensmile.Smile(
            feature_set=opensmile.FeatureSet.eGeMAPSv02,
            feature_level=opensmile.FeatureLevel.Functionals,
        )

    def extract_batch(self, clips: list[SampledVideo]) -> list[Features]:
        self.ensure_loaded()
        items = [[f if len(f) else None for f in clip.audio_fragments()] for clip in clips]
        return batched_features(items, self.embed, DIM, batch_size=64)

    def embed(self, fragments: list[AudioFragment]) -> np.ndarray:
        """(B, 88); openSMILE fills a too-short segment with NaN, which masks that frame. Fragments are read one at a
        time, so a long recording's never sit in memory together."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Segment too short")
            rows = [self._smile.process_signal(np.asarray(f), AUDIO_RATE).to_numpy()[0] for f in fragments]
        return np.stack(rows)
