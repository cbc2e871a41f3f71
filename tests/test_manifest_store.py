"""Manifests (generic and RAVDESS) and the feature store's atomic, packed storage."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from viper.datasets.ravdess import EMOTIONS, parse_name, ravdess_manifest
from viper.errors import ViperError
from viper.feature_spec import FeatureSpec
from viper.jobs.demo import demo_clips
from viper.manifest import load_inputs, read_manifest
from viper.store import FeatureStore


def _write(path, text):
    path.write_text(text)
    return path


def test_manifest_paths_are_relative_to_the_csv(tmp_path):
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "a.mp4").write_bytes(b"x")
    table = read_manifest(_write(tmp_path / "m.csv", "video_id,path,split,Joy\na,videos/a.mp4,Devel,0.5\n"))
    assert table.loc[0, "path"] == str(tmp_path / "videos" / "a.mp4")
    assert table.loc[0, "split"] == "dev"


def test_bad_manifest_lists_every_problem_at_once(tmp_path):
    text = "video_id,path,split\na,missing1.mp4,train\na,missing2.mp4,test\n"
    with pytest.raises(ViperError) as caught:
        read_manifest(_write(tmp_path / "m.csv", text))
    message = str(caught.value)
    assert "m.csv" in message and "duplicate video_id(s): a" in message
    assert "line 2" in message and "line 3" in message and "missing2.mp4" in message


def test_manifest_without_required_columns(tmp_path):
    with pytest.raises(ViperError, match="missing column"):
        read_manifest(_write(tmp_path / "m.csv", "id,file\na,b\n"))


def test_folder_input_finds_videos_recursively(tmp_path):
    (tmp_path / "x").mkdir()
    for name in ("x/a.mp4", "b.MOV", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    table = load_inputs(tmp_path)
    assert sorted(table["video_id"]) == ["b", "x__a"]


def test_ravdess_names_become_intensity_targets_and_statement_splits(tmp_path):
    """Actor 05's 60 bundled takes under clips/, and the 8 sad ones again under full/ (as the dataset's full-frame
    originals sit beside their face crops)."""
    shutil.copytree(demo_clips(), tmp_path / "clips")
    shutil.copytree(demo_clips(), tmp_path / "full", ignore=lambda _, names: [n for n in names if "-04-" not in n])
    table = ravdess_manifest(tmp_path)
    assert len(table) == 68 and table["video_id"].is_unique
    assert {"01-01-04-02-01-02-05_clips", "01-01-04-02-01-02-05_full"} <= set(table["video_id"])
    assert list(table.columns) == ["video_id", "path", "split", "person", *EMOTIONS]
    assert set(table["person"]) == {"05"}
    row = table[table["video_id"] == "01-01-06-02-01-02-05"].iloc[0]  # fearful, strong, statement 01
    assert row["fearful"] == 1.0 and row[[e for e in EMOTIONS if e != "fearful"]].sum() == 0
    assert row["split"] == "train"
    assert (table.groupby(table["video_id"].str[:17])["split"].nunique() == 1).all()  # a take stays on one side
    assert parse_name("03-01-01-01-01-01-05")["modality"] == "audio-only"


def test_store_writes_atomically_and_packs(tmp_path):
    store = FeatureStore.create(tmp_path / "s", 4)
    store.register_feature(FeatureSpec("m", dim=3, key="k"))
    for i in range(3):
        store.write("k", f"v{i}", np.full((4, 3), i, np.float32), np.array([1, 1, 0, 1], bool))
    values, mask = store.load("k", ["v2", "v0"])
    assert values.shape == (2, 4, 3) and values[0, 0, 0] == 2 and values[1, 0, 0] == 0
    assert mask.tolist()[0] == [True, True, False, True]
    assert not list((tmp_path / "s").rglob("*.tmp"))
    store.write("k", "v0", np.full((4, 3), 7, np.float32), np.ones(4, bool))  # a rewrite makes the pack stale
    assert store.load("k", ["v0"])[0][0, 0, 0] == 7


def test_store_refuses_another_frame_count(tmp_path):
    FeatureStore.create(tmp_path / "s", 32)
    with pytest.raises(ViperError, match="32 frames"):
        FeatureStore.create(tmp_path / "s", 16)
