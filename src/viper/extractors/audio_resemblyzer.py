"""Offline default audio features: Resemblyzer's GE2E speaker encoder, one 256-d embedding per paper fragment.

The weights of resemblyzer==0.1.4 (`pretrained.pt`) ship inside viper as assets/resemblyzer_ge2e.npz (Apache-2.0;
see assets/RESEMBLYZER_LICENSE.txt), so this runs with no download and without the unmaintained package (which
builds webrtcvad from source). Its small network is rebuilt here so the fragments of many clips go through one
batched forward pass:
mel power spectrogram (40 channels, 25 ms Hann window, 10 ms hop, 16 kHz, Slaney filterbank as librosa's; not log)
-> 3-layer LSTM 40->256 -> last hidden state of the top layer -> linear 256->256 -> ReLU -> L2 norm.

Each fragment is embedded whole (the paper's fragments are short, e.g. 3.4 s / 32 = 0.1 s, about 10 mel frames),
not cut into Resemblyzer's 1.6 s partial windows and averaged. Variable lengths are packed, so a fragment's
embedding does not depend on what it is batched with. Before cutting fragments the clip is raised to -30 dBFS
(never lowered), Resemblyzer's own volume normalisation, computed over the whole track so quiet fragments stay
quiet; its voice-activity trimming is not applied (it would move fragments off their frames).
A fragment with no audio or shorter than one 25 ms window is masked. A long recording's fragments (minutes each)
go through in slices of mel frames with the LSTM state carried across, so memory does not grow with their length.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib.resources import files
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelNotFoundError
from ..mel import mel_filterbank, mel_power
from ..video import AUDIO_RATE
from .base import Extractor, Features, register_default
from .batching import NOT_IN_IDENTITY, batched_features

if TYPE_CHECKING:
    from ..audio_track import AudioFragment
    from ..sampled_video import SampledVideo

WINDOW = 400  # samples: 25 ms at 16 kHz
HOP = 160  # samples: 10 ms
N_MELS = 40
HIDDEN = 256
LAYERS = 3
TARGET_DBFS = -30.0
WEIGHTS = "resemblyzer_ge2e.npz"


@dataclass
class ResemblyzerConfig:
    normalize_volume: bool = True  # raise quiet clips to -30 dBFS, as Resemblyzer's preprocess_wav does
    batch_size: int = field(default=256, metadata=NOT_IN_IDENTITY)  # items per forward pass
    # mel frames per LSTM pass over a whole batch (164 s of audio, about 150 MB): bounds long fragments' memory
    slice_frames: int = field(default=16_384, metadata=NOT_IN_IDENTITY)


def load_weights() -> dict[str, np.ndarray]:
    """The encoder's state_dict (lstm.*, linear.*) from the npz shipped in viper.assets."""
    path = files("viper.assets") / WEIGHTS
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is missing from this viper install: reinstall viper")
    with np.load(path) as npz:
        return {name: npz[name] for name in npz.files}


def volume_gain(rms: float, target_dbfs: float = TARGET_DBFS) -> float:
    """Factor that brings a track of this RMS up to `target_dbfs` (1.0 when it is already louder, or silent)."""
    if rms == 0.0:
        return 1.0
    change = target_dbfs - 20.0 * np.log10(rms)
    return float(10.0 ** (change / 20.0)) if change > 0 else 1.0


@register_default
class ResemblyzerAudio(Extractor):
    """GE2E speaker embedding (256-d, unit norm) of each audio fragment."""

    modality = "audio"
    backend = "resemblyzer"
    version = "1"
    Config = ResemblyzerConfig

    @property
    def dim(self) -> int:
        return HIDDEN

    def load(self) -> None:
        self._filterbank = mel_filterbank(AUDIO_RATE, WINDOW, N_MELS)

    def extract_batch(self, clips: list[SampledVideo]) -> list[Features]:
        self.ensure_loaded()
        items = []
        for clip in clips:
            gain = volume_gain(clip.audio.rms) if clip.audio is not None and self.config.normalize_volume else 1.0
            items.append([replace(f, gain=gain) if len(f) >= WINDOW else None for f in clip.audio_fragments()])
        return batched_features(items, self.embed, HIDDEN, self.config.batch_size, sort_key=len)

    def mels(self, fragments: list[np.ndarray | AudioFragment], first: int,
             count: int) -> tuple[np.ndarray, np.ndarray]:
        """(B, T, 40) mel power frames `first` .. `first + count` of each fragment, and how many each has there.

        Centred frames with zero padding, as librosa computes them: frame j covers samples j * HOP - WINDOW / 2 up
        to j * HOP + WINDOW / 2, zeros outside the fragment, so zeros after a fragment's end (padding to the batch's
        longest) change none of its frames, and a slice of frames equals those frames of the whole. In numpy on the
        CPU for both runtimes, so onnx needs no torch: as fast as torch.stft on a batch of short fragments, about
        0.1 s slower on a full slice (164 s of audio, against the LSTM's 1.4 s there).
        """
        totals = [1 + len(f) // HOP for f in fragments]
        lengths = np.array([min(total - first, count) for total in totals], np.int64)
        width = (int(lengths.max()) - 1) * HOP + WINDOW
        offset = first * HOP - WINDOW // 2  # the sample at column 0
        batch = np.zeros((len(fragments), width), np.float32)
        for row, fragment in zip(batch, fragments, strict=True):
            begin, end = max(0, offset), min(len(fragment), offset + width)
            if end > begin:
                row[begin - offset : end - offset] = np.asarray(fragment[begin:end], np.float32)
        return mel_power(batch, self._filterbank, HOP), lengths

    def embed(self, fragments: list[np.ndarray | AudioFragment]) -> np.ndarray:
        """Unit-norm embeddings (B, 256); NaN rows where the ReLU output is all zero (nothing to normalise).

        The LSTM runs over slices of at most `slice_frames` frames in all, its state carried from one slice to the
        next: a batch of short fragments is one slice, a long recording's fragments take several.
        """
        from ..backbones import speaker_encoder

        encoder = speaker_encoder.load(load_weights, self.device)
        totals = [1 + len(f) // HOP for f in fragments]
        step = max(1, self.config.slice_frames // len(fragments))
        hidden = np.zeros((LAYERS, len(fragments), HIDDEN), np.float32)
        cell, raw = np.zeros_like(hidden), np.zeros((len(fragments), HIDDEN), np.float32)
        for first in range(0, max(totals), step):
            rows = [row for row, total in enumerate(totals) if total > first]  # fragments not yet finished
            mels, lengths = self.mels([fragments[row] for row in rows], first, step)
            hidden[:, rows], cell[:, rows], raw[rows] = encoder(mels, lengths, hidden[:, rows], cell[:, rows])
        with np.errstate(invalid="ignore"):  # an all-zero row: 0 / 0, the NaN that masks it
            return raw / np.linalg.norm(raw, axis=1, keepdims=True)
