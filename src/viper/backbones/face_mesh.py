"""Face Mesh v2 landmarks and the 52 blendshapes of each clip's detected faces, computed once per clip.

The mesh reads the FaceLandmarker's crop of the clip's detected face (the detector's box grown 1.5 times, levelled
by the eye keypoints where the detector gives them), so the face is the one the detector chose. All the faces of
a batch of clips go through the mesh and the blendshape network together. A face is kept where the mesh's own
face-presence probability is at least 0.5 (MediaPipe's threshold); elsewhere the frame is masked.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .face_blendshapes import BLENDSHAPE_NAMES, FaceBlendshapes
from .face_mesh_v2 import NUM_LANDMARKS, FaceMeshV2, face_roi
from .video_cache import VideoCache

MIN_PRESENCE = 0.5

_models: dict[str, tuple[FaceMeshV2, FaceBlendshapes]] = {}
_lock = threading.Lock()
_cache = VideoCache()


@dataclass
class ClipMeshes:
    """Per frame of a clip: landmarks (N, 478, 3) in frame pixels (z on the x scale) and blendshapes (N, 52),
    zero where `mask` (N,) is False (no face, or the mesh finds none in the crop)."""

    mask: np.ndarray
    landmarks: np.ndarray
    blendshapes: np.ndarray


def load_face_mesh(device: str = "cpu") -> tuple[FaceMeshV2, FaceBlendshapes]:
    """The process-wide mesh and blendshape networks for a device."""
    with _lock:
        if device not in _models:
            _models[device] = (FaceMeshV2(device), FaceBlendshapes(device))
        return _models[device]


def region(box: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    """The mesh's crop region of a face: levelled by its eyes when known, else upright."""
    if np.isfinite(eyes).all():
        return face_roi(box, eyes)
    x0, y0, x1, y1 = box
    return face_roi(box, np.array([[x0, y0], [x1, y0]]))  # a level eye line: no rotation


def clip_meshes(clips: list, device: str = "cpu") -> list[ClipMeshes]:
    """Landmarks and blendshapes of each clip's faces, computed once per clip object."""
    return _cache.get_many(clips, (device,), lambda todo: _meshes(todo, device))


def _meshes(clips: list, device: str) -> list[ClipMeshes]:
    mesh, blendshapes = load_face_mesh(device)
    faces = [(c, i) for c, clip in enumerate(clips) if clip.frames is not None
             for i in np.flatnonzero(clip.face_mask)]
    frames = [clips[c].frames[i] for c, i in faces]
    rois = np.array([region(clips[c].face_boxes[i], clips[c].face_eyes[i]) for c, i in faces]).reshape(-1, 5)
    found = mesh(frames, rois)
    scores = blendshapes(found.landmarks)
    out = [ClipMeshes(np.zeros(clip.n, bool), np.zeros((clip.n, NUM_LANDMARKS, 3), np.float32),
                      np.zeros((clip.n, len(BLENDSHAPE_NAMES)), np.float32)) for clip in clips]
    for row, (c, i) in enumerate(faces):
        if found.presence[row] >= MIN_PRESENCE:
            out[c].mask[i] = True
            out[c].landmarks[i] = found.landmarks[row]
            out[c].blendshapes[i] = scores[row]
    return out
