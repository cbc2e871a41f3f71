"""viper.runtime: every default network gives the same outputs under ONNX Runtime as under PyTorch (to 1e-4) on real
faces and real speech, so features from both runtimes can share a store; the shipped .onnx files are what
scripts/export_onnx.py makes from the PyTorch modules now (a stale one fails here); the runtime is onnx on CPU and
torch where forced.

onnxruntime is a dependency: imported at the top, so an install that is broken fails this file, never skips it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from conftest import REPO, SHARED_DATA, needs_shared
from faces_media import SMILING, SURPRISED, take, take_frames, take_speech

from viper import runtime
from viper.backbones import affectnet_emotions, face_api_expression, face_api_recognition, mini_xception
from viper.backbones.blazeface import BlazeFace
from viper.backbones.face_blendshapes import FaceBlendshapes
from viper.backbones.face_mesh_v2 import FaceMeshV2, face_roi
from viper.errors import SettingError
from viper.extractors.expression_general import CROPS, INPUT_SIZES
from viper.faces import FACE_API_CROP, crop_square

TOLERANCE = 1e-4
CHAIN_TOLERANCE = 5e-4  # a feature of a whole extraction, each network within TOLERANCE
TAKES = ("01-01-01-01-01-01-05.mp4", SMILING, SURPRISED, "01-01-07-02-02-02-05.mp4")
CC_BY = "data/faces-cc-by"
CC_BY_WHY = "photos of 142 other people (CC BY 4.0): the bundled takes hold one person only"


@contextmanager
def forced(name: str | None):
    previous = runtime.forced()
    runtime.force(name)
    try:
        yield
    finally:
        runtime.force(previous)


def both(run):
    """run() under torch, then under onnx."""
    with forced("torch"):
        torch_out = run()
    with forced("onnx"):
        return torch_out, run()


def close(torch_out, onnx_out, scale: float = 1.0) -> None:
    """Equal to TOLERANCE once divided by `scale` (positions: by the frame's size)."""
    torch_out, onnx_out = np.asarray(torch_out), np.asarray(onnx_out)
    assert torch_out.shape == onnx_out.shape
    assert np.abs(torch_out - onnx_out).max(initial=0.0) / scale <= TOLERANCE


def cc_by_photos(count: int = 8) -> list[np.ndarray]:
    from PIL import Image

    paths = sorted((SHARED_DATA / "faces-cc-by").glob("*/images/*/*.jpg"))
    return [np.asarray(Image.open(path).convert("RGB")) for path in paths[:: max(1, len(paths) // count)][:count]]


@pytest.fixture(scope="module", params=["bundled takes", pytest.param("faces-cc-by", marks=needs_shared(
    CC_BY, CC_BY_WHY))])
def frames(request, one_torch_thread) -> list[np.ndarray]:
    """Real frames with faces: 3 of each bundled take (one actor, 224 x 224), or photos of other people."""
    if request.param == "faces-cc-by":
        return cc_by_photos()
    return [frame for name in TAKES for frame in take_frames(name)[2:15:5]]


@pytest.fixture(scope="module")
def detections(frames):
    with forced("torch"):
        return BlazeFace()(frames)


@pytest.fixture(scope="module")
def faces(frames, detections) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(frame, box, keypoints) of every face found."""
    found = [(frame, box, points) for frame, faces in zip(frames, detections, strict=True)
             for box, points in zip(faces.boxes, faces.keypoints, strict=True)]
    assert len(found) >= len(frames) - 1
    return found


def test_blazeface(frames):
    model = BlazeFace()
    torch_out, onnx_out = both(lambda: model(frames) + model(frames, pad=3.0))
    for ours, theirs, frame in zip(torch_out, onnx_out, frames + frames, strict=True):
        size = max(frame.shape[:2])
        close(ours.boxes, theirs.boxes, size)
        close(ours.keypoints, theirs.keypoints, size)
        close(ours.scores, theirs.scores)


def test_face_mesh_and_blendshapes(faces):
    mesh, blendshapes = FaceMeshV2(), FaceBlendshapes()
    frames = [frame for frame, _, _ in faces]
    rois = np.array([face_roi(box, points) for _, box, points in faces])
    (torch_mesh, torch_scores), (onnx_mesh, onnx_scores) = both(
        lambda: (found := mesh(frames, rois), blendshapes(found.landmarks)))
    close(torch_mesh.landmarks, onnx_mesh.landmarks, max(frames[0].shape[:2]))
    close(torch_mesh.presence, onnx_mesh.presence)
    assert (onnx_mesh.presence >= 0.5).all()  # real faces: the comparison is on landmarks that mean something
    close(torch_scores, onnx_scores)
    close(blendshapes(torch_mesh.landmarks), onnx_scores)  # and from the same landmarks


WITHOUT_TORCH = """
import sys
from importlib.abc import MetaPathFinder


class NoTorch(MetaPathFinder):  # torch as if it were not installed
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, NoTorch())
import numpy as np

from viper.backbones.blazeface import BlazeFace
from viper.backbones.face_blendshapes import FaceBlendshapes
from viper.backbones.face_mesh_v2 import FaceMeshV2, face_roi

frames = list(np.load(sys.argv[1]))
faces = BlazeFace()(frames)
mesh = FaceMeshV2()(frames, np.stack([face_roi(found.boxes[0], found.keypoints[0]) for found in faces]))
np.savez(sys.argv[2], boxes=np.stack([found.boxes[0] for found in faces]), landmarks=mesh.landmarks,
         blendshapes=FaceBlendshapes()(mesh.landmarks))
"""


def test_face_networks_run_without_torch(tmp_path, one_torch_thread):
    """BlazeFace, Face Mesh v2 and the blendshapes in a process that cannot import torch (as where it is not
    installed) run in onnx and give what they give here."""
    frames = np.stack(take_frames(SMILING)[2:15:5])
    np.save(tmp_path / "frames.npy", frames)
    done = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, tmp_path / "frames.npy", tmp_path / "out.npz"],
                          capture_output=True, text=True, env={**os.environ, "VIPER_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    with forced("onnx"):
        faces = BlazeFace()(list(frames))
        mesh = FaceMeshV2()(list(frames), np.stack([face_roi(found.boxes[0], found.keypoints[0]) for found in faces]))
        scores = FaceBlendshapes()(mesh.landmarks)
    with np.load(tmp_path / "out.npz") as out:
        np.testing.assert_array_equal(out["boxes"], np.stack([found.boxes[0] for found in faces]))
        np.testing.assert_array_equal(out["landmarks"], mesh.landmarks)
        np.testing.assert_array_equal(out["blendshapes"], scores)


@pytest.mark.parametrize("expert", ["fer", "affectnet", "face_api"])
def test_expression_experts(faces, expert):
    crops = [crop_square(frame, CROPS[expert].box(box), 0.0, INPUT_SIZES[expert]) for frame, box, _ in faces]
    if expert == "fer":
        (torch_probs, torch_pooled), (onnx_probs, onnx_pooled) = both(lambda: mini_xception.classify(crops))
        for name in mini_xception.FEATURE_DIMS:
            close(torch_pooled[name], onnx_pooled[name])
    else:
        module = affectnet_emotions if expert == "affectnet" else face_api_expression
        torch_probs, onnx_probs = both(lambda: module.classify(crops))
    close(torch_probs, onnx_probs)
    close(onnx_probs.sum(axis=1), np.ones(len(crops)))


def test_face_descriptors(faces):
    crops = [crop_square(frame, FACE_API_CROP.box(box), 0.0, 150) for frame, box, _ in faces]
    close(*both(lambda: face_api_recognition.describe(crops)))


def test_speaker_embedding(one_torch_thread):
    """Fragments of real speech from 25 ms to the whole 3.6 s, in one batch and in slices that carry the state."""
    from viper.extractors.base import create_extractor

    speech = take_speech(SMILING)
    lengths = (400, 1_600, 5_000, 16_000, 25_600, len(speech))
    fragments = [speech[start : start + length] for start, length in zip((0, 8_000, 3_000, 20_000, 0, 0), lengths,
                                                                         strict=True)]
    for options in ({}, {"slice_frames": 60}):
        encoder = create_extractor("audio:resemblyzer", options)
        encoder.ensure_loaded()
        torch_out, onnx_out = both(lambda encoder=encoder: encoder.embed(fragments))
        assert np.isfinite(onnx_out).all()
        close(torch_out, onnx_out)


def load_export_script():
    spec = importlib.util.spec_from_file_location("export_onnx", REPO / "scripts" / "export_onnx.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_shipped_onnx_files_are_fresh_exports(tmp_path, one_torch_thread):
    """Each .onnx in viper/assets gives what a new export of the PyTorch module gives: a module or weights changed
    without running scripts/export_onnx.py fail here."""
    import torch

    script = load_export_script()
    assert {spec.asset for spec in script.EXPORTS} == set(EXPORTED)
    torch.manual_seed(0)
    for spec in script.EXPORTS:
        fresh = onnxruntime.InferenceSession(str(script.export(spec, tmp_path)), providers=["CPUExecutionProvider"])
        shipped = runtime.session(spec.asset)
        inputs = {name: value.numpy() for name, value in zip(spec.inputs, spec.example(), strict=True)}
        for ours, theirs in zip(shipped.run(None, inputs), fresh.run(None, inputs), strict=True):
            assert np.abs(ours - theirs).max() <= 1e-6, spec.asset


EXPORTED = ("face_landmarker/face_detector.onnx", "face_landmarker/face_landmarks_detector.onnx",
            "face_landmarker/face_blendshapes.onnx", mini_xception.ONNX, affectnet_emotions.ONNX,
            face_api_expression.ONNX, face_api_recognition.ONNX, "resemblyzer_ge2e.onnx")


def test_every_exported_network_ships_with_a_licence():
    assets = Path(runtime.__file__).parent / "assets"
    licences = " ".join(path.read_text() for path in assets.rglob("*LICENSE*.txt"))
    for asset in EXPORTED:
        assert (assets / asset).is_file() and Path(asset).name in licences


def test_runtime_is_onnx_on_cpu_and_torch_where_forced_or_on_cuda():
    assert runtime.onnxruntime_installed()
    with forced(None):
        assert runtime.choose("cpu") == "onnx"
        assert runtime.choose("cuda") == runtime.choose("cuda:1") == "torch"
        assert runtime.choose("cpu", "torch") == "torch"
        assert isinstance(mini_xception.load("cpu"), runtime.OnnxNetwork)
    with forced("torch"):
        assert runtime.choose("cpu") == "torch"
        assert isinstance(mini_xception.load("cpu"), runtime.TorchNetwork)
    with pytest.raises(SettingError, match="runtime"):
        runtime.choose("cuda", "onnx")
    with pytest.raises(SettingError, match="runtime must be one of onnx, torch"):
        runtime.force("tensorrt")


def test_sessions_are_made_once_per_thread_count(one_torch_thread):
    first = runtime.session(mini_xception.ONNX)
    assert runtime.session(mini_xception.ONNX) is first
    assert first.get_session_options().intra_op_num_threads == 1  # as torch, under one_torch_thread


def test_a_large_batch_runs_in_pieces_with_the_same_values(monkeypatch, one_torch_thread):
    """Many clips' faces at once (--batch-videos) run ROWS_A_CALL rows at a time, so ONNX Runtime's memory stays
    that of one piece; the values are those of one call."""
    from viper.backbones import face_blendshapes, speaker_encoder

    points = np.random.default_rng(0).random((2 * runtime.ROWS_A_CALL + 5, 146, 2), np.float32)
    calls = []
    real_run = runtime.run
    monkeypatch.setattr(runtime, "run", lambda runner, names, inputs: calls.append(len(inputs[0]))
                        or real_run(runner, names, inputs))
    pieces = runtime.OnnxNetwork(face_blendshapes.ONNX)(points)[0]
    assert calls == [runtime.ROWS_A_CALL, runtime.ROWS_A_CALL, 5]
    monkeypatch.setattr(runtime, "ROWS_A_CALL", len(points))
    np.testing.assert_allclose(pieces, runtime.OnnxNetwork(face_blendshapes.ONNX)(points)[0], atol=1e-6)
    # the speaker encoder's LSTM state is (3, B, 256): no common first axis, so it runs whole
    monkeypatch.setattr(runtime, "ROWS_A_CALL", 64)
    calls.clear()
    rows = 70
    state = np.zeros((3, rows, 256), np.float32)
    outputs = runtime.OnnxNetwork(speaker_encoder.ONNX)(np.zeros((rows, 20, 40), np.float32),
                                                        np.full(rows, 20, np.int64), state, state)
    assert calls == [rows] and outputs[-1].shape == (rows, 256)


def test_store_keys_do_not_depend_on_the_runtime():
    from viper.extraction import ExtractConfig, Extraction

    with forced(None):
        keys = {name: sorted(Extraction(ExtractConfig(runtime=name)).keys()) for name in runtime.RUNTIMES}
    assert keys["onnx"] == keys["torch"]


MESH = {"face_landmarker/face_landmarks_detector.onnx", "face_landmarker/face_blendshapes.onnx"}  # fau's
FACE_NETWORKS = MESH | {"face_landmarker/face_detector.onnx", face_api_recognition.ONNX,  # who is the main person
                        mini_xception.ONNX, affectnet_emotions.ONNX, face_api_expression.ONNX}


def test_extract_runs_the_networks_in_the_runtime_it_is_given(tmp_path, one_torch_thread):
    """runtime="torch" makes no ONNX Runtime session, runtime="onnx" one per face network, and both stores hold
    the same keys and features (to CHAIN_TOLERANCE)."""
    from viper.jobs.extract import extract
    from viper.store import FeatureStore

    stores = {}
    for name in runtime.RUNTIMES:
        runtime.close_sessions()
        with forced(None):
            summary = extract(take(SMILING), tmp_path / name, frames=4, extractors=["fau", "expression"],
                              runtime=name)
            assert runtime.forced() == name  # the run's Extraction set it for the process
        assert summary.done == 1 and not summary.failed
        assert runtime.open_sessions() == (FACE_NETWORKS if name == "onnx" else set())
        stores[name] = FeatureStore.open(tmp_path / name)
    keys = stores["onnx"].extractor_keys()
    assert keys == stores["torch"].extractor_keys() and len(keys) == 2
    for key in keys:
        (onnx_values, onnx_mask), (torch_values, torch_mask) = (stores[name].read(key, Path(SMILING).stem)
                                                                for name in runtime.RUNTIMES)
        assert onnx_mask.all() and (onnx_mask == torch_mask).all()
        # through the whole chain (detector, mesh, blendshapes) the networks' 1e-4 grow to 2.1e-4 on a blendshape
        assert np.abs(torch_values - onnx_values).max() <= CHAIN_TOLERANCE


def test_predict_runs_the_networks_in_the_runtime_it_is_given(one_torch_thread):
    from viper.jobs.predict import predict

    scores = {}
    for name in ("torch", "onnx"):
        runtime.close_sessions()
        with forced(None):
            (record,), failures = predict(take(SMILING), runtime=name)
        assert not failures
        assert runtime.open_sessions() == (set() if name == "torch" else FACE_NETWORKS - MESH)
        scores[name] = list(record["scores"].values())
    close(scores["torch"], scores["onnx"])


@pytest.mark.parametrize(("command", "flags", "message"), [
    ("predict", ["--runtime", "tensorrt"], "--runtime must be one of onnx, torch, got 'tensorrt'"),
    ("inspect", ["--runtime", "ONNX", "--out", "page.html"], "--runtime must be one of onnx, torch, got 'ONNX'"),
    ("extract", ["--runtime", "onnx", "--device", "cuda", "--out", "store"],
     "--runtime onnx runs on the CPU only, not on cuda: use torch there"),
    ("predict", ["--runtime", "onnx", "--device", "cuda:1"], "--runtime onnx runs on the CPU only, not on cuda:1"),
])
def test_cli_refuses_a_runtime_it_cannot_use(tmp_path, monkeypatch, command, flags, message):
    """One line naming the option, exit status 2, no traceback, nothing written (onnx on cuda is refused before the
    device is looked for, so the same message on any machine)."""
    from typer.testing import CliRunner

    from viper.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [command, str(take(SMILING)), *flags])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {message}")
    assert "Traceback" not in result.output and list(tmp_path.iterdir()) == []
