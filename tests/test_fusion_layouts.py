"""The per-modality token layout, modality dropout and `evaluate(drop=...)` on a small synthetic store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic import make_synthetic_store
from typer.testing import CliRunner

from viper.checkpoint import load_checkpoint, predict_arrays
from viper.cli import app
from viper.errors import ViperError
from viper.jobs.evaluate import evaluate
from viper.jobs.train import TrainConfig, drop_modalities, train
from viper.metrics import pearson_scores
from viper.model import Perceiver, model_config
from viper.store import FeatureStore
from viper.tokens import load_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EMOTIONS = ("joy", "fear", "calm")
TINY = {"num_latents": 8, "latent_dim": 16, "input_dim": 16, "self_layers": 1, "latent_heads": 2}
PER_MODALITY = {**TINY, "layout": "per_modality"}
FACE, AUDIO = "face_image-test-aaaa", "audio-test-bbbb"


def tiny_config(**changes) -> TrainConfig:
    base = {"epochs": 30, "lr": 1e-2, "lr_step_epochs": 100, "batch_size": 16, "model_overrides": PER_MODALITY}
    return TrainConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> FeatureStore:
    dims = {FACE: ("face_image", 6), AUDIO: ("audio", 4)}
    return make_synthetic_store(tmp_path_factory.mktemp("store"), dims, EMOTIONS, n_clips=96, n_frames=8)


@pytest.fixture(scope="module")
def run(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    overrides = {**PER_MODALITY, "attn_dropout": 0.0, "ff_dropout": 0.0}
    train(store.root, out, tiny_config(model_overrides=overrides))
    return out


def per_modality_model(**changes) -> Perceiver:
    return Perceiver(token_dims=(6, 4), num_outputs=3, config=model_config("compact", {**PER_MODALITY, **changes}))


# --- model --------------------------------------------------------------------------------------------
def test_concat_stays_the_default_with_the_same_parameters():
    assert model_config().layout == "concat" and model_config("paper").layout == "concat"
    concat = Perceiver(token_dims=(6, 4), num_outputs=3, config=model_config("compact", TINY))
    assert not any(name.startswith(("project_parts", "modality_embedding")) for name in concat.state_dict())
    with pytest.raises(ViperError, match="layout"):
        Perceiver(token_dims=(6, 4), num_outputs=3, config=model_config("compact", {**TINY, "layout": "stack"}))


def test_per_modality_masked_modality_frames_change_nothing():
    torch.manual_seed(0)
    model = per_modality_model().eval()
    model.set_standardisation(torch.randn(10), torch.rand(10) + 0.5)
    tokens = torch.randn(4, 8, 10)
    masks = torch.rand(4, 8, 2) > 0.4
    masks[:, 0] = True
    changed = tokens.clone()
    changed[..., :6][~masks[..., 0]] = 1e4  # face part where the face is masked
    changed[..., 6:][~masks[..., 1]] = -7.0  # audio part where the audio is masked
    torch.testing.assert_close(model(tokens, masks), model(changed, masks), rtol=0, atol=1e-6)
    # the masks are read per modality: masking a valid modality-frame does change the scores
    fewer = masks.clone()
    fewer[:, 0, 1] = False
    assert not torch.allclose(model(tokens, masks), model(tokens, fewer))
    # a (V, N) frame mask means every modality of a valid frame
    frame_mask = masks.any(-1)
    torch.testing.assert_close(model(tokens, frame_mask), model(tokens, frame_mask[..., None].expand(-1, -1, 2)))


def test_concat_takes_frame_and_modality_masks():
    model = Perceiver(token_dims=(6, 4), num_outputs=3, config=model_config("compact", TINY)).eval()
    tokens, frame_mask = torch.randn(3, 8, 10), torch.rand(3, 8) > 0.3
    torch.testing.assert_close(model(tokens, frame_mask), model(tokens, frame_mask[..., None].expand(-1, -1, 2)))


@pytest.mark.parametrize("mask_shape", [(2, 8), (2, 8, 2)])
def test_per_modality_all_masked_gives_finite_scores_and_gradients(mask_shape):
    model = per_modality_model(input_dim=None)  # None: the latent width
    tokens = torch.full((2, 8, 10), float("nan"))
    out = model(tokens, torch.zeros(mask_shape, dtype=torch.bool))
    out.sum().backward()
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# --- modality dropout ---------------------------------------------------------------------------------
def test_modality_dropout_never_masks_every_modality_of_a_clip():
    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(500, 8, 3, generator=generator) > 0.3
    masks[:50, :, 1:] = False  # clips with one modality only
    masks[50:60] = False  # clips with nothing
    assert torch.equal(drop_modalities(masks, 0.0), masks)
    for p in (0.3, 0.9, 1.0):
        dropped = drop_modalities(masks, p, generator)
        assert not (dropped & ~masks).any()  # only ever masks
        present, kept = masks.any(1), dropped.any(1)
        assert kept[present.any(-1)].any(-1).all()  # a clip with any modality keeps one
        assert torch.equal(dropped[:50], masks[:50])  # a lone modality is never dropped
        whole = ((dropped == masks).all(1) | ~dropped.any(1))  # modalities are dropped whole, never frame by frame
        assert whole.all()
        if p == 1.0:
            assert (kept.sum(-1) == present.any(-1).long()).all()
    rate = 1 - drop_modalities(masks[60:], 0.3, generator).any(1).float().mean() / masks[60:].any(1).float().mean()
    assert 0.2 < rate < 0.35


def test_modality_dropout_is_off_at_evaluation(store, tmp_path):
    config = tiny_config(epochs=2, modality_dropout=0.5)
    result = train(store.root, tmp_path / "run", config)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["modality_dropout"] == 0.5
    metrics = evaluate(tmp_path / "run", store.root, "dev", tmp_path / "eval", plots=False)
    assert metrics["mean_pearson"] == pytest.approx(result.best_dev_pearson, abs=1e-6)
    with pytest.raises(ViperError, match="modality_dropout"):
        train(store.root, tmp_path / "bad", tiny_config(modality_dropout=1.5))


# --- training, checkpoints, evaluation -------------------------------------------------------------------
def test_per_modality_learns_a_synthetic_task(run):
    history = pd.read_csv(run / "history.csv")
    assert history["dev_mean_pearson"].max() > 0.9
    assert json.loads((run / "config.json").read_text())["model"]["layout"] == "per_modality"


def test_checkpoint_round_trip_with_per_modality(run, store):
    bundle = load_checkpoint(run, runtime="torch")
    assert bundle.model.config.layout == "per_modality"
    assert any(name.startswith("project_parts") for name in bundle.model.state_dict())
    data = load_split(store, bundle.keys, "dev")
    predictions = predict_arrays(bundle, data.tokens, data.modality_masks)
    again = load_checkpoint(run / "best.pt", runtime="torch")
    np.testing.assert_array_equal(predictions, predict_arrays(again, data.tokens, data.modality_masks))
    mean_r = pearson_scores(predictions, data.labels, data.emotions)[1]
    assert mean_r == pytest.approx(bundle.info["dev_mean_pearson"], abs=1e-6)


def test_evaluate_drop_equals_data_without_that_modality(run, store, tmp_path):
    metrics = evaluate(run, store.root, "test", drop=["audio"], plots=False)
    folder = run / "eval-test-without-audio"
    assert metrics["dropped"] == ["audio"] and json.loads((folder / "metrics.json").read_text())["dropped"] == ["audio"]
    full = evaluate(run, store.root, "test", tmp_path / "full", plots=False)
    assert "dropped" not in full and full["mean_pearson"] != metrics["mean_pearson"]

    silent = tmp_path / "silent"  # the same store with every audio frame masked
    shutil.copytree(store.root, silent)
    silent_store = FeatureStore.open(silent)
    for video_id in silent_store.video_ids(AUDIO):
        values, mask = silent_store.read(AUDIO, video_id)
        silent_store.write(AUDIO, video_id, values, np.zeros_like(mask))
    expected = evaluate(run, silent, "test", tmp_path / "silent-eval", plots=False)
    assert expected["mean_pearson"] == metrics["mean_pearson"]
    pd.testing.assert_frame_equal(pd.read_csv(folder / "predictions.csv"),
                                  pd.read_csv(tmp_path / "silent-eval" / "predictions.csv"))

    by_key = evaluate(run, store.root, "test", tmp_path / "by-key", drop=[AUDIO, "face_image"], plots=False)
    assert by_key["dropped"] == [feature.modality for feature in load_checkpoint(run).features]  # token order
    with pytest.raises(ViperError, match="cannot drop 'video'.*audio.*face_image"):
        evaluate(run, store.root, "test", tmp_path / "bad", drop=["video"])


def test_cli_flags_and_config_merge(store, tmp_path):
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"epochs": 1, "lr": 1e-2, "model_overrides": TINY, "modality_dropout": 0.1}))
    out = tmp_path / "run"
    args = ["train", "--features", str(store.root), "--out", str(out), "--config", str(config), "--device", "cpu"]
    result = CliRunner().invoke(app, [*args, "--layout", "per_modality", "--modality-dropout", "0.3"])
    assert result.exit_code == 0, result.output
    info = json.loads((out / "config.json").read_text())
    assert info["model"]["layout"] == "per_modality" and info["model"]["latent_dim"] == 16
    assert info["train"]["modality_dropout"] == 0.3 and info["train"]["epochs"] == 1

    kept = tmp_path / "kept"  # flags left out: the config file's values stay, concat stays the default
    result = CliRunner().invoke(app, ["train", "--features", str(store.root), "--out", str(kept), "--config",
                                      str(config), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    info = json.loads((kept / "config.json").read_text())
    assert info["model"]["layout"] == "concat" and info["train"]["modality_dropout"] == 0.1

    result = CliRunner().invoke(app, ["evaluate", str(out), "--features", str(store.root), "--drop", "audio"])
    assert result.exit_code == 0, result.output
    assert (out / "eval-test-without-audio" / "metrics.json").exists() and "without audio" in result.output
    result = CliRunner().invoke(app, ["evaluate", str(out), "--features", str(store.root), "--drop", "video"])
    assert result.exit_code == 2 and "cannot drop 'video'" in result.output
