"""The paper's encoders through transformers, on real faces and speech (bundled takes in generated scenes), with
tiny random models saved to a temp folder.

Nothing is downloaded: every model here is built from a small config and its processor/tokenizer from a vocabulary
written below, then loaded back through viper's real offline loading code. Tests that need the real checkpoints
are marked `real_weights` and skip when the local Hugging Face cache lacks them.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from viper.errors import ModelNotFoundError
from viper.extractors import create_extractor
from viper.extractors.audio_wavlm import MIN_FRAGMENT, min_samples
from viper.extractors.caption_clip import templates
from viper.sampled_video import sample_video
from viper.templates import chosen_sentences


@pytest.fixture(scope="module")
def clips(face_videos):
    """A talking face and a clip whose audio starts late (masked fragments), as whole frames (no detector)."""
    return [
        sample_video(face_videos[name], 8, detector=None, face_crop=False)
        for name in ("single_face.mp4", "face_noface.mov")
    ]


def backends(models: dict[str, Path]) -> dict[str, tuple[dict, int]]:
    """spec -> (options, expected dim)."""
    return {
        "face_image:vit": ({"model": str(models["vit"]), "batch_size": 5}, 32),
        "face_image:vit-face": ({"model": str(models["vit-face"])}, 32),
        "caption:clip": ({"clip_model": str(models["clip"]), "text_model": str(models["roberta"])}, 24),
        "audio:wavlm": ({"model": str(models["wavlm"]), "batch_size": 3}, 12),
    }


def test_vit_pooling_before_and_after_final_norm(tiny_models, clips):
    crops = [crop for crop in clips[0].face_crops if crop is not None][:3]
    before = create_extractor("face_image:vit", {"model": str(tiny_models["vit"])})
    after = create_extractor("face_image:vit", {"model": str(tiny_models["vit"]), "final_norm": True})
    before.ensure_loaded()
    after.ensure_loaded()
    model = transformers.ViTModel.from_pretrained(tiny_models["vit"]).eval()
    pixels = before._processor(images=crops, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        outputs = model(pixel_values=pixels, output_hidden_states=True)
    np.testing.assert_allclose(before.embed(crops), outputs.hidden_states[-1][:, 0].numpy(), atol=1e-5)
    np.testing.assert_allclose(after.embed(crops), outputs.last_hidden_state[:, 0].numpy(), atol=1e-5)
    assert before.identity() != after.identity()  # different features never share a store folder


@pytest.mark.parametrize(("processor", "tensor_ops"), [
    (transformers.ViTImageProcessor(size={"height": 224, "width": 224}), True),  # ViT-B/16's
    (transformers.CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}), True),
    (transformers.ViTImageProcessor(size={"height": 32, "width": 32}), False),  # resamples: the processor's path
], ids=["vit-224", "clip-224", "vit-32"])
def test_pixel_values_on_the_device_equal_the_processors(processor, tensor_ops, clips):
    """224-px face crops skip the processor's per-image PIL round trip (see hf.pixel_values): same pixels."""
    from viper.hf import _keeps_size, pixel_values

    crops = [crop for clip in clips for crop in clip.face_crops if crop is not None][:6]
    assert _keeps_size(processor, 224) == tensor_ops
    expected = processor(images=crops, return_tensors="pt")["pixel_values"]
    np.testing.assert_allclose(pixel_values(processor, crops, "cpu", torch.float32), expected, atol=1e-6)


def test_caption_rows_are_roberta_vectors_of_chosen_templates(tiny_models, clips):
    options, _ = backends(tiny_models)["caption:clip"]
    extractor = create_extractor("caption:clip", options)
    features = extractor.extract(clips[0])
    chosen = extractor.choose(clips[:1])[0]
    sentences = chosen_sentences(chosen)
    known = {template["sentence"] for template in templates()}
    assert len(templates()) == 53 and len(extractor._sentence_vectors) == 53
    for row, valid, index, sentence in zip(features.values, features.mask, chosen, sentences, strict=True):
        assert (sentence is not None) == valid
        if valid:
            assert sentence in known
            np.testing.assert_array_equal(row, extractor._sentence_vectors[index])


def test_wavlm_pads_short_fragments_to_its_minimum(tiny_models):
    assert min_samples(transformers.WavLMConfig()) == 5200  # the real checkpoint's config: 0.325 s
    extractor = create_extractor("audio:wavlm", {"model": str(tiny_models["wavlm"])})
    extractor.ensure_loaded()
    rng = np.random.default_rng(0)
    fragments = [rng.normal(0, 0.1, n).astype(np.float32) for n in (MIN_FRAGMENT, 1600, 9000)]
    rows = extractor.embed(fragments)
    assert rows.shape == (3, 12) and np.isfinite(rows).all()


@pytest.mark.parametrize(
    ("spec", "options", "named_by_load", "named_by_dim"),
    [
        ("face_image:vit", {"model": "viper-tests/no-such-vit"}, "viper-tests/no-such-vit", "viper-tests/no-such-vit"),
        (
            "caption:clip",
            {"clip_model": "viper-tests/no-such-clip", "text_model": "viper-tests/no-such-roberta"},
            "viper-tests/no-such-clip",
            "viper-tests/no-such-roberta",
        ),
        ("audio:wavlm", {"model": "/nonexistent/wavlm"}, "/nonexistent/wavlm", "/nonexistent/wavlm"),
    ],
)
def test_missing_model_is_one_clear_error_without_network(spec, options, named_by_load, named_by_dim):
    extractor = create_extractor(spec, options)
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match=named_by_load):
        extractor.ensure_loaded()
    with pytest.raises(ModelNotFoundError, match=named_by_dim):
        _ = extractor.dim
    assert time.perf_counter() - started < 10  # no network wait


def test_checkpoint_missing_used_weights_is_refused(tiny_models, tmp_path):
    """Weights left at random initialisation would be noise presented as features: refuse, naming the model."""
    folder = tmp_path / "vit-deeper"
    shutil.copytree(tiny_models["vit"], folder)
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = 2  # the file only holds one layer
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelNotFoundError, match="weights missing"):
        create_extractor("face_image:vit", {"model": str(folder)}).ensure_loaded()


@pytest.mark.real_weights
@pytest.mark.parametrize("spec", ["face_image:vit", "face_image:vit-face", "caption:clip", "audio:wavlm", "fau:pyfeat"])
def test_paper_weights_when_present(spec, clips):
    extractor = create_extractor(spec)
    try:
        extractor.ensure_loaded()
    except ModelNotFoundError as error:
        pytest.skip(str(error).split("; ")[0])  # which model is missing, and where it was looked for
    dims = {"face_image": 768, "caption": 768, "audio": 512, "fau": 27}
    features = extractor.extract(clips[0])
    assert features.values.shape == (clips[0].n, dims[extractor.modality])
    assert features.mask.any() and np.isfinite(features.values).all()
