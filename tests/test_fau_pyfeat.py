"""fau:pyfeat with the real py-feat: absent, installed without its weights, and running end to end on random weights
laid out where py-feat caches the hub's (tests/pyfeat_models.py). py-feat is an extra: where it is not installed,
only the first test runs."""

from __future__ import annotations

import os
from importlib import metadata

import numpy as np
import pytest
import torch

from viper.errors import ModelNotFoundError
from viper.extractors import create_extractor
from viper.extractors.fau_pyfeat import pyfeat_detector
from viper.faces import create_face_detector
from viper.hf import hub_offline
from viper.sampled_video import sample_video


def pyfeat_installed() -> bool:
    try:
        return bool(metadata.version("py-feat"))
    except metadata.PackageNotFoundError:
        return False


needs_pyfeat = pytest.mark.skipif(not pyfeat_installed(), reason="py-feat (the pyfeat extra) is not installed")


@pytest.mark.skipif(pyfeat_installed(), reason="py-feat is installed")
def test_without_py_feat_says_how_to_install():
    extractor = create_extractor("fau:pyfeat")
    assert extractor.dim == 27
    with pytest.raises(ModelNotFoundError, match=r"not installed: pip install 'py-feat>=2,<3'"):
        extractor.ensure_loaded()


def resources_at(folder, monkeypatch) -> None:
    """Point py-feat's resources folder, where it caches the hub's weights, at `folder`."""
    pyfeat_detector()  # imports feat as viper does
    for module in ("feat.detector", "feat.utils.io"):
        monkeypatch.setattr(f"{module}.get_resource_path", lambda: str(folder))


@needs_pyfeat
def test_missing_weights_say_where_they_go(tmp_path, monkeypatch):
    resources_at(tmp_path, monkeypatch)
    with pytest.raises(ModelNotFoundError, match=f"not in its resources folder {tmp_path}; viper never downloads"):
        create_extractor("fau:pyfeat").ensure_loaded()


@pytest.fixture(scope="module")
def random_pyfeat(tmp_path_factory):
    """py-feat's resources folder holding its models with random weights, for the module's tests."""
    from pyfeat_models import save_pyfeat_models

    folder = save_pyfeat_models(tmp_path_factory.mktemp("pyfeat-resources"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        resources_at(folder, monkeypatch)
        yield folder


@pytest.fixture(scope="module")
def clips(face_videos):
    detector = create_face_detector()
    return [sample_video(face_videos[name], 4, detector) for name in ("single_face.mp4", "face_noface.mov")]


@needs_pyfeat
def test_rows_follow_crops_first_face_and_mask(random_pyfeat, clips):
    threads = os.environ.get("OMP_NUM_THREADS")
    extractor = create_extractor("fau:pyfeat", {"batch_size": 3})
    extractor.ensure_loaded()
    assert torch.is_grad_enabled() and os.environ.get("OMP_NUM_THREADS") == threads  # py-feat changes both
    detector = extractor._detector.facepose_detector
    detector.keep_top_k = 2  # random weights find many "faces" in every crop: keep two, viper takes the first

    batch = extractor.extract_batch(clips)
    crops = [crop for clip in clips for crop in clip.face_crops if crop is not None]
    images = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)
    with hub_offline():
        fex = extractor._detector.detect(images, data_type="tensor", batch_size=len(crops), progress_bar=False)
    assert fex["frame"].tolist() == [frame for frame in range(len(crops)) for _ in range(2)]  # two faces a crop
    faces = fex[list(fex.au_columns) + list(fex.emotion_columns)].to_numpy().reshape(len(crops), 2, 27)
    assert (faces[:, 0] != faces[:, 1]).any(axis=1).all()  # different faces: which one is first matters
    first = faces[:, 0]
    for clip, features in zip(clips, batch, strict=True):
        np.testing.assert_array_equal(features.mask, clip.face_mask)
        np.testing.assert_allclose(features.values[clip.face_mask], first[: clip.face_mask.sum()], atol=1e-5)
        first = first[clip.face_mask.sum():]

    detector.detection_threshold = 1.01  # above any score: py-feat finds no face, a NaN row per crop
    assert not any(features.mask.any() or features.values.any() for features in extractor.extract_batch(clips))
