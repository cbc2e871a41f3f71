"""Small pretrained networks re-implemented in PyTorch, with weights converted once into viper/assets.

A network's PyTorch module lives in `<name>_net.py`, which imports torch at its top: viper.runtime's torch runtime
builds it (through the factory `<name>.load` hands to `runtime.network`), and scripts/export_onnx.py exports it.
`<name>.py` prepares inputs and reads outputs in numpy and imports no torch, so prediction under the onnx runtime
runs without it.
"""

from functools import cache


@cache
def face_landmarker_weights(network: str) -> dict:
    """The converted float32 arrays of one network of MediaPipe's Face Landmarker bundle (assets/face_landmarker/
    NETWORK.npz: face_detector, face_landmarks_detector, face_blendshapes), read once per process."""
    from importlib.resources import files

    import numpy as np

    with np.load(files("viper.assets") / "face_landmarker" / f"{network}.npz") as npz:
        return {name: npz[name] for name in npz.files}


def load_weights(model, weights, skip: tuple[str, ...] = ()):
    """A freshly built net with its converted weights (every array of the npz but `skip`), in eval mode; a file
    that does not fit the net (stale or foreign) is an error naming it. BatchNorm counters are not stored."""
    import numpy as np
    import torch

    with np.load(weights, allow_pickle=False) as arrays:
        state = {name: torch.from_numpy(arrays[name]) for name in arrays.files if name not in skip}
    result = model.load_state_dict(state, strict=False)
    missing = [name for name in result.missing_keys if not name.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"{weights}: weights do not fit ({missing[:3]}, {result.unexpected_keys[:3]})")
    return model.eval()


def softmax(logits):
    """Row-wise softmax of (B, K) logits in numpy: the classifiers' last step, the same whichever runtime ran them."""
    import numpy as np

    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
