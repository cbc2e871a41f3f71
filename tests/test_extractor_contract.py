"""One contract for every registered extractor: (N, dim) float32 + (N,) mask, zeros where masked, deterministic.

Backends that need Hugging Face weights run on tiny random models saved to a temp folder (the `tiny_models`
fixture in conftest.py). A backend whose optional package or downloadable weights are absent says so with a
ModelNotFoundError and is skipped, saying why; any other error fails, so a package that is installed but broken
(it does not import, its API moved, another major version) never passes as a skip.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_hf_backends import backends

from viper.errors import ModelNotFoundError
from viper.extractors import available, create_extractor
from viper.faces import create_face_detector
from viper.sampled_video import sample_video


@pytest.fixture(scope="module")
def clips(face_videos):
    """A talking face, and a face that leaves the frame in a clip whose audio starts late (both masks vary)."""
    detector = create_face_detector()
    return [sample_video(face_videos[name], 8, detector) for name in ("single_face.mp4", "face_noface.mov")]


@pytest.mark.parametrize("spec", available())
def test_extractor_contract(spec, clips, tiny_models):
    options, dim = backends(tiny_models).get(spec, ({}, None))
    extractor = create_extractor(spec, options)
    try:
        extractor.ensure_loaded()
    except ModelNotFoundError as error:
        reason = str(error).split("; ")[0]  # what is missing; the rest says how to get it
        pytest.skip(reason if spec in reason else f"{spec}: {reason}")
    assert extractor.name == spec and extractor.version and extractor.dim == (dim or extractor.dim)
    batch = extractor.extract_batch(clips)
    for clip, features in zip(clips, batch, strict=True):
        source_mask = clip.audio_mask if extractor.modality == "audio" else clip.face_mask
        assert features.values.shape == (clip.n, extractor.dim) and features.values.dtype == np.float32
        assert features.mask.shape == (clip.n,) and features.mask.dtype == bool
        assert not (features.mask & ~source_mask).any()  # never a value where there is no face / no audio
        assert features.mask[source_mask].mean() > 0.5
        assert np.isfinite(features.values).all() and not features.values[~features.mask].any()
        assert np.abs(features.values[features.mask]).sum(axis=1).min() > 0
    assert not batch[1].mask.all()  # the face leaves; the audio starts late
    again = extractor.extract(clips[0])  # alone, another batch layout: the same numbers
    np.testing.assert_allclose(again.values, batch[0].values, rtol=1e-4, atol=1e-6 * np.abs(again.values).max())
    np.testing.assert_array_equal(again.mask, batch[0].mask)


def test_viper_extractors_gives_each_description_whole():
    """`viper extractors`: one line per extractor with the first paragraph of its docstring, whole sentences (the
    first line of a docstring wrapped over two used to end mid-sentence)."""
    from typer.testing import CliRunner

    from viper.cli import app

    lines = CliRunner().invoke(app, ["extractors"], catch_exceptions=False).stdout.splitlines()
    assert [line.split()[0] for line in lines] == available()
    assert all(line.endswith(".") for line in lines), lines
