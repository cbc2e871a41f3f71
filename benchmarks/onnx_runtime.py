"""Per-frame time of viper's face networks under PyTorch and under ONNX Runtime, one thread, measured in one run.

    python benchmarks/onnx_runtime.py [--frames 4] [--repeats 3]

Frames: `--frames` from each of the 60 bundled takes (224 x 224, one face each). Timed per frame, pre- and
post-processing included: the face chain (BlazeFace, Face Mesh v2 and the blendshapes: what
benchmarks/face_mesh_v2_parity.py times against MediaPipe) one frame at a time and 16 at a time, and the general
model's three expression experts on the detected faces. The runtimes take turns, `--repeats` rounds, and each
keeps its best round; the load average is recorded before and after, since other processes on the machine slow
both. The table is recorded as the figure `onnx-runtime` (docs/figures/onnx-runtime.json, shown in docs/speed.md).
"""

from __future__ import annotations

import argparse
import time

import figures
import numpy as np
import torch

from viper import runtime
from viper.backbones.blazeface import BlazeFace
from viper.backbones.face_blendshapes import FaceBlendshapes
from viper.backbones.face_mesh_v2 import FaceMeshV2, face_roi
from viper.extractors.expression_general import CROPS, INPUT_SIZES, expert_log_probs
from viper.faces import crop_square
from viper.jobs.demo import demo_clips
from viper.video import read_frames

# the networks timed, their exported weights, the runtime that picks and the crops the experts read
MEASURES = ["src/viper/runtime.py", "src/viper/backbones", "src/viper/assets",
            "src/viper/extractors/expression_general.py", "src/viper/faces.py"]


def face_chain(models, frames: list[np.ndarray], batch: int) -> list:
    """Landmarks and blendshapes of every face found, `batch` frames at a time."""
    detector, mesh, blendshapes = models
    out = []
    for start in range(0, len(frames), batch):
        chunk = frames[start : start + batch]
        found = detector(chunk)
        owners = [index for index, faces in enumerate(found) for _ in faces.scores]
        rois = np.array([face_roi(box, points) for faces in found
                         for box, points in zip(faces.boxes, faces.keypoints, strict=True)]).reshape(-1, 5)
        meshes = mesh([chunk[index] for index in owners], rois)
        out.append((meshes, blendshapes(meshes.landmarks)))
    return out


def experts(faces: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    return [expert_log_probs(name, [crop_square(frame, CROPS[name].box(box), 0.0, INPUT_SIZES[name])
                                    for frame, box in faces], "cpu") for name in CROPS]


def seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4, help="frames sampled per bundled take")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per runtime, alternating")
    args = parser.parse_args()
    torch.set_num_threads(1)  # viper.runtime gives ONNX Runtime as many intra-op threads as torch has
    frames = [frame for path in sorted(demo_clips().glob("*.mp4")) for frame in read_frames(path, args.frames).frames]
    models = BlazeFace(), FaceMeshV2(), FaceBlendshapes()
    found = models[0](frames)
    faces = [(frame, faces.boxes[0]) for frame, faces in zip(frames, found, strict=True) if len(faces.scores)]
    first = frames[:16]  # each network alone on one batch of 16 frames (per frame: the chain's parts)
    owners = [index for index, faces in enumerate(found[:16]) for _ in faces.scores]
    rois = np.array([face_roi(box, points) for faces in found[:16]
                     for box, points in zip(faces.boxes, faces.keypoints, strict=True)]).reshape(-1, 5)
    meshes = models[1]([first[index] for index in owners], rois)
    tasks = {"face chain, 1 frame a batch": lambda: face_chain(models, frames, 1),
             "face chain, 16 frames a batch": lambda: face_chain(models, frames, 16),
             "3 expression experts, all faces": lambda: experts(faces),
             "BlazeFace alone, 16 frames": lambda: [models[0](first) for _ in range(len(frames) // 16)],
             "Face Mesh v2 alone, 16 frames": lambda: [models[1]([first[i] for i in owners], rois)
                                                        for _ in range(len(frames) // 16)],
             "blendshapes alone, 16 frames": lambda: [models[2](meshes.landmarks) for _ in range(len(frames) // 16)]}
    setting = (f"{len(frames)} frames of {len(list(demo_clips().glob('*.mp4')))} bundled takes, {len(faces)} faces; "
               f"torch {torch.__version__}, onnxruntime {__import__('onnxruntime').__version__}, 1 thread")
    print(setting)
    began = figures.begin()
    best = {(task, name): float("inf") for task in tasks for name in runtime.RUNTIMES}
    for name in runtime.RUNTIMES:  # warm-up: models built, sessions made
        runtime.force(name)
        for run in tasks.values():
            run()
    for _ in range(args.repeats):
        for name in runtime.RUNTIMES:
            runtime.force(name)
            for task, run in tasks.items():
                best[task, name] = min(best[task, name], seconds(run))
    runtime.force(None)
    ms = {key: 1000 * value / len(frames) for key, value in best.items()}
    rows = [{"task": task, "torch": ms[task, "torch"], "onnx": ms[task, "onnx"],
             "speed-up": ms[task, "torch"] / ms[task, "onnx"]} for task in tasks]
    print(f"{'ms per frame':34s} {'torch':>8s} {'onnx':>8s} {'speed-up':>9s}")
    for row in rows:
        print(f"{row['task']:34s} {row['torch']:8.2f} {row['onnx']:8.2f} {row['speed-up']:8.2f}x")
    figures.record("onnx-runtime", rows, began=began, measures=MEASURES,
                   columns=[("task", "ms per frame"), ("torch", "torch", "{:.2f}"), ("onnx", "onnx", "{:.2f}"),
                            ("speed-up", "speed-up", "{:.2f}×")],
                   notes=f"{setting}; the runtimes alternated, best of {args.repeats} rounds each")


if __name__ == "__main__":
    main()
