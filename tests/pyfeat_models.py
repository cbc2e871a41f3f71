"""Py-Feat 2's Detectorv1 models with random weights, laid out as the hub caches them in py-feat's resources folder.

py-feat's real code then builds and runs the detector offline, end to end, where the real weights (hub only) are
absent: the numbers mean nothing, but the rows, columns and no-face handling are py-feat's own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REVISION = "0" * 40  # any commit hash: refs/main points at it


def cache_file(cache: Path, repo: str, name: str, write: Callable[[Path], object]) -> None:
    """`write(path)` where the hub would have cached `name` of `repo` at its main revision."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(REVISION)
    snapshot = folder / "snapshots" / REVISION
    snapshot.mkdir(parents=True, exist_ok=True)
    write(snapshot / name)


def random_xgb_au(face_size: int = 112) -> object:
    """py-feat's XGB AU model (scalers, PCAs, 20 classifiers) fitted to random HOG features of the right size."""
    import xgboost
    from feat.au_detectors.StatLearning.SL_test import XGBClassifier
    from feat.utils.face_mask import extract_hog_features_batched
    from feat.utils.image_operations import HOGLayer
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    hog = HOGLayer(orientations=8, pixels_per_cell=8, cells_per_block=2, block_normalization="L2-Hys",
                   feature_vector=True, device="cpu")
    features, _ = extract_hog_features_batched(torch.rand(1, 3, face_size, face_size), torch.rand(1, 136), hog)
    rng = np.random.default_rng(0)
    hogs, landmarks, labels = rng.random((40, features.shape[1])), rng.random((40, 136)), np.arange(40) % 2
    scaler = StandardScaler().fit(hogs)
    pca = PCA(n_components=5).fit(scaler.transform(hogs))
    inputs = np.concatenate([pca.transform(scaler.transform(hogs)), landmarks], axis=1)
    model = XGBClassifier()
    classifiers = {key: xgboost.XGBClassifier(n_estimators=2, max_depth=2).fit(inputs, labels) for key in model.au_keys}
    model.load_weights(scaler_upper=scaler, pca_model_upper=pca, scaler_lower=scaler, pca_model_lower=pca,
                       scaler_full=scaler, pca_model_full=pca, classifiers=classifiers)
    return model


def random_retinaface() -> torch.nn.Module:
    """RetinaFace-R34 with random weights, tamed: boxes at its anchors (random offsets overflow to infinite boxes),
    and face scores spread around 0.5 rather than all 1.0 (ties would let the batch layout pick the first face)."""
    from feat.face_detectors.Retinaface.Retinaface_model import RETINAFACE_R34_CFG, RetinaFace

    net = RetinaFace(RETINAFACE_R34_CFG).eval()
    for parameter in net.BboxHead.parameters():
        torch.nn.init.zeros_(parameter)
    logits = []
    hook = net.ClassHead.register_forward_hook(lambda module, inputs, output: logits.append(output))
    with torch.no_grad():
        net(torch.rand(1, 3, 224, 224) * 255)
    hook.remove()
    for parameter in net.ClassHead.parameters():
        parameter.data /= logits[0].std()
    return net


def neutral_landmarks() -> torch.nn.Module:
    """MobileFaceNet with random weights whose output is always py-feat's neutral face, spread over the crop: the
    AU model aligns faces on their landmarks, and random landmarks would be a degenerate face."""
    from feat.landmark_detectors.mobilefacenet_test import MobileFaceNet
    from feat.utils.image_operations import neutral

    points = neutral[["x", "y"]].to_numpy()
    points = 0.2 + 0.6 * (points - points.min(axis=0)) / np.ptp(points, axis=0)  # (68, 2) in [0.2, 0.8]
    model = MobileFaceNet([112, 112], 136, device="cpu")
    head = model.output_layer
    torch.nn.init.zeros_(head.linear.weight)
    head.bn.bias.data = torch.tensor(points.reshape(-1), dtype=torch.float32)  # x0, y0, x1, y1, ...
    return model


def save_pyfeat_models(cache: Path) -> Path:
    """The models `Detectorv1(au_model="xgb", emotion_model="resmasknet", identity_model=None, gaze_model=None)`
    loads, with random weights, in `cache` (the folder py-feat's `get_resource_path()` must return)."""
    import skops.io
    from feat.emo_detectors.ResMaskNet.resmasknet_test import ResMasking
    from safetensors.torch import save_file

    torch.manual_seed(0)
    faces = random_retinaface().state_dict()
    cache_file(cache, "py-feat/retinaface_r34", "model.safetensors", lambda path: save_file(faces, path))
    landmarks = {"state_dict": neutral_landmarks().state_dict()}
    cache_file(cache, "py-feat/mobilefacenet", "mobilefacenet_model_best.pth.tar",
               lambda path: torch.save(landmarks, path))
    cache_file(cache, "py-feat/xgb_au", "xgb_au_classifier_v2.skops",
               lambda path: skops.io.dump(random_xgb_au(), path))
    emotions = ResMasking("", in_channels=3)
    emotions.fc = torch.nn.Sequential(torch.nn.Dropout(0.4), torch.nn.Linear(512, 7))
    state = emotions.state_dict()  # 138M parameters: saved in half precision, 275 MB rather than 550
    half = {"net": {key: value.half() if value.is_floating_point() else value for key, value in state.items()}}
    cache_file(cache, "py-feat/resmasknet", "config.json",
               lambda path: path.write_text(json.dumps({"in_channels": 3, "num_classes": 7})))
    cache_file(cache, "py-feat/resmasknet", "ResMaskNet_Z_resmasking_dropout1_rot30.pth",
               lambda path: torch.save(half, path))
    return cache
