"""Fusion model, dataset, training, checkpoints and evaluation on a small synthetic feature store (seconds)."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import pearsonr
from synthetic import make_synthetic_store
from typer.testing import CliRunner

from viper.checkpoint import load_checkpoint, predict_arrays
from viper.cli import app
from viper.errors import ViperError
from viper.extractors.base import Features
from viper.general_model import anchoring
from viper.jobs.evaluate import evaluate
from viper.jobs.train import TrainConfig, train
from viper.jobs.train_report import anchor_movement
from viper.model import Perceiver, absorbed_is_cheaper, count_parameters, model_config
from viper.store import FeatureStore
from viper.tokens import build_tokens, load_split, normalise_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EMOTIONS = ("joy", "fear", "calm")
TINY = {"num_latents": 8, "latent_dim": 16, "input_dim": 16, "self_layers": 1, "latent_heads": 2}


def make_store(root: Path, *, n_clips: int = 96, n_frames: int = 8, splits=("train", "dev", "test")) -> FeatureStore:
    dims = {"face_image-test-aaaa": ("face_image", 6), "audio-test-bbbb": ("audio", 4)}
    return make_synthetic_store(root, dims, EMOTIONS, n_clips=n_clips, n_frames=n_frames, splits=splits)


def tiny_config(**changes) -> TrainConfig:
    base = {"epochs": 30, "lr": 1e-2, "lr_step_epochs": 100, "batch_size": 16, "model_overrides": TINY}
    return TrainConfig(**{**base, **changes})


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> FeatureStore:
    return make_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def run(store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train(
        store.root, out, tiny_config(model_overrides={**TINY, "attn_dropout": 0.0, "ff_dropout": 0.0})
    )
    return out


# --- model --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides",
    [TINY, {**TINY, "input_dim": None, "cross_heads": 2}, {**TINY, "self_layers": 4, "cross_layers": 2}],
)
def test_forward_backward_shapes(overrides):
    model = Perceiver(token_dims=(6, 4), num_outputs=3, config=model_config("compact", overrides))
    tokens, mask = torch.randn(5, 8, 10), torch.rand(5, 8) > 0.3
    out = model(tokens, mask)
    out.sum().backward()
    assert out.shape == (5, 3) and torch.isfinite(out).all()


def test_masked_frames_and_parts_change_nothing():
    torch.manual_seed(0)
    model = Perceiver(token_dims=(6, 4), num_outputs=3, config=model_config("compact", TINY)).eval()
    model.set_standardisation(torch.randn(10), torch.rand(10) + 0.5)
    tokens = torch.randn(4, 8, 10)
    masks = torch.rand(4, 8, 2) > 0.3
    changed = tokens.clone()
    changed[~masks.any(-1)] = 1e4  # masked frames
    changed[..., :6][~masks[..., 0]] = -7.0  # face part of frames where only the face is masked
    assert torch.equal(model(tokens, masks), model(changed, masks))
    # and a masked frame is as good as no frame at all
    frame_mask = masks.any(-1)
    kept = frame_mask[0]
    alone = model(tokens[:1, kept], masks[:1, kept])
    torch.testing.assert_close(alone, model(tokens, masks)[:1], rtol=1e-5, atol=1e-5)


def test_all_masked_clip_gives_finite_scores_and_gradients():
    model = Perceiver(token_dims=(6, 4), num_outputs=3, config=model_config("compact", TINY))
    tokens = torch.full((2, 8, 10), float("nan"))
    mask = torch.zeros(2, 8, dtype=torch.bool)
    out = model(tokens, mask)
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_paper_preset_matches_the_authors_size():
    with torch.device("meta"):
        model = Perceiver(token_dims=(768, 512, 768, 32), num_outputs=7, config=model_config("paper"))
    encoder = count_parameters(model) - count_parameters(model.to_out)
    assert encoder == 273_524_640  # transformers.PerceiverModel(PerceiverConfig(d_model=2080)), no decoder


def textbook_forward(model: Perceiver, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The Perceiver written the plain way with the model's own parameters (every clip's latents, every frame
    projected to keys and values, LayerNorm then Linear): what the model's folded and absorbed attention equals."""
    any_valid = mask.any(-1)
    context = model.project(((tokens - model.token_mean) / model.token_std).masked_fill(~mask[..., None], 0.0))

    def attention(attn, x, context, mask=None):
        q, (k, v) = attn.to_q(x), attn.to_kv(context).chunk(2, dim=-1)
        q, k, v = (t.unflatten(-1, (attn.heads, -1)).transpose(1, 2) for t in (q, k, v))
        attn_mask = None if mask is None else mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=attn.dropout * model.training)
        return attn.to_out(out.transpose(1, 2).flatten(2))

    latents, cross = model.latents.expand(len(tokens), -1, -1), iter(model.cross)
    for index, layer in enumerate(model.layers):
        if index in model.cross_at:
            block = next(cross)
            read = attention(block.attn, block.norm(latents), block.norm_context(context), mask | ~any_valid[:, None])
            latents = latents + read * any_valid[:, None, None]
            latents = latents + block.ff(block.norm_ff(latents))
        normed = layer.norm(latents)
        latents = latents + attention(layer.attn, normed, normed)
        latents = latents + layer.ff(layer.norm_ff(latents))
    return model.to_out(latents.mean(dim=1))


@pytest.mark.parametrize(
    ("overrides", "batch", "absorbed"),
    [
        ({"input_dim": None}, 16, True),  # the compact preset on full tokens: the context is never projected
        ({"input_dim": None}, 1, False),  # one clip: projecting it is cheaper
        ({**TINY, "input_dim": None, "cross_heads": 4, "self_layers": 4, "cross_layers": 2}, 16, True),
        ({"input_dim": 16}, 16, False),  # projected tokens: the context needs a gradient
    ],
)
def test_attention_shortcuts_compute_the_textbook_perceiver(overrides, batch, absorbed):
    """Folded context norm, absorbed cross-attention, fused q/k/v: the same outputs and gradients as the plain
    computation, in float64 to 1e-10, with attention dropout (the same draws) and a clip without valid frames."""
    torch.manual_seed(0)
    config = model_config("compact", {**overrides, "attn_dropout": 0.3, "ff_dropout": 0.0})
    model = Perceiver(token_dims=(60, 40), num_outputs=3, config=config).double()
    model.set_standardisation(torch.randn(100), torch.rand(100) + 0.5)
    with torch.no_grad():
        for parameter in model.parameters():  # norms away from scale 1 and shift 0, so their folding shows
            parameter.add_(torch.randn_like(parameter) * 0.1)
    attn, width = model.cross[0].attn, model.cross[0].norm_context.normalized_shape[0]
    sizes = {"inner": width, "heads": attn.heads, "out": config.latent_dim, "width": width}
    assert absorbed_is_cheaper(batch=batch, latents=config.num_latents, frames=8, **sizes) == absorbed
    tokens, mask = torch.randn(batch, 8, 100, dtype=torch.float64), torch.rand(batch, 8) > 0.3
    mask[0] = False
    parameters = [p for p in model.parameters() if p.requires_grad]
    for train_mode in (False, True):
        model.train(train_mode)
        torch.manual_seed(1)
        ours = model(tokens, mask)
        ours_grads = torch.autograd.grad(ours.square().sum(), parameters)
        torch.manual_seed(1)
        plain = textbook_forward(model, tokens, mask)
        plain_grads = torch.autograd.grad(plain.square().sum(), parameters)
        torch.testing.assert_close(ours, plain, rtol=1e-10, atol=1e-10)
        for ours_grad, plain_grad in zip(ours_grads, plain_grads, strict=True):
            torch.testing.assert_close(ours_grad, plain_grad, rtol=1e-9, atol=1e-10)
    with torch.no_grad():  # inference takes the unfolded projection
        model.eval()
        torch.testing.assert_close(model(tokens, mask), textbook_forward(model, tokens, mask), rtol=1e-10, atol=1e-12)


# --- dataset -------------------------------------------------------------------------------------------
def test_split_names():
    assert [normalise_split(s) for s in ("Train", "devel", "Val", "DEV", "test")] == [
        "train",
        "dev",
        "dev",
        "dev",
        "test",
    ]
    with pytest.raises(ViperError):
        normalise_split("holdout")


def test_build_tokens_concatenates_in_order_with_zeros_where_masked():
    face = (np.ones((2, 3, 2), np.float32), np.array([[1, 1, 0], [1, 0, 0]], bool))
    audio = (np.full((2, 3, 1), 5, np.float32), np.array([[1, 0, 0], [1, 1, 0]], bool))
    tokens, mask, parts = build_tokens({"face": face, "audio": audio}, ["audio", "face"])
    assert tokens.shape == (2, 3, 3) and parts.shape == (2, 3, 2)
    np.testing.assert_array_equal(tokens[0, 1], [0, 1, 1])
    np.testing.assert_array_equal(mask, [[1, 1, 0], [1, 1, 0]])


def test_load_split(store):
    data = load_split(store, ["face_image", "audio"], "dev")
    assert data.tokens.shape[1:] == (8, 10) and data.tokens.dtype == np.float32
    assert data.labels.shape == (len(data), 3) and data.emotions == list(EMOTIONS)
    assert data.modality_masks.shape == (len(data), 8, 2)


@pytest.mark.parametrize("load_clips", [3, 1024])
def test_load_split_fills_what_build_tokens_builds(tmp_path, monkeypatch, load_clips):
    """The split's tokens are filled a modality and a slice of clips at a time (one copy, not three), to the same
    array: values where a modality is valid, zeros where it is masked even where the store holds numbers there."""
    import viper.tokens

    monkeypatch.setattr(viper.tokens, "LOAD_CLIPS", load_clips)
    store = make_store(tmp_path / "s", n_clips=12)
    keys = ["audio-test-bbbb", "face_image-test-aaaa"]
    ids = store.labels()["video_id"].tolist()[:4]
    for index, video_id in enumerate(ids):  # masked frames that hold numbers, not zeros
        values = np.full((8, store.feature_spec(keys[index % 2]).dim), 7.0 + index, np.float32)
        store.write(keys[index % 2], video_id, values, np.arange(8) % 3 > 0)
    data = load_split(store, keys, "train")
    tokens, mask, parts = build_tokens({key: store.load(key, data.video_ids) for key in keys}, keys)
    np.testing.assert_array_equal(data.tokens, tokens)
    np.testing.assert_array_equal(data.mask, mask)
    np.testing.assert_array_equal(data.modality_masks, parts)
    assert (data.tokens == 0).any() and {7.0, 8.0} <= set(np.unique(data.tokens))


def test_label_errors_name_row_and_file(tmp_path):
    bad = make_store(tmp_path / "bad", n_clips=8)
    table = bad.labels()
    table["fear"] = table["fear"].astype(object)
    table.loc[2, "fear"] = "high"
    table.loc[3, "joy"] = np.nan
    table.loc[:, "split"] = "train"
    (bad.root / "labels.csv").write_text(table.to_csv(index=False))
    with pytest.raises(ViperError) as error:
        load_split(bad, None, "train")
    message = str(error.value)
    assert "labels.csv" in message and "line 4" in message and "'high'" in message
    assert "line 5" in message and "joy is missing" in message


# --- training --------------------------------------------------------------------------------------------
def test_learns_a_synthetic_task(run):
    info = json.loads((run / "config.json").read_text())
    history = pd.read_csv(run / "history.csv")
    assert history["dev_mean_pearson"].max() > 0.9
    assert load_checkpoint(run).info["dev_mean_pearson"] == pytest.approx(history["dev_mean_pearson"].max())
    assert info["model"]["latent_dim"] == 16 and info["train"]["lr"] == 1e-2
    assert not (run / "tensorboard").exists()  # only when asked for


def test_tensorboard_only_when_asked_and_refused_clearly_without_the_package(store, tmp_path, monkeypatch):
    """history.csv is always written; `--tensorboard` adds RUN/tensorboard. Without the optional package a run
    trains as before, and asking for TensorBoard is refused before the run folder is made, saying how to get it."""
    train(store.root, tmp_path / "logged", tiny_config(epochs=1, tensorboard=True))
    assert list((tmp_path / "logged" / "tensorboard").iterdir())
    for name in ("tensorboard", "torch.utils.tensorboard"):  # as in a venv without the tensorboard package
        monkeypatch.setitem(sys.modules, name, None)
    args = ["train", "-f", str(store.root), "-o", str(tmp_path / "run"), "--epochs", "1", "--tensorboard"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and not (tmp_path / "run").exists()
    assert "error: --tensorboard needs the tensorboard package: pip install 'viper-emotion[tensorboard]'" in (
        refused.stderr)
    assert CliRunner().invoke(app, args[:-1]).exit_code == 0
    assert (tmp_path / "run" / "history.csv").exists() and not (tmp_path / "run" / "tensorboard").exists()


def test_train_says_how_far_an_anchored_model_moved_and_what_to_change_when_barely(tmp_path):
    """The last line of an anchored `viper train`: the mean change of its dev scores from the general model's, as a
    share of the general model's own error there; at the paper's lr 1e-5 it barely moves, and the line gives the
    README's recipe. An untrained anchored model has moved exactly 0; an unanchored run prints no such line."""
    emotions = ("happy", "sad", "calm")  # calm has no prior: left out of the measure
    store = make_synthetic_store(tmp_path / "store", {"fau": ("fau", 5), "expression": ("expression", 7)}, emotions,
                                 n_clips=36, n_frames=6)
    untrained = Perceiver(token_dims=[5, 7], num_outputs=3,
                          config=model_config("compact", anchoring(["fau", "expression"], [5, 7], list(emotions))))
    start = anchor_movement(untrained, load_split(store, ["fau", "expression"], "dev"), "dev")
    assert start.change == 0 and start.anchor_error > 0.1
    (tmp_path / "tiny.json").write_text(json.dumps({"model_overrides": TINY}))
    base = ["train", "-f", str(store.root), "--config", str(tmp_path / "tiny.json"), "--epochs", "3", "-o"]
    paper = CliRunner().invoke(app, [*base, str(tmp_path / "paper")])
    fast = CliRunner().invoke(app, [*base, str(tmp_path / "fast"), "--lr", "1e-2"])
    plain = CliRunner().invoke(app, [*base, str(tmp_path / "plain"), "--no-anchor"])
    assert paper.exit_code == fast.exit_code == plain.exit_code == 0
    moved = paper.stdout.splitlines()[-1]
    assert moved.startswith("moved from the general model (its anchor) by 0.0") and " on dev, " in moved
    assert "barely" in moved and "--lr 1e-3 --lr-step-epochs 20 --epochs 60 --batch-size 8" in moved
    assert fast.stdout.splitlines()[-1].startswith("moved from the general model") and "barely" not in fast.stdout
    assert "moved from" not in plain.stdout


def test_same_seed_same_weights_and_resume_is_seamless(store, tmp_path):
    config = tiny_config(epochs=4, model_overrides={**TINY, "attn_dropout": 0.2, "ff_dropout": 0.2})
    train(store.root, tmp_path / "a", config)
    train(store.root, tmp_path / "b", config)
    train(store.root, tmp_path / "c", tiny_config(epochs=2, model_overrides=config.model_overrides))
    result = train(store.root, tmp_path / "c", config)  # continues with epochs 3 and 4
    assert result.epochs_done == 4
    last = {name: torch.load(tmp_path / name / "last.pt", weights_only=True)["model"] for name in "abc"}
    for key, value in last["a"].items():
        assert torch.equal(value, last["b"][key]), key
        assert torch.equal(value, last["c"][key]), key
    assert (tmp_path / "a" / "history.csv").read_text().count("\n") == 5
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "a" / "history.csv").drop(columns="seconds"),
        pd.read_csv(tmp_path / "c" / "history.csv").drop(columns="seconds"),
    )
    with pytest.raises(ViperError, match="lr"):
        train(store.root, tmp_path / "a", tiny_config(epochs=4, lr=1e-3))


def test_without_dev_split_keeps_the_last_epoch(tmp_path, caplog):
    only_train = make_store(tmp_path / "s", n_clips=16, splits=("train",))
    with caplog.at_level(logging.WARNING):
        result = train(only_train.root, tmp_path / "run", tiny_config(epochs=2))
    assert result.best_epoch == 2 and result.best_dev_pearson is None
    assert "no dev split" in caplog.text


def test_bf16_autocast_on_cpu_learns_as_well_and_fp16_is_refused(store, run, tmp_path):
    overrides = {**TINY, "attn_dropout": 0.0, "ff_dropout": 0.0}  # as the fp32 `run`
    train(store.root, tmp_path / "bf16", tiny_config(model_overrides=overrides, precision="bf16"))
    fp32, bf16 = (pd.read_csv(folder / "history.csv") for folder in (run, tmp_path / "bf16"))
    assert not np.allclose(fp32["train_loss"], bf16["train_loss"], rtol=1e-5)  # autocast did run in bf16
    assert bf16["dev_mean_pearson"].max() > 0.9
    with pytest.raises(ViperError, match="fp16 needs CUDA"):
        train(store.root, tmp_path / "fp16", tiny_config(precision="fp16"))


@pytest.mark.slow
def test_compiled_training_matches_eager_and_resumes_either_way(store, tmp_path):
    """torch.compile (inductor; about 40 s to compile on 2 busy cores) trains the same model to float tolerance;
    a compiled run may be continued without it."""
    config = tiny_config(epochs=1, model_overrides={**TINY, "attn_dropout": 0.0, "ff_dropout": 0.0})
    train(store.root, tmp_path / "eager", config)
    train(store.root, tmp_path / "compiled", dataclasses.replace(config, compile=True))
    eager, compiled = (pd.read_csv(tmp_path / name / "history.csv").iloc[0] for name in ("eager", "compiled"))
    assert compiled["train_loss"] == pytest.approx(eager["train_loss"], rel=1e-4)
    assert compiled["dev_mean_pearson"] == pytest.approx(eager["dev_mean_pearson"], abs=1e-3)
    result = train(store.root, tmp_path / "compiled", dataclasses.replace(config, epochs=2))
    assert result.epochs_done == 2  # continued without compiling


# --- checkpoints and evaluation -------------------------------------------------------------------------
def test_checkpoint_round_trip_gives_the_same_predictions(run, store):
    bundle = load_checkpoint(run)
    data = load_split(store, bundle.keys, "test")
    again = load_checkpoint(run / "best.pt")
    np.testing.assert_array_equal(
        predict_arrays(bundle, data.tokens, data.modality_masks),
        predict_arrays(again, data.tokens, data.modality_masks),
    )
    assert bundle.emotions == list(EMOTIONS) and bundle.n_frames == 8
    # the prediction path (one clip's extractor Features) builds the same tokens as training did
    clip = data.video_ids[0]
    features = {key: Features(*store.read(key, clip)) for key in bundle.keys}
    tokens, _, parts = build_tokens(features, bundle.keys)
    np.testing.assert_array_equal(tokens, data.tokens[0])
    np.testing.assert_array_equal(
        predict_arrays(bundle, tokens[None], parts[None]),
        predict_arrays(bundle, data.tokens[:1], data.modality_masks[:1]),
    )
    standardised = load_checkpoint(run, runtime="torch").model.token_std
    assert not torch.equal(standardised, torch.ones(10))  # standardisation travelled with the weights


def test_evaluate_writes_metrics_that_match_scipy(run, store, tmp_path):
    metrics = evaluate(run, store.root, "test", out=tmp_path)
    predictions = pd.read_csv(tmp_path / "predictions.csv", dtype={"video_id": str})
    truth = store.labels().set_index("video_id").loc[predictions["video_id"]]
    assert list(predictions.columns) == ["video_id", *EMOTIONS]
    assert metrics["n"] == len(predictions) == len(load_split(store, None, "test"))
    for emotion in EMOTIONS:
        expected = pearsonr(predictions[emotion], truth[emotion]).statistic
        assert metrics["pearson"][emotion] == pytest.approx(expected, abs=1e-6)
    assert metrics["mean_pearson"] == pytest.approx(np.mean(list(metrics["pearson"].values())))
    assert json.loads((tmp_path / "metrics.json").read_text())["n"] == metrics["n"]
    for plot in ("scatter.png", "pearson.png", "confusion.png"):
        assert (tmp_path / plot).stat().st_size > 0


def test_features_from_another_extractor_are_refused(run, store, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(store.root, other)
    info_path = other / "features" / "face_image-test-aaaa" / "extractor.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "version": "2"}))
    with pytest.raises(ViperError, match="face_image-test-aaaa.*v2.*v1"):
        evaluate(run, other, "test", out=tmp_path / "eval")

    renamed = other / "features" / "face_image-test-cccc"
    (other / "features" / "face_image-test-aaaa").rename(renamed)
    (renamed / "extractor.json").write_text(json.dumps({**info, "key": "face_image-test-cccc"}))
    with pytest.raises(ViperError, match="face_image-test-aaaa.*face_image-test-cccc"):
        evaluate(run, other, "test", out=tmp_path / "eval")
