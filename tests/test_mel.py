"""viper.mel: the Slaney mel scale and filterbank, checked from their definition and against librosa when present;
the mel power spectrogram against torch.stft, which computed it before."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from viper.mel import hann_window, hz_to_mel, mel_filterbank, mel_power, mel_to_hz

SHAPES = [(16000, 400, 40), (16000, 512, 80), (22050, 2048, 128), (8000, 256, 20)]


def test_slaney_scale_is_linear_to_1khz_then_logarithmic_and_inverts():
    np.testing.assert_allclose(hz_to_mel([0.0, 200.0, 1000.0, 6400.0]), [0.0, 3.0, 15.0, 42.0])
    hz = np.geomspace(1.0, 20000.0, 200)
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, rtol=1e-12)


def test_filters_are_unit_area_triangles_peaking_at_mel_spaced_centres():
    """On a 1 Hz grid each filter is a sampled triangle of height 2 / (f_{m+2} - f_m), so of area 1."""
    sample_rate, n_mels = 16000, 40
    bank = mel_filterbank(sample_rate, sample_rate, n_mels)
    assert bank.shape == (n_mels, sample_rate // 2 + 1) and bank.dtype == np.float32 and (bank >= 0).all()
    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(sample_rate / 2), n_mels + 2))
    np.testing.assert_allclose(np.diff(hz_to_mel(edges)), hz_to_mel(sample_rate / 2) / (n_mels + 1))
    hz = np.arange(bank.shape[1], dtype=np.float64)
    for m, row in enumerate(bank):
        lower, centre, upper = edges[m : m + 3]
        assert abs(hz[row.argmax()] - centre) < 1  # one of the two bins around the centre
        assert row.max() == pytest.approx(2.0 / (upper - lower), rel=1 / (centre - lower))  # under 1 Hz off-peak
        assert not row[(hz <= lower) | (hz >= upper)].any() and (row[(hz > lower) & (hz < upper)] > 0).all()
        assert row.sum() == pytest.approx(1.0, rel=1e-3)  # 1 Hz bins: the sum is the area


@pytest.mark.parametrize(("sample_rate", "n_fft", "n_mels"), SHAPES)
def test_filterbank_shape_and_coverage(sample_rate, n_fft, n_mels):
    bank = mel_filterbank(sample_rate, n_fft, n_mels)
    assert bank.shape == (n_mels, n_fft // 2 + 1)
    assert (bank.max(axis=1) > 0).all()  # no empty filter at these resolutions
    assert bank[:, 0].sum() == 0 and bank[:, -1].sum() == 0  # 0 Hz and Nyquist are the outer edges


@pytest.mark.skipif(importlib.util.find_spec("librosa") is None, reason="librosa is not installed")
@pytest.mark.parametrize(("sample_rate", "n_fft", "n_mels"), SHAPES)
def test_filterbank_equals_librosa(sample_rate, n_fft, n_mels):
    """librosa rounds to float32 twice (triangles, then the normalisation), we once: at most one ulp apart."""
    import librosa

    expected = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
    np.testing.assert_allclose(mel_filterbank(sample_rate, n_fft, n_mels), expected, rtol=2.5e-7, atol=0)


def test_mel_power_equals_torch_stft():
    """The speaker features' spectrogram in numpy is torch.stft's (uncentred, periodic Hann window) through the
    filterbank, to float32 precision."""
    torch = pytest.importorskip("torch")
    signals = np.random.default_rng(0).normal(0, 0.1, (3, 400 + 160 * 20)).astype(np.float32)
    bank = mel_filterbank(16000, 400, 40)
    window = torch.hann_window(400, periodic=True)
    np.testing.assert_allclose(hann_window(400), window.numpy(), atol=3e-7)
    spectrum = torch.stft(torch.from_numpy(signals), n_fft=400, hop_length=160, window=window, center=False,
                          return_complex=True)
    expected = (torch.from_numpy(bank) @ spectrum.abs().square()).transpose(1, 2).numpy()
    ours = mel_power(signals, bank, 160)
    assert ours.shape == (3, 21, 40) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6 * expected.max())
