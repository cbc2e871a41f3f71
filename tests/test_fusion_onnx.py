"""best.onnx: `viper train` exports the fusion model beside best.pt with the checkpoint's other fields, and
`load_checkpoint` gives it as the model (no torch) where viper.runtime chooses onnx: the same scores as torch's
forward (1e-4) on real features of bundled takes, with frames and whole modalities missing, one clip at a time and
several."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from media import bundled_takes_store

from viper import runtime
from viper.checkpoint import load_checkpoint, predict_arrays, predict_model, torch_load, torch_save_atomic
from viper.fusion_onnx import DIGEST_KEY, FusionOnnx, export_fusion, file_sha256, load_twin, onnx_file
from viper.jobs.train import TrainConfig, train
from viper.model import Perceiver, model_config
from viper.store import FeatureStore
from viper.tokens import load_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TAKES = ("01-01-03-02-01-01-05.mp4", "01-01-04-02-01-01-05.mp4",  # happy, sad: statement 01 (train)
         "01-01-03-02-02-01-05.mp4", "01-01-04-02-02-01-05.mp4")  # statement 02 (test)
# the paper preset with one self-attention layer (its 26 take minutes on 2 cores) and 6 cross-attention heads
# (the 66-d tokens of fau + expression do not split into its 8)
RUNS = {
    "compact anchored": {},
    "compact not anchored": {"anchor": False},
    "compact per_modality": {"model_overrides": {"layout": "per_modality"}},
    "paper anchored": {"model": "paper", "model_overrides": {"self_layers": 1, "cross_heads": 6}},
    "paper not anchored": {"model": "paper", "model_overrides": {"self_layers": 1, "cross_heads": 6},
                           "anchor": False},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """fau and expression (the prior's evidence) of 4 bundled takes at N = 8: real faces in ~7 s."""
    return bundled_takes_store(tmp_path_factory.mktemp("onnx-store"), TAKES, 8, ["fau", "expression"])


@pytest.fixture(scope="module", params=list(RUNS))
def run(request, store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx-run")
    settings = {"epochs": 2, "lr": 1e-3, "batch_size": 2, "device": "cpu", "allow_shared_people": True}
    train(store, out, TrainConfig(**settings, **RUNS[request.param]))
    anchored = load_checkpoint(out, runtime="torch").model.config.anchor_start >= 0
    assert anchored == RUNS[request.param].get("anchor", True)  # RAVDESS' emotions include the basic ones
    return out


def masks_cases(masks: np.ndarray) -> dict[str, np.ndarray]:
    """The store's per-modality masks (V, N, M) as extracted, and with frames, a modality, a whole clip missing."""
    frames, modality, nothing = masks.copy(), masks.copy(), masks.copy()
    frames[0, [0, 3, 7]] = False
    frames[1, :4] = False
    modality[[0, 2], :, 0] = False  # fau missing from two clips
    modality[1, :, 1] = False  # expression (the prior's evidence) missing from another
    nothing[3] = False
    return {"as extracted": masks, "missing frames": frames, "missing modality": modality, "empty clip": nothing}


def real_tokens(run: Path, store: Path) -> tuple[np.ndarray, np.ndarray]:
    bundle = load_checkpoint(run, runtime="torch")
    splits = [load_split(FeatureStore.open(store), bundle.keys, split) for split in ("train", "test")]
    return np.concatenate([s.tokens for s in splits]), np.concatenate([s.modality_masks for s in splits])


def test_train_writes_best_onnx_of_best_pt_with_its_fields(run):
    twin = load_checkpoint(run)
    assert isinstance(twin.model, FusionOnnx)  # onnx is the CPU's runtime: best.pt's weights are not loaded
    assert onnx_file(twin.path) == run / "best.onnx"
    labels = twin.model.runner.get_modelmeta().custom_metadata_map
    assert labels[DIGEST_KEY] == file_sha256(run / "best.pt")
    torch_bundle = load_checkpoint(run, runtime="torch")
    for field in ("emotions", "features", "n_frames", "train_config", "info", "path", "keys"):
        assert getattr(twin, field) == getattr(torch_bundle, field), field
    assert twin.model.token_dims == tuple(torch_bundle.model.token_dims)
    assert twin.model.num_outputs == len(twin.emotions)
    assert not list(run.glob(".best.onnx.*"))  # written atomically: no temp file left


def test_onnx_scores_as_torch_one_clip_and_several(run, store):
    twin, torch_bundle = load_checkpoint(run), load_checkpoint(run, runtime="torch")
    tokens, extracted = real_tokens(run, store)
    assert len(tokens) == 4 and extracted.any()
    for case, masks in masks_cases(extracted).items():
        expected = predict_model(torch_bundle.model, tokens, masks)
        several = predict_arrays(twin, tokens, masks)
        one_by_one = np.concatenate([predict_arrays(twin, tokens[i : i + 1], masks[i : i + 1])
                                     for i in range(len(tokens))])
        np.testing.assert_allclose(several, expected, atol=1e-4, rtol=0, err_msg=case)
        np.testing.assert_allclose(one_by_one, expected, atol=1e-4, rtol=0, err_msg=case)
    frame_masks = extracted.all(-1)  # a mask per frame, as a caller without modality masks passes
    np.testing.assert_allclose(predict_arrays(twin, tokens, frame_masks),
                               predict_model(torch_bundle.model, tokens, frame_masks), atol=1e-4)


def test_the_runtime_chooses_the_model(run):
    assert runtime.choose("cpu") == "onnx"  # onnxruntime is a dependency
    assert isinstance(load_checkpoint(run).model, FusionOnnx)
    try:
        runtime.force("torch")
        assert isinstance(load_checkpoint(run).model, Perceiver)
    finally:
        runtime.force(None)
    assert isinstance(load_checkpoint(run, runtime="torch").model, Perceiver)


def test_a_run_without_best_onnx_or_with_a_stale_one_scores_with_torch(run, store, tmp_path):
    tokens, masks = real_tokens(run, store)
    old = tmp_path / "old"
    shutil.copytree(run, old)
    (old / "best.onnx").unlink()  # a run trained before viper wrote it
    bundle = load_checkpoint(old)
    assert isinstance(bundle.model, Perceiver)
    np.testing.assert_array_equal(predict_arrays(bundle, tokens, masks), predict_model(bundle.model, tokens, masks))

    stale = tmp_path / "stale"
    shutil.copytree(run, stale)
    payload = torch_load(stale / "best.pt", "a checkpoint", "")
    payload["model_state"] = {name: value + 0.01 if value.is_floating_point() else value
                              for name, value in payload["model_state"].items()}  # best.pt written since
    torch_save_atomic(payload, stale / "best.pt")
    assert load_twin(stale / "best.pt") is None
    bundle = load_checkpoint(stale)
    assert isinstance(bundle.model, Perceiver)
    np.testing.assert_array_equal(predict_arrays(bundle, tokens, masks), predict_model(bundle.model, tokens, masks))

    bare = tmp_path / "bare"
    shutil.copytree(run, bare)
    export_fusion(load_checkpoint(bare, runtime="torch").model, 8, bare / "best.pt", {})  # no checkpoint fields
    assert load_twin(bare / "best.pt") is None and isinstance(load_checkpoint(bare).model, Perceiver)

    damaged = tmp_path / "damaged"
    shutil.copytree(run, damaged)
    (damaged / "best.onnx").write_bytes((run / "best.onnx").read_bytes()[:1000])  # cut short
    assert load_twin(damaged / "best.pt") is None and isinstance(load_checkpoint(damaged).model, Perceiver)


def test_column_masks_index_as_repeat_interleave_did():
    """The model spreads each modality's mask over its columns by indexing (repeat_interleave with a tensor of
    sizes corrupts the TorchScript exporter's -1 constants): the same masks."""
    dims = (6, 4, 7)
    model = Perceiver(token_dims=dims, num_outputs=3, config=model_config("compact"))
    masks = torch.rand(5, 8, 3) > 0.4
    expected = masks.repeat_interleave(torch.tensor(dims), dim=-1)
    assert torch.equal(masks[..., model.column_part], expected)
