"""Slaney's mel scale and triangular filterbank in numpy, as librosa's defaults (htk=False, norm="slaney") build them,
and the mel power spectrogram Resemblyzer's encoder reads.

Resemblyzer's encoder was trained on mels from `librosa.filters.mel`; this reproduces that matrix to float32
precision without importing librosa (which pulls scipy.signal, seconds of start-up), and the spectrogram without
torch, so the speaker features need neither.
"""

from __future__ import annotations

import numpy as np

LINEAR_HZ_PER_MEL = 200.0 / 3  # below 1 kHz the Slaney scale is linear: 15 mels at 1 kHz
BREAK_HZ = 1000.0
BREAK_MEL = BREAK_HZ / LINEAR_HZ_PER_MEL
LOG_STEP = np.log(6.4) / 27.0  # above 1 kHz, 27 mels per factor 6.4 (1 kHz -> 6.4 kHz)


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    log_part = BREAK_MEL + np.log(np.maximum(hz, BREAK_HZ) / BREAK_HZ) / LOG_STEP
    return np.where(hz >= BREAK_HZ, log_part, hz / LINEAR_HZ_PER_MEL)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    log_part = BREAK_HZ * np.exp(LOG_STEP * (np.maximum(mel, BREAK_MEL) - BREAK_MEL))
    return np.where(mel >= BREAK_MEL, log_part, mel * LINEAR_HZ_PER_MEL)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float32: triangles from 0 Hz to Nyquist, each of unit area in Hz.

    Filter m rises from edge f_m to its peak at f_{m+1} and falls to f_{m+2}, the edges equally spaced in mels;
    Slaney's normalisation scales it by 2 / (f_{m+2} - f_m), so wide high-frequency filters do not dominate.
    """
    bins = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(sample_rate / 2), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return (triangles * (2.0 / (upper - lower))).astype(np.float32)


def hann_window(size: int) -> np.ndarray:
    """The periodic Hann window (librosa's and torch.hann_window's default) as float32."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(size) / size)).astype(np.float32)


def mel_power(signals: np.ndarray, filterbank: np.ndarray, hop: int) -> np.ndarray:
    """(B, T, n_mels) float32 mel power frames of (B, samples) float32 signals, not centred: frame t is the
    Hann-windowed samples t * hop .. t * hop + n_fft, with n_fft = 2 * (filterbank's bins - 1). The transform runs in
    float64: numpy's is faster there than in float32, and no less exact."""
    n_fft = 2 * (filterbank.shape[1] - 1)
    windows = np.lib.stride_tricks.sliding_window_view(signals, n_fft, axis=-1)[:, ::hop]
    spectrum = np.fft.rfft(windows * hann_window(n_fft).astype(np.float64), axis=-1)
    return ((spectrum.real**2 + spectrum.imag**2) @ filterbank.T.astype(np.float64)).astype(np.float32)
