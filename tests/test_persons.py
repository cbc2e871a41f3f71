"""The manifest's person column: stored with the labels, splits that share people refused, RAVDESS persons and the
split by actor, per-person normalisation in train and evaluate and refused by predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from media import make_clip
from synthetic import make_synthetic_store
from typer.testing import CliRunner

from viper.checkpoint import load_checkpoint, predict_arrays
from viper.cli import app
from viper.datasets.ravdess import ravdess_manifest
from viper.errors import ViperError
from viper.jobs.evaluate import evaluate
from viper.jobs.extract import extract
from viper.jobs.predict import predict
from viper.jobs.train import TrainConfig, train
from viper.manifest import read_manifest
from viper.persons import centre_by_person
from viper.store import FeatureStore
from viper.tokens import load_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EMOTIONS = ("joy", "fear")
KEYS = {"face_image-test-aaaa": ("face_image", 6), "audio-test-bbbb": ("audio", 4)}
TINY = {"num_latents": 8, "latent_dim": 16, "input_dim": 16, "self_layers": 1, "latent_heads": 2}


def tiny_config(**changes) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "lr": 1e-2, "batch_size": 8, "model_overrides": TINY, **changes})


def store_with_persons(root: Path, person_of) -> FeatureStore:
    """A synthetic store (36 clips: 24 train, 6 dev, 6 test) whose clip i (of split s) is `person_of(i, s)`."""
    store = make_synthetic_store(root, KEYS, EMOTIONS, n_clips=36, n_frames=8)
    table = store.labels()
    table.insert(3, "person", [person_of(i, split) for i, split in enumerate(table["split"])])
    (store.root / "labels.csv").write_text(table.to_csv(index=False))
    return store


def by_split(index: int, split: str) -> str:
    """Three persons per split, none shared."""
    return f"{split}-{index % 3}"


# --- the column -------------------------------------------------------------------------------------------------
def test_person_column_travels_from_the_manifest_into_the_store(tmp_path):
    for name in ("a", "b", "c"):
        make_clip(tmp_path / f"{name}.mp4", frames=8)
    manifest = tmp_path / "m.csv"
    manifest.write_text("video_id,path,split,person,joy\na,a.mp4,train, 05 ,1\nb,b.mp4,train,,0\nc,c.mp4,test,07,0.5\n")
    assert read_manifest(manifest)["person"].tolist() == ["05", "", "07"]  # stripped, leading zero kept
    extract(manifest, tmp_path / "store", frames=4, extractors=["face_image"], face_crop=False)
    store = FeatureStore.open(tmp_path / "store")
    assert store.emotions() == ["joy"]  # person is no emotion
    assert store.persons() == {"a": "05", "b": "", "c": "07"}
    assert load_split(store, None, "train").persons == ["05", ""]


def test_a_store_without_persons_reads_blank_persons(tmp_path):
    store = make_synthetic_store(tmp_path / "s", KEYS, EMOTIONS, n_clips=12, n_frames=4)
    assert "person" not in store.labels().columns
    assert set(store.persons().values()) == {""} and store.emotions() == list(EMOTIONS)
    assert load_split(store, None, "test").persons == ["", ""]


# --- shared people ------------------------------------------------------------------------------------------------
def test_train_refuses_dev_and_test_sharing_people_with_train(tmp_path):
    store = store_with_persons(tmp_path / "s", lambda i, split: f"p{i % 7}")
    with pytest.raises(ViperError) as caught:
        train(store.root, tmp_path / "run", tiny_config())
    message = str(caught.value)
    assert "labels.csv" in message and "--allow-shared-people" in message and "--split-by actor" in message
    assert "dev shares 6 person(s) with train (p0, p1, p3, p4, p5 and 1 more)" in message
    assert "test shares" in message
    assert not (tmp_path / "run" / "last.pt").exists()

    result = CliRunner().invoke(app, ["train", "-f", str(store.root), "-o", str(tmp_path / "cli"), "--epochs", "1"])
    assert result.exit_code == 2 and "error:" in result.stderr and "--allow-shared-people" in result.stderr

    train(store.root, tmp_path / "allowed", tiny_config(allow_shared_people=True))
    saved = json.loads((tmp_path / "allowed" / "config.json").read_text())["train"]
    assert saved["allow_shared_people"] is True and saved["person_norm"] is False


@pytest.mark.parametrize("case", ["disjoint", "all blank", "train only"])
def test_people_that_cannot_be_shared_train_as_before(tmp_path, case):
    person_of = {"disjoint": by_split, "all blank": lambda i, split: "",
                 "train only": lambda i, split: f"p{i % 3}" if split == "train" else ""}[case]
    store = store_with_persons(tmp_path / "s", person_of)
    assert train(store.root, tmp_path / "run", tiny_config()).epochs_done == 2


# --- RAVDESS --------------------------------------------------------------------------------------------------------
def ravdess_folder(root: Path, actors: list[int]) -> Path:
    """Empty files named as RAVDESS names them (the layout reads names only): 2 emotions x 2 statements x 2
    repetitions per actor, in Actor_XX folders."""
    for actor in actors:
        folder = root / f"Actor_{actor:02d}"
        folder.mkdir(parents=True)
        for emotion in ("03", "04"):
            for statement in ("01", "02"):
                for repetition in ("01", "02"):
                    (folder / f"01-01-{emotion}-02-{statement}-{repetition}-{actor:02d}.mp4").write_bytes(b"")
    return root


def test_ravdess_split_by_actor_puts_whole_actors_in_one_split(tmp_path):
    folder = ravdess_folder(tmp_path / "all", list(range(1, 25)))
    table = ravdess_manifest(folder, split_by="actor")
    assert (table["person"] == table["video_id"].str[-2:]).all()
    assert (table.groupby("person")["split"].nunique() == 1).all()  # every actor on one side only
    members = {split: sorted(people) for split, people in table.groupby("split")["person"].agg(set).items()}
    assert members == {"train": [f"{a:02d}" for a in range(1, 17)], "dev": ["17", "18", "19", "20"],
                       "test": ["21", "22", "23", "24"]}
    by_statement = ravdess_manifest(folder)  # the default: statement 02 tests, every actor on both sides
    assert set(by_statement.loc[by_statement["split"] == "test", "video_id"].str[12:14]) == {"02"}
    assert ravdess_manifest(ravdess_folder(tmp_path / "two", [3, 8]), split_by="actor").groupby("split")[
        "person"].agg(set).to_dict() == {"test": {"08"}, "train": {"03"}}
    with pytest.raises(ViperError, match="only actor 05"):
        ravdess_manifest(ravdess_folder(tmp_path / "one", [5]), split_by="actor")


def test_ravdess_command_writes_persons_a_store_reads_back(tmp_path):
    folder = ravdess_folder(tmp_path / "data", [1, 2, 5])
    out = tmp_path / "m.csv"
    result = CliRunner().invoke(app, ["dataset", "ravdess", str(folder), "--out", str(out), "--split-by", "actor"])
    assert result.exit_code == 0, result.output
    table = read_manifest(out)
    assert table.groupby("split")["person"].agg(set).to_dict() == {"train": {"01"}, "dev": {"02"}, "test": {"05"}}
    refused = CliRunner().invoke(app, ["dataset", "hume-reaction", str(folder), "--out", str(out), "--split-by",
                                       "actor"])
    assert refused.exit_code == 2 and "--split-by is for the ravdess layout" in refused.stderr
    bad = CliRunner().invoke(app, ["dataset", "ravdess", str(folder), "--out", str(out), "--split-by", "take"])
    assert bad.exit_code == 2 and "--split-by must be statement or actor" in bad.stderr


# --- per-person normalisation ---------------------------------------------------------------------------------------
def test_person_norm_subtracts_each_persons_mean_over_valid_frames(tmp_path):
    store = store_with_persons(tmp_path / "s", by_split)
    raw = load_split(store, None, "train")
    centred = load_split(store, None, "train", person_norm=True)
    assert np.array_equal(centred.tokens, centre_by_person(raw.tokens, raw.modality_masks, raw.dims, raw.persons))
    persons = np.array(raw.persons)
    start = 0
    for m, dim in enumerate(raw.dims):
        part = slice(start, start + dim)
        start += dim
        valid = raw.modality_masks[..., m]
        for person in set(raw.persons):
            clips = persons == person
            mean = raw.tokens[clips][..., part][valid[clips]].mean(0)  # the person's valid frames of this key
            expected = np.where(valid[clips][..., None], raw.tokens[clips][..., part] - mean, 0)
            np.testing.assert_allclose(centred.tokens[clips][..., part], expected, atol=1e-5)
            assert np.abs(centred.tokens[clips][..., part][valid[clips]].mean(0)).max() < 1e-5
            assert np.abs(mean).max() > 0.1  # the synthetic persons differ from 0: something was subtracted
        assert not centred.tokens[..., part][~valid].any()  # masked frames stay 0

    blank = store_with_persons(tmp_path / "blank", lambda i, split: "" if i == 30 else by_split(i, split))
    with pytest.raises(ViperError, match=r"1 clip\(s\) of the 'test' split have none \(e.g. clip030\)"):
        load_split(blank, None, "test", person_norm=True)
    assert load_split(blank, None, "test").persons[0] == ""  # without person_norm, a blank person is fine


def test_a_run_with_person_norm_is_evaluated_centred_and_refused_by_predict(tmp_path):
    store = store_with_persons(tmp_path / "s", by_split)
    run = tmp_path / "run"
    train(store.root, run, tiny_config(person_norm=True))
    bundle = load_checkpoint(run)
    assert bundle.train_config["person_norm"] is True
    metrics = evaluate(run, store.root, "test", tmp_path / "eval", plots=False)
    test = load_split(store, bundle.keys, "test", person_norm=True)
    scores = np.loadtxt(tmp_path / "eval" / "predictions.csv", delimiter=",", skiprows=1, usecols=(1, 2))
    np.testing.assert_allclose(scores, predict_arrays(bundle, test.tokens, test.modality_masks), atol=1e-6)
    raw = load_split(store, bundle.keys, "test")
    assert not np.allclose(scores, predict_arrays(bundle, raw.tokens, raw.modality_masks), atol=1e-3)
    assert metrics["n"] == 6

    video = make_clip(tmp_path / "clip.mp4", frames=8)
    with pytest.raises(ViperError, match="trained with person_norm.*viper evaluate"):
        predict(video, run)
