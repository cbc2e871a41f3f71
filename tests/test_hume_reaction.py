"""Hume-Reaction on a tiny synthetic replica of the challenge layout: manifest, bad data, challenge features,
training on them alone, and the submission file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from media import make_clip
from typer.testing import CliRunner

from viper.cli import app
from viper.datasets.hume_reaction import EMOTIONS, hume_reaction_manifest
from viper.errors import ViperError
from viper.jobs.import_features import align, import_challenge_features, modality_name
from viper.jobs.submit import write_submission
from viper.jobs.train import TrainConfig, train
from viper.manifest import load_inputs
from viper.store import FeatureStore

PARTITION = {f"{i:05d}": "train" for i in range(1, 9)} | {"00009": "devel", "00010": "devel"}
PARTITION |= {"00011": "test", "00012": "test"}
TINY = {"num_latents": 8, "latent_dim": 16, "input_dim": 16, "self_layers": 1, "latent_heads": 2}
GAP_CLIP = "00001"  # its VGGFace2 rows between 0.4 s and 1.6 s are missing


def write_layout(base: Path) -> Path:
    """base/c2_muse_reaction with 12 two-second clips, labels (test rows empty), partition and two features."""
    root = base / "c2_muse_reaction"
    (root / "mp4").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for video_id, split in PARTITION.items():
        make_clip(root / "mp4" / f"{video_id}.mp4", frames=20, fps=10)
        labels = rng.random(len(EMOTIONS)).round(3)
        rows.append([f"[{video_id}]", *(["" if split == "test" else v for v in labels])])
        seconds = np.arange(0, 2.01, 0.5)  # FAUs: File_ID, then timeStamp in seconds
        faus = pd.DataFrame({"File_ID": f"[{video_id}]", "timeStamp": seconds, "AU00": seconds})
        for k in range(3):
            faus[f"AU0{k + 1}"] = labels[k] + 0.05 * rng.normal(size=len(seconds))
        write_csv(faus, root / "feats" / "FAUs" / f"{video_id}.csv")
        ms = np.arange(0, 2001, 200)  # VGGFace2: timestamp in milliseconds, then segment_id
        if video_id == GAP_CLIP:
            ms = ms[(ms < 400) | (ms > 1600)]
        vgg = pd.DataFrame({"timestamp": ms, "segment_id": 1, "v0": ms / 1000})
        for k in range(4):
            vgg[f"v{k + 1}"] = labels[3 + k % 4] + 0.05 * rng.normal(size=len(ms))
        write_csv(vgg, root / "feats" / "VGGFace2" / f"{video_id}.csv")
    write_csv(pd.DataFrame(rows, columns=["File_ID", *EMOTIONS]), root / "labels.csv")
    partition = pd.DataFrame({"Id": [f"[{i}]" for i in PARTITION], "Partition": list(PARTITION.values())})
    write_csv(partition, root / "partition.csv")
    return root


def write_csv(table: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    return write_layout(tmp_path_factory.mktemp("hume"))


@pytest.fixture
def broken(layout, tmp_path) -> Path:
    """A copy of the layout to damage."""
    return Path(shutil.copytree(layout, tmp_path / "c2_muse_reaction"))


def test_manifest_reads_the_challenge_layout(layout):
    table = load_inputs(layout.parent, "hume-reaction")  # the folder that holds c2_muse_reaction/ works too
    assert list(table.columns) == ["video_id", "path", "split", *EMOTIONS]
    assert table["video_id"].tolist() == list(PARTITION)  # brackets stripped, partition.csv order
    assert table["split"].value_counts().to_dict() == {"train": 8, "dev": 2, "test": 2}
    paths = [Path(p) for p in table.path]
    assert all(p.is_file() for p in paths) and [p.stem for p in paths] == list(PARTITION)
    test = table[table.split == "test"]
    assert test[list(EMOTIONS)].isna().all().all()
    labels = pd.read_csv(layout / "labels.csv", dtype=str)
    assert table.loc[0, "Adoration"] == pytest.approx(float(labels.loc[0, "Adoration"]))


def test_every_problem_is_reported_at_once(broken):
    for video_id in ("00003", "00011"):
        (broken / "mp4" / f"{video_id}.mp4").unlink()
    make_clip(broken / "mp4" / "99999.mp4", frames=2)
    with open(broken / "labels.csv", "a") as handle:
        handle.write("[88888]" + ",0.5" * len(EMOTIONS) + "\n")
    with pytest.raises(ViperError) as caught:
        hume_reaction_manifest(broken)
    message = str(caught.value)
    assert "2 video(s) missing" in message and "00003, 00011" in message
    assert "99999.mp4" in message and "not in partition.csv" in message
    assert "labels.csv row(s) not in partition.csv: 88888" in message


def test_duplicates_unlabelled_clips_and_duplicate_videos_are_refused(broken):
    with open(broken / "partition.csv", "a") as handle:
        handle.write("[00002],train\n")
    labels = pd.read_csv(broken / "labels.csv", dtype=str, keep_default_na=False)
    labels.loc[labels.File_ID == "[00004]", "Fear"] = ""
    write_csv(pd.concat([labels[labels.File_ID != "[00005]"], labels.iloc[[0]]]), broken / "labels.csv")
    shutil.copy(broken / "mp4" / "00006.mp4", broken / "mp4" / "00006.mov")
    with pytest.raises(ViperError) as caught:
        hume_reaction_manifest(broken)
    message = str(caught.value)
    assert "partition.csv: duplicate id(s) 00002" in message
    assert "labels.csv: duplicate File_ID(s) 00001" in message
    assert "no row in labels.csv: 00005" in message
    assert "empty or non-numeric labels: 00004" in message
    assert "00006.mov and 00006.mp4" in message


def test_extract_reads_the_layout(layout, tmp_path):
    store_dir = tmp_path / "store"
    args = [
        "extract",
        str(layout),
        "--dataset",
        "hume-reaction",
        "--out",
        str(store_dir),
        "--frames",
        "4",
        "--extractors",
        "fau",
        "--no-face-crop",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    store = FeatureStore.open(store_dir)
    assert store.labels()["video_id"].tolist() == list(PARTITION)
    bad = CliRunner().invoke(app, ["extract", str(tmp_path), "--dataset", "hume-reaction", "--out", str(store_dir)])
    assert bad.exit_code == 2 and "not a Hume-Reaction folder" in bad.output


def test_features_align_to_extracted_frame_times(layout, tmp_path):
    store = FeatureStore.create(tmp_path / "store", 4)
    times = [0.0, 0.65, 1.35, 1.9]
    for video_id in PARTITION:
        store.write_clip(video_id, {"video_id": video_id, "times": times})  # as `viper extract` records them
    keys = import_challenge_features(layout, store.root, ["faus", "VGGFace2"])  # names match case-insensitively
    assert [store.feature_spec(keys[f]).modality for f in ("FAUs", "VGGFace2")] == ["faus", "vggface2"]
    faus, mask = store.read(keys["FAUs"], "00002")
    assert mask.all() and faus[:, 0].tolist() == [0.0, 0.5, 1.5, 2.0]  # nearest row (seconds)
    vgg, mask = store.read(keys["VGGFace2"], "00002")
    assert mask.all() and vgg[:, 0] == pytest.approx([0.0, 0.6, 1.4, 1.8])  # milliseconds detected
    vgg, mask = store.read(keys["VGGFace2"], GAP_CLIP)
    assert mask.tolist() == [True, False, False, True] and not vgg[~mask].any()  # the gap is masked, not filled
    info = store.feature_spec(keys["VGGFace2"])
    assert info.backend == "challenge" and info.dim == 5 and len(info.config["listing"]) == 16


def test_features_without_videos_span_the_feature_rows(layout, tmp_path):
    store = FeatureStore.create(tmp_path / "store", 5)
    key = import_challenge_features(layout, store, ["FAUs"])["FAUs"]
    faus, mask = store.read(key, "00007")
    assert mask.all() and faus[:, 0].tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert store.labels()["split"].tolist() == [{"devel": "dev"}.get(s, s) for s in PARTITION.values()]


def test_align_masks_frames_far_from_any_row():
    rows, values = np.array([1.0, 0.0, 2.0, 5.0]), np.array([[10.0], [0.0], [20.0], [50.0]])  # unsorted; spacing 1 s
    values, mask = align(rows, values, [0.1, 1.0, 3.5, 9.0])
    assert mask.tolist() == [True, True, False, False] and values[:, 0].tolist() == [0.0, 10.0, 0.0, 0.0]
    assert not align(np.zeros(0), np.zeros((0, 2)), [0.0, 1.0])[1].any()


def test_modality_names_never_clash_with_viper_extractors():
    assert modality_name("VGGFace2") == "vggface2" and modality_name("FAU") == "fau_challenge"


def test_train_on_challenge_features_alone_then_submit(layout, tmp_path):
    data = tmp_path / "c2_muse_reaction"  # the features are enough: no videos
    shutil.copytree(layout, data, ignore=shutil.ignore_patterns("mp4"))
    store_dir = tmp_path / "store"
    import_challenge_features(data, store_dir, None, frames=8)  # every folder of feats/
    config = TrainConfig(modalities=["faus", "vggface2"], epochs=3, lr=1e-3, batch_size=4, model_overrides=TINY)
    result = train(store_dir, tmp_path / "run", config)
    assert result.best_dev_pearson is not None and result.checkpoint.is_file()

    out = tmp_path / "submission.csv"
    assert write_submission(tmp_path / "run", store_dir, out) == 2
    written = pd.read_csv(out, dtype={"File_ID": str})
    assert list(written.columns) == ["File_ID", *EMOTIONS]
    assert written["File_ID"].tolist() == ["[00011]", "[00012]"] and np.isfinite(written[list(EMOTIONS)]).all().all()

    cli_out = tmp_path / "cli.csv"
    result = CliRunner().invoke(app, ["submission", str(tmp_path / "run"), "-f", str(store_dir), "-o", str(cli_out)])
    assert result.exit_code == 0, result.output
    assert cli_out.read_text() == out.read_text()
