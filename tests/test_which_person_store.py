"""Which person in a store (`viper extract --faces main|largest`, main the default): the features are of the person
seen most, training and prediction keep that policy, `largest` makes today's stores bit for bit, and a store of the
other policy is refused before any work instead of being extracted again beside itself."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from faces_media import take
from people_media import WITH_HER, two_people_clip
from typer.testing import CliRunner

from viper.cli import app
from viper.errors import ViperError
from viper.jobs.extract import extract
from viper.jobs.predict import predict
from viper.store import FeatureStore

FRAMES = 8
EXTRACTORS = ["face_image:fer"]


@pytest.fixture(scope="module")
def two_people(tmp_path_factory, one_torch_thread):
    return two_people_clip(tmp_path_factory.mktemp("people") / "two_people.mp4")


@pytest.fixture(scope="module")
def manifest(two_people, tmp_path_factory):
    """The two-person clip and a take of actor 05 alone, labelled, one in each split."""
    folder = tmp_path_factory.mktemp("clips")
    shutil.copy(take(), folder / "alone.mp4")
    table = pd.DataFrame({"video_id": ["two", "alone"], "path": [str(two_people), str(folder / "alone.mp4")],
                          "split": ["train", "dev"], "happy": [0.8, 0.6], "sad": [0.1, 0.2]})
    path = folder / "manifest.csv"
    table.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def stores(manifest, tmp_path_factory):
    """The same clips extracted with each policy: main (the default) and largest."""
    root = tmp_path_factory.mktemp("stores")
    for faces in ("main", "largest"):
        summary = extract(manifest, root / faces, frames=FRAMES, extractors=EXTRACTORS,
                          **({} if faces == "main" else {"faces": faces}))
        assert summary.done == 2 and not summary.failed
    return {faces: FeatureStore.open(root / faces) for faces in ("main", "largest")}


def features(store: FeatureStore, video_id: str) -> tuple[np.ndarray, np.ndarray]:
    (key,) = store.extractor_keys()
    return store.read(key, video_id)


def test_main_is_the_default_and_recorded_largest_keeps_todays_keys(stores):
    main, largest = (stores[faces].feature_spec(stores[faces].extractor_keys()[0]) for faces in ("main", "largest"))
    assert main.faces == "main" and largest.faces is None  # largest: not recorded, so today's keys hold
    assert main.key != largest.key and "faces" not in largest.identity()


def test_main_features_are_his_where_she_is_larger_and_the_same_elsewhere(stores):
    sampled = np.round(np.linspace(0, 39, FRAMES)).astype(int)  # the clip's frames the FRAMES samples fall on
    hers = sampled < WITH_HER
    (main, main_mask), (largest, largest_mask) = (features(stores[faces], "two") for faces in ("main", "largest"))
    assert main_mask.all() and largest_mask.all()  # someone is on every frame, and he is on all of them
    assert np.array_equal(main[~hers], largest[~hers])  # he alone: the same crops, the same features
    assert not np.allclose(main[hers], largest[hers], atol=1e-3)  # she is larger there: largest took her face
    alone = [features(stores[faces], "alone") for faces in ("main", "largest")]
    assert all(np.array_equal(a, b) for a, b in zip(*alone, strict=True))  # one person: bit for bit


def test_a_store_of_the_other_policy_is_refused_before_any_work(stores, manifest):
    store = stores["largest"]
    before = store.extractor_keys()
    with pytest.raises(ViperError, match=r"the largest face of each frame.*add --faces largest to resume"):
        extract(manifest, store.root, frames=FRAMES, extractors=EXTRACTORS)
    assert store.extractor_keys() == before
    resumed = extract(manifest, store.root, frames=FRAMES, extractors=EXTRACTORS, faces="largest")
    assert resumed.skipped == 2 and resumed.done == 0


def test_cli_extract_takes_faces_and_refuses_all(manifest, tmp_path):
    result = CliRunner().invoke(app, ["extract", str(manifest), "-o", str(tmp_path / "s"), "-n", "4", "-e", "audio",
                                      "--faces", "all"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "all is for predict" in result.output and not (tmp_path / "s").exists()


def test_a_model_trained_on_main_predicts_the_main_person(stores, two_people, tmp_path):
    from viper.jobs.train import TrainConfig, train

    train(stores["main"].root, tmp_path / "run", TrainConfig(epochs=1, batch_size=2))
    (record,), failures = predict([two_people], checkpoint=tmp_path / "run")
    assert not failures
    assert record["person"] == 2 and record["coverage"]["people"] == 2
