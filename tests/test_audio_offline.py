"""The offline audio backends (Resemblyzer port, eGeMAPS) and the batching helper, on real and made clips."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest
from faces_media import take
from media import make_clip

from viper.extractors import create_extractor, parse_spec
from viper.extractors.audio_resemblyzer import WINDOW, load_weights, volume_gain
from viper.extractors.batching import batched_features, chunks
from viper.sampled_video import sample_video


@pytest.fixture(scope="module")
def resemblyzer():
    extractor = create_extractor("audio")
    extractor.ensure_loaded()
    return extractor


@pytest.fixture(scope="module")
def speech():
    return sample_video(take("01-01-03-01-01-01-05.mp4"), 32, detector=None, face_crop=False)


def test_resemblyzer_is_the_offline_audio_default():
    assert parse_spec("audio") == ("audio", "resemblyzer")


def test_resemblyzer_loads_shipped_weights_without_resemblyzer_or_librosa():
    """The weights and the mel filterbank ship with viper: neither package is imported, installed or not."""
    code = ("import sys; from viper.extractors import create_extractor; create_extractor('audio').ensure_loaded(); "
            "print([name for name in ('resemblyzer', 'librosa', 'scipy.signal') if sys.modules.get(name)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None, reason="resemblyzer is not installed")
def test_shipped_weights_equal_resemblyzer_pretrained_pt():
    import torch

    checkpoint = next(f for f in metadata.distribution("Resemblyzer").files if f.name == "pretrained.pt").locate()
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model_state"]
    shipped = load_weights()
    assert set(shipped) == {name for name in state if name.startswith(("lstm.", "linear."))}
    for name, array in shipped.items():
        np.testing.assert_array_equal(array, state[name].numpy())


def test_resemblyzer_unit_norm_deterministic_and_batch_independent(resemblyzer, speech, face_videos):
    late_audio = sample_video(face_videos["face_noface.mov"], 16, detector=None, face_crop=False)
    batch = resemblyzer.extract_batch([speech, late_audio])
    for clip, features in zip([speech, late_audio], batch, strict=True):
        assert features.values.shape == (clip.n, 256) and features.values.dtype == np.float32
        lengths = np.array([len(fragment) for fragment in clip.audio_fragments()])
        np.testing.assert_array_equal(features.mask, lengths >= WINDOW)
        np.testing.assert_allclose(np.linalg.norm(features.values[features.mask], axis=1), 1.0, atol=1e-5)
        assert not features.values[~features.mask].any()
    assert batch[0].mask.all() and not batch[1].mask.all()
    alone = resemblyzer.extract(speech)
    np.testing.assert_allclose(alone.values, batch[0].values, atol=1e-5)  # packing: batch mates change nothing
    np.testing.assert_array_equal(resemblyzer.extract(speech).values, alone.values)


def test_resemblyzer_masks_a_clip_without_audio(resemblyzer, tmp_path):
    clip = sample_video(make_clip(tmp_path / "silent.mp4", frames=12), 8, detector=None, face_crop=False)
    assert clip.audio is None
    features = resemblyzer.extract(clip)
    assert features.values.shape == (8, 256) and not features.mask.any() and not features.values.any()


def test_resemblyzer_embeds_whole_short_fragments(resemblyzer):
    """0.1 s fragments (the paper's 3.4 s / 32) are embedded whole; under one 25 ms window is too short."""
    rng = np.random.default_rng(0)
    rows = resemblyzer.embed([rng.normal(0, 0.1, n).astype(np.float32) for n in (WINDOW, 1600, 16000)])
    assert rows.shape == (3, 256) and np.isfinite(rows).all()
    assert volume_gain(0.0) == 1.0  # silence
    assert volume_gain(0.5) == 1.0  # loud audio is never turned down
    assert 20 * np.log10(1e-3 * volume_gain(1e-3)) == pytest.approx(-30.0)


@pytest.mark.skipif(importlib.util.find_spec("opensmile") is None, reason="opensmile is not installed")
def test_egemaps_functionals_per_fragment(speech):
    extractor = create_extractor("audio:egemaps")
    features = extractor.extract(speech)
    assert features.values.shape == (speech.n, 88)
    lengths = np.array([len(fragment) for fragment in speech.audio_fragments()])
    assert features.mask[lengths >= 960].all() and not features.mask[lengths < 960].any()
    assert np.isfinite(features.values).all()


def test_batched_features_masks_absent_and_nan_rows_and_keeps_order():
    items = [[3, None, 5], [None], [7, 8]]

    def embed(batch):
        return np.array([[value, np.nan if value == 8 else -value] for value in batch], dtype=np.float32)

    out = batched_features(items, embed, dim=2, batch_size=2, sort_key=lambda v: -v, same_key_batches=True)
    np.testing.assert_array_equal(out[0].values, [[3, -3], [0, 0], [5, -5]])
    np.testing.assert_array_equal(out[0].mask, [True, False, True])
    assert out[1].values.shape == (1, 2) and not out[1].mask.any()
    np.testing.assert_array_equal(out[2].mask, [True, False])
    np.testing.assert_array_equal(out[2].values, [[7, -7], [0, 0]])


def test_chunks_never_mix_keys_when_asked():
    assert chunks(list("abcde"), 2, [1, 1, 1, 2, 2]) == [["a", "b"], ["c"], ["d", "e"]]
    assert chunks(list("abcde"), 2, None) == [["a", "b"], ["c", "d"], ["e"]]
