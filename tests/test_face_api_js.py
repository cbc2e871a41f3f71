"""face-api.js's expression and recognition networks ported to PyTorch: the converted weights, face-api.js's
preprocessing (padToSquare + TensorFlow.js's bilinear resize), their readings of real faces (the bundled RAVDESS
actor-05 takes, cut at viper's face detector's boxes, and Grace Hopper's portrait shipped with matplotlib as
another person), and parity with the real library running the original weights on TensorFlow.js (node's pure-JS
CPU backend; skipped when node or npm, or the npm registry, is missing)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from faces_media import SMILING, SURPRISED, take, take_frames

from viper.backbones import face_api_expression as expression
from viper.backbones import face_api_expression_net as expression_net
from viper.backbones import face_api_recognition as recognition
from viper.backbones import face_api_recognition_net as recognition_net
from viper.resample import pad_to_square, resize_bilinear_tf

REFERENCE = Path(__file__).resolve().parent / "tfjs_reference"
SCRIPT = REFERENCE / "face_api_reference.cjs"
SIZES = {"expression": expression.INPUT_SIZE, "recognition": recognition.INPUT_SIZE}
# takes whose 4 sampled frames all show this (looked at: a smile, a still face, wide eyes, a grimace); the net
# gives each frame's class >= 0.72
GRIMACE = "01-01-07-02-02-02-05.mp4"  # disgust, strong intensity
READINGS = {SMILING: "happy", "01-01-01-01-01-01-05.mp4": "neutral", SURPRISED: "surprised", GRIMACE: "disgusted"}
PARITY_TAKES = ("01-01-01-01-01-01-05.mp4", SMILING, "01-01-04-02-01-01-05.mp4", "01-01-05-02-02-02-05.mp4",
                GRIMACE, SURPRISED)


class MissingReference(Exception):
    """What the TensorFlow.js reference lacks here (node, npm, the registry), as a skip reason."""


def box_crop(frame: np.ndarray, box) -> np.ndarray:
    """The detector's box cut from the frame as face-api.js's extractFaceTensors cuts a detection: no margin, not
    squared, clipped to the frame."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return frame[max(y0, 0) : y1, max(x0, 0) : x1]


def take_faces(names, frames: int = 4) -> dict[str, list[np.ndarray]]:
    """Each take's face crops at `frames` sampled frames, found by viper's own extraction."""
    from viper.extraction import ExtractConfig, Extraction

    extraction = Extraction(ExtractConfig(frames=frames, extractors=[]))
    extraction.load()
    faces = {}
    for name in names:
        clip = extraction.clip(take(name))
        faces[name] = [box_crop(frame, box)
                       for frame, box, ok in zip(clip.frames, clip.face_boxes, clip.face_mask, strict=True) if ok]
    return faces


def parity_faces() -> list[np.ndarray]:
    """8 real faces covering every preprocessing path: 6 detector boxes (wider than tall: padded top and bottom,
    odd differences included; shrunk), a whole 224 x 224 frame (no padding) and a box at a third of its size
    (enlarged)."""
    faces = take_faces(PARITY_TAKES, frames=2)
    small = np.ascontiguousarray(faces[SURPRISED][1][::3, ::3])
    return [faces[name][0] for name in PARITY_TAKES] + [take_frames(SMILING)[7], small]


def reference_modules() -> Path:
    """node_modules of tests/tfjs_reference's lockfile, installed once (npm ci) into a cache folder outside the
    repository; MissingReference when node, npm or the registry is missing."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise MissingReference(f"`{tool}` is not on PATH: the TensorFlow.js reference runs in node")
    lock = (REFERENCE / "package-lock.json").read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "viper"
    target = cache / f"tfjs-reference-{hashlib.sha256(lock).hexdigest()[:12]}"
    if not (target / "node_modules" / "@vladmandic" / "face-api" / "package.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=cache))
        for name in ("package.json", "package-lock.json"):
            shutil.copy(REFERENCE / name, staging / name)
        done = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=staging,
                              capture_output=True, text=True, timeout=900)
        if done.returncode:
            shutil.rmtree(staging)
            reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise MissingReference(f"`npm ci` of tests/tfjs_reference failed (no npm registry?): {reason}")
        try:
            staging.rename(target)
        except OSError:  # another process installed it meanwhile
            shutil.rmtree(staging)
    return target / "node_modules"


def run_tfjs(faces: list[np.ndarray], folder: Path) -> dict:
    """face-api.js on TensorFlow.js's CPU backend: its own preprocessing of `faces` ("<net>_batch", NHWC) and each
    net's output on viper's `prepare` of them ("<net>_out"), plus "run" (backend, versions, ms per face)."""
    modules = reference_modules()
    inputs, outputs = folder / "in", folder / "out"
    inputs.mkdir(parents=True)
    for index, face in enumerate(faces):
        np.save(inputs / f"face_{index:02d}.npy", np.ascontiguousarray(face))
    for net, size in SIZES.items():
        np.save(inputs / f"{net}_input.npy", expression.prepare(faces, size).transpose(0, 2, 3, 1))
    subprocess.run(["node", str(SCRIPT), str(inputs), str(outputs)], env={**os.environ, "NODE_PATH": str(modules)},
                   check=True, capture_output=True, timeout=900)
    return {path.stem: np.load(path) for path in outputs.glob("*.npy")} | {
        "run": json.loads((outputs / "run.json").read_text())}


def torch_outputs(faces: list[np.ndarray]) -> dict[str, np.ndarray]:
    """viper's outputs for the same crops: probabilities and descriptors."""
    return {"expression": expression.classify(faces), "recognition": recognition.describe(faces)}


@pytest.fixture(scope="module")
def faces(one_torch_thread) -> dict[str, list[np.ndarray]]:
    return take_faces([*READINGS, "01-01-02-01-01-01-05.mp4", "01-01-04-01-01-01-05.mp4"])


@pytest.fixture(scope="module")
def hopper(one_torch_thread) -> np.ndarray:
    """Grace Hopper's face (matplotlib's sample portrait), cut at viper's detector's box: another person."""
    import matplotlib.cbook
    from PIL import Image

    from viper.faces import create_face_detector

    image = np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
    detector = create_face_detector()
    detector.load()
    (face,) = detector.detect([image])
    return box_crop(image, face.box)


def test_weights_fit_the_modules_and_load_once():
    for module, net, count in ((expression_net, expression_net.FaceExpressionNet(), 323_687),
                               (recognition_net, recognition_net.FaceRecognitionNet(), 5_614_592)):
        with np.load(module.WEIGHTS, allow_pickle=False) as arrays:
            state = {name: torch.from_numpy(arrays[name]) for name in arrays.files}
        assert all(array.dtype == torch.float32 for array in state.values())
        net.load_state_dict(state, strict=True)
        assert sum(p.numel() for p in net.parameters()) == count  # every tensor of the manifest, none invented
    assert expression_net.load_face_api_expression() is expression_net.load_face_api_expression()
    assert not recognition_net.load_face_api_recognition().training
    assert (expression_net.CLASS_COUNT, recognition_net.DIM) == (len(expression.CLASSES), recognition.DIM)


def test_preprocessing_pads_centred_and_resizes_as_tensorflow_js():
    tall = np.arange(5 * 2, dtype=np.uint8).reshape(5, 2, 1) + 1
    padded = pad_to_square(tall)  # 3 columns to add: Math.round(1.5) = 2 after the image, 1 before
    assert padded.shape == (5, 5, 1) and (padded[:, 1:3] == tall).all()
    assert (padded[:, [0, 3, 4]] == 0).all()
    assert pad_to_square(np.ones((3, 4, 3), np.uint8))[[0, 1, 2, 3], 0, 0].tolist() == [1, 1, 1, 0]
    image = np.array([[0, 100], [200, 40]], np.float64)[..., None]
    resized = resize_bilinear_tf(image, 4)[..., 0]  # sources 0, .5, 1, 1.5 -> the last clamps to the edge
    assert resized.dtype == np.float32
    assert resized[0].tolist() == [0, 50, 100, 100] and resized[:, 0].tolist() == [0, 100, 200, 200]
    assert resized[1, 1] == 85  # (0 + 100 + 200 + 40) / 4
    x = expression.prepare([np.full((30, 50, 3), 255, np.uint8)])
    assert x.shape == (1, 3, 112, 112) and x.dtype == np.float32
    assert (x[0, :, 56] == 255).all() and (x[0, :, 0] == 0).all()  # black bands top and bottom, face in between


def test_probabilities_sum_to_one_and_batches_match_single_faces(faces, one_torch_thread):
    crops = [face for clip in faces.values() for face in clip[:2]]
    crops += [np.full((224, 224, 3), 128, np.uint8), np.zeros((33, 47, 3), np.uint8)]
    probs = expression.classify(crops)
    assert probs.shape == (len(crops), 7) and probs.dtype == np.float32
    assert (probs >= 0).all() and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    single = np.concatenate([expression.classify([face]) for face in crops])
    assert np.abs(probs - single).max() < 1e-5
    assert np.abs(expression.classify(crops, batch_size=3) - probs).max() < 1e-5
    assert expression.classify([]).shape == (0, 7)


def test_reads_the_expressions_of_actor05(faces, one_torch_thread):
    for name, label in READINGS.items():
        probs = expression.classify(faces[name])
        assert len(probs) == 4
        top = [expression.CLASSES[i] for i in probs.argmax(axis=1)]
        assert top == [label] * 4, (name, probs.round(3))
        assert probs[:, expression.CLASSES.index(label)].min() > 0.7, (name, probs.round(3))


def test_descriptors_tell_actor05_from_another_person(faces, hopper, one_torch_thread):
    # the disgust grimace (a face pulled out of shape) lies 0.58 to 0.65 from the other takes: left out here
    actor = [face for name, clip in faces.items() if name != GRIMACE for face in clip]
    descriptors = recognition.describe([*actor, hopper, hopper[:, ::-1]])
    assert descriptors.shape == (len(actor) + 2, 128) and descriptors.dtype == np.float32
    distances = np.linalg.norm(descriptors[:, None] - descriptors[None], axis=-1)
    n = len(actor)
    assert n >= 18 and distances[:n, :n].max() < recognition.SAME_PERSON  # 5 takes, 5 expressions: <= 0.51
    assert distances[n, :n].min() > recognition.SAME_PERSON  # measured >= 0.65
    assert distances[n, n + 1] < 0.3  # her mirror image is still her: identity, not pixel layout
    assert np.abs(recognition.describe(actor[:3], batch_size=2) - descriptors[:3]).max() < 1e-5
    assert recognition.describe([]).shape == (0, 128)


@pytest.mark.slow
def test_matches_face_api_js_on_tensorflow_js(tmp_path, one_torch_thread):
    crops = parity_faces()
    try:
        reference = run_tfjs(crops, tmp_path)
    except MissingReference as missing:
        pytest.skip(str(missing))
    assert reference["run"]["backend"] == "cpu" and reference["run"]["faceapi"] == "1.7.15"
    ours = torch_outputs(crops)
    for net, size in SIZES.items():
        # face-api.js's own NetInput.toBatchTensor gives bit for bit what `prepare` gives
        assert np.array_equal(reference[f"{net}_batch"], expression.prepare(crops, size).transpose(0, 2, 3, 1))
        diff = np.abs(ours[net] - reference[f"{net}_out"]).max()
        assert diff < 1e-5, (net, diff)  # measured: 4e-7 (probabilities), 2.5e-7 (descriptors)
    assert (ours["expression"].argmax(1) == reference["expression_out"].argmax(1)).all()
