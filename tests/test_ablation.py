"""`viper ablate` on a small synthetic store: every setting x seed runs, resume skips, report and p-values."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from synthetic import make_synthetic_store

from viper.feature_spec import FeatureSpec
from viper.jobs.ablate import grid_settings, run_ablation
from viper.jobs.train import TrainConfig
from viper.metrics import paired_bootstrap
from viper.store import FeatureStore

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EMOTIONS = ("joy", "fear", "calm")
TINY = {"num_latents": 4, "latent_dim": 8, "input_dim": 8, "self_layers": 1, "latent_heads": 2, "cross_heads": 1}
MODALITIES = {  # key: (modality, dim)
    "face_image-test-aaaa": ("face_image", 5),
    "face_image-test-nocrop-bbbb": ("face_image", 5),
    "fau-test-cccc": ("fau", 3),
    "caption-test-dddd": ("caption", 4),
    "audio-test-eeee": ("audio", 3),
}
PAPER = {
    "image",
    "image+text",
    "image+audio",
    "image+FAU",
    "image+text+audio",
    "image+text+FAU",
    "image+audio+FAU",
    "image+text+audio+FAU",
}


def make_store(root, n_clips: int = 48, n_frames: int = 6) -> FeatureStore:
    return make_synthetic_store(root, MODALITIES, EMOTIONS, n_clips=n_clips, n_frames=n_frames)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    store = make_store(tmp_path_factory.mktemp("store"))
    out = tmp_path_factory.mktemp("sweep")
    config = TrainConfig(epochs=2, lr=1e-2, batch_size=16, model_overrides=TINY)
    kwargs = {"seeds": 2, "config": config, "gru_epochs": 2, "resamples": 200, "run_plots": False}
    first = run_ablation(store.root, out, **kwargs)
    return store, out, kwargs, first


def test_grid_has_the_paper_settings_table2_and_baselines(sweep):
    store, *_ = sweep
    settings = grid_settings(store)
    names = [s.name for s in settings if s.group == "Table 3"]
    assert set(names) == PAPER and len(names) == 8
    visual = [s for s in settings if s.group == "Table 2"]
    assert [s.keys for s in visual] == [["face_image-test-nocrop-bbbb"]]
    assert all("face_image-test-aaaa" in s.keys for s in settings if s.group == "Table 3")
    assert {s.kind for s in settings if s.group == "baseline"} == {"ridge", "gru"}


def test_every_setting_and_seed_runs_then_resume_skips(sweep):
    store, out, kwargs, first = sweep
    assert not first.failed and not first.skipped
    assert len(first.ran) == 9 * 2 + 1 + 2  # 8 paper + 1 visual settings x 2 seeds, ridge once, GRU x 2
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs["split"]) == {"dev", "test"}
    assert len(runs) == len(first.ran) * 2
    assert {f"r_{e}" for e in EMOTIONS} <= set(runs.columns)
    assert runs["mean_pearson"].between(-1, 1).all()
    assert len(json.loads((out / "runs.json").read_text())) == len(runs)

    again = run_ablation(store.root, out, **kwargs)
    assert again.ran == [] and len(again.skipped) == len(first.ran)


def test_report_has_every_setting_and_p_values(sweep):
    store, out, _, first = sweep
    markdown = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for setting in first.settings:
        assert f"| {setting.name} |" in markdown or f"| **{setting.name}** |" in markdown
        assert setting.name in page
    assert "paired bootstrap" in markdown and "<img" in page and "data:image/png;base64," in page
    assert (out / "bars.png").stat().st_size > 0 and (out / "heatmap.png").stat().st_size > 0
    best = [row for row in first.summary if row["slug"] == first.best]
    assert best and all(row["p"] is None for row in best)
    others = [row for row in first.summary if row["slug"] != first.best]
    assert others and all(0.0 <= row["p"] <= 1.0 for row in others)
    assert f"**{best[0]['setting']}**" in markdown


@pytest.mark.slow
def test_resume_after_lost_runs_in_parallel_workers(sweep):
    store, out, kwargs, _ = sweep
    for name in ("image", "ridge"):
        shutil.rmtree(out / "runs" / name / "seed0")
    result = run_ablation(store.root, out, **{**kwargs, "workers": 2})
    assert sorted(result.ran) == ["image/seed0", "ridge/seed0"] and not result.failed


def test_changed_training_settings_are_refused(sweep):
    from viper.errors import ViperError

    store, out, kwargs, _ = sweep
    with pytest.raises(ViperError, match="other training settings"):
        run_ablation(store.root, out, **{**kwargs, "config": TrainConfig(epochs=3, model_overrides=TINY)})


def test_bootstrap_identical_predictions_is_no_difference():
    rng = np.random.default_rng(1)
    truth = rng.random((40, 3))
    predictions = truth + rng.normal(scale=0.5, size=truth.shape)
    same = paired_bootstrap(predictions, predictions.copy(), truth, resamples=300)
    assert same.difference == 0 and same.p_value == pytest.approx(1.0)
    assert same.ci_low == 0 and same.ci_high == 0


def test_bootstrap_finds_a_clear_difference():
    rng = np.random.default_rng(2)
    truth = rng.random((80, 3))
    good = truth + rng.normal(scale=0.1, size=truth.shape)
    bad = rng.random((80, 3))
    result = paired_bootstrap(good, bad, truth, resamples=500, seed=3)
    assert result.difference > 0.5 and result.p_value < 0.01
    assert paired_bootstrap(good, bad, truth, resamples=500, seed=3).p_value == result.p_value  # seeded


def test_cli_resumes_the_same_sweep(sweep, tmp_path):
    from typer.testing import CliRunner

    from viper.cli import app

    store, out, kwargs, first = sweep
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"epochs": 2, "lr": 1e-2, "batch_size": 16, "model_overrides": TINY}))
    result = CliRunner().invoke(
        app,
        [
            "ablate",
            "--features",
            str(store.root),
            "--out",
            str(out),
            "--seeds",
            "2",
            "--config",
            str(config),
            "--gru-epochs",
            "2",
            "--resamples",
            "200",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "0 run(s) to do" in result.output and f"best setting on dev: {first.best}" in result.output


@pytest.fixture(scope="module")
def fusion_sweep(tmp_path_factory):
    """Labels that depend on face_image alone, and an audio modality of pure noise."""
    root = tmp_path_factory.mktemp("fusion-store")
    store = make_synthetic_store(root, {"face_image-test-aaaa": ("face_image", 5)}, EMOTIONS, n_clips=72, n_frames=6)
    store.register_feature(FeatureSpec("audio", "test", "1", dim=3, key="audio-test-eeee"))
    rng = np.random.default_rng(5)
    for video_id in store.video_ids("face_image-test-aaaa"):
        store.write("audio-test-eeee", video_id, rng.normal(size=(6, 3)).astype(np.float32), np.ones(6, bool))
    out = tmp_path_factory.mktemp("fusion-sweep")
    config = TrainConfig(epochs=15, lr=1e-2, batch_size=16, model_overrides=TINY)
    kwargs = {"seeds": 2, "config": config, "baselines": (), "resamples": 100, "run_plots": False,
              "fusions": ("concat", "per_modality:0.5")}
    return store, out, kwargs, run_ablation(store.root, out, **kwargs)


def test_fusions_train_each_multi_modality_setting_with_each_layout(fusion_sweep):
    _, out, _, result = fusion_sweep
    assert [s.name for s in result.settings] == ["image", "image+audio", "image+audio (per-modality, dropout 0.5)"]
    assert not result.failed and len(result.ran) == 3 * 2
    run = json.loads((out / "runs" / "image+audio[per-modality-dropout0.5]" / "seed0" / "config.json").read_text())
    assert run["model"]["layout"] == "per_modality" and run["train"]["modality_dropout"] == 0.5


def test_robustness_table_scores_each_modality_removed(fusion_sweep):
    store, out, kwargs, result = fusion_sweep
    table = pd.read_csv(out / "robustness.csv")
    assert set(table["removed"]) == {"none", "face_image", "audio"}
    assert set(table["slug"]) == {"image+audio", "image+audio[per-modality-dropout0.5]"}  # single modalities: none
    assert (table["runs"] == 2).all()
    folder = out / "runs" / "image+audio" / "seed1" / "eval-test-without-audio"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["dropped"] == ["audio"]
    test = table[table["split"] == "test"].set_index(["slug", "removed"])["mean"]
    for slug in ("image+audio", "image+audio[per-modality-dropout0.5]"):  # the labels live in face_image alone
        assert test[slug, "face_image"] < test[slug, "audio"] - 0.2
    markdown = (out / "report.md").read_text()
    assert "## Robustness to a missing modality: test" in markdown
    assert "| setting | full | without image | without audio | worst drop |" in markdown
    assert (out / "robustness.png").stat().st_size > 0 and "Robustness to a missing modality" in (
        out / "report.html"
    ).read_text()


def test_robustness_scores_are_added_to_a_finished_sweep_without_training(fusion_sweep):
    store, out, kwargs, _ = fusion_sweep
    removed = out / "runs" / "image+audio" / "seed0" / "eval-dev-without-face_image"
    shutil.rmtree(removed)
    weights = (out / "runs" / "image+audio" / "seed0" / "best.pt").stat().st_mtime_ns
    again = run_ablation(store.root, out, **kwargs)
    assert again.ran == ["image+audio/seed0"] and (removed / "metrics.json").exists()
    assert (out / "runs" / "image+audio" / "seed0" / "best.pt").stat().st_mtime_ns == weights


def test_bad_fusion_is_one_clear_error(fusion_sweep):
    from viper.errors import ViperError

    store, out, kwargs, _ = fusion_sweep
    with pytest.raises(ViperError, match="layout must be one of"):
        run_ablation(store.root, out, **{**kwargs, "fusions": ("sideways",)})
    with pytest.raises(ViperError, match="modality dropout"):
        run_ablation(store.root, out, **{**kwargs, "fusions": ("concat:1.5",)})
