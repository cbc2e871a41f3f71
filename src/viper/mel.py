"""Slaney's mel scale and triangular filterbank in numpy, as librosa's defaults (htk=False, norm="slaney") build them.

Resemblyzer's encoder was trained on mels from `librosa.filters.mel`; this reproduces that matrix to float32
precision without importing librosa (which pulls scipy.signal, seconds of start-up).
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
