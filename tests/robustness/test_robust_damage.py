"""Damaged files viper reads back: store.json, per-clip features, packs, checkpoints and last.pt. Each is one
message naming the file (or, for a clip's features, the clip is extracted again), never a traceback."""

from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from media import make_clip
from synthetic import make_synthetic_store
from typer.testing import CliRunner

from viper.cli import app
from viper.jobs.train import TrainConfig, train
from viper.store import FeatureStore

TINY = {"num_latents": 4, "latent_dim": 8, "input_dim": 8, "self_layers": 1, "latent_heads": 2, "cross_heads": 1}
KEY = "audio-test-bbbb"


def viper(*args: object):
    """`viper ARGS` in this process; an exception the CLI does not turn into a message fails the test."""
    return CliRunner().invoke(app, [str(arg) for arg in args], catch_exceptions=False)


def assert_message(result, *parts: str, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and result.stderr.startswith("error: ")
    for part in parts:
        assert part in result.stderr, (part, result.stderr)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A synthetic store (2 emotions, one modality) and a tiny 1-epoch run on it."""
    root = tmp_path_factory.mktemp("tiny-run")
    make_synthetic_store(root / "store", {KEY: ("audio", 4)}, ("joy", "fear"), n_clips=12, n_frames=4)
    train(root / "store", root / "run", TrainConfig(epochs=1, lr=1e-3, batch_size=4, device="cpu",
                                                     model_overrides=TINY))
    return root


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Path:
    """Three tiny clips extracted (audio only, N = 4) into a store: the reference a damaged copy must get back."""
    root = tmp_path_factory.mktemp("extracted")
    (root / "clips").mkdir()
    for name in ("a", "b", "c"):
        make_clip(root / "clips" / f"{name}.mp4", frames=6, audio_seconds=0.6)
    result = viper("extract", root / "clips", "--out", root / "store", "-n", "4", "-e", "audio")
    assert result.exit_code == 0, result.output
    return root


def copy_store(extracted: Path, tmp_path: Path) -> Path:
    shutil.copytree(extracted / "store", tmp_path / "store")
    return tmp_path / "store"


def test_truncated_store_json_is_one_message(run, tmp_path):
    """store.json cut short: `train` and `extract` into that store each say it is damaged and how to write it
    again (exit 2), instead of a JSONDecodeError."""
    store = tmp_path / "store"
    shutil.copytree(run / "store", store)
    info = store / "store.json"
    info.write_bytes(info.read_bytes()[:9])
    assert_message(viper("train", "--features", store, "--out", tmp_path / "r"), f"{info} is damaged",
                   "run `viper extract` into this store with the --frames")
    make_clip(tmp_path / "a.mp4", frames=4)
    assert_message(viper("extract", tmp_path / "a.mp4", "--out", store, "-n", "4", "-e", "audio"),
                   f"{info} is damaged")


def damage(path: Path, how: str) -> None:
    """Cut a .npz short, flip bytes inside its compressed data, or replace its arrays by pickled objects."""
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "corrupt bytes":
        middle = len(data) // 3
        path.write_bytes(data[:middle] + bytes(255 - b for b in data[middle : middle + 16]) + data[middle + 16 :])
    else:
        buffer = io.BytesIO()
        np.savez(buffer, values=np.array([{"a": 1}] * 4, dtype=object), mask=np.ones(4, bool))
        path.write_bytes(buffer.getvalue())


def test_damaged_clip_features_are_extracted_again(extracted, tmp_path, caplog):
    """A clip's .npz cut short, with corrupt bytes, or holding an object array: the next pack (here the end of a
    `viper extract` on the same store, exit 0) warns with the file's path and removes it, so the clip counts as
    missing; the following `viper extract` makes it again, equal to the original arrays."""
    store_root = copy_store(extracted, tmp_path)
    store = FeatureStore.open(store_root)
    key = store.extractor_keys()[0]
    original = {video_id: store.read(key, video_id) for video_id in "abc"}
    for video_id, how in zip("abc", ("truncated", "corrupt bytes", "object array"), strict=True):
        damage(store.video_path(key, video_id), how)
    (store.feature_dir(key) / "packed" / "ids.json").unlink()  # as after any write: the pack must be made again
    command = ("extract", extracted / "clips", "--out", store_root, "-n", "4", "-e", "audio")
    with caplog.at_level(logging.WARNING):
        result = viper(*command)
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    for video_id in "abc":
        path = store.video_path(key, video_id)
        assert any(str(path) in record.getMessage() and "run `viper extract`" in record.getMessage()
                   for record in caplog.records), video_id
        assert not path.exists()
    result = viper(*command)
    assert result.exit_code == 0 and "videos done 3" in result.stdout, result.output
    for video_id, (values, mask) in original.items():
        again = store.read(key, video_id)
        assert np.array_equal(again[0], values) and np.array_equal(again[1], mask)


def test_damaged_clip_features_name_the_clip_in_train(run, tmp_path, caplog):
    """`viper train` packing a store with one damaged .npz: a warning names the file, then `error: ... 1 clip(s)
    lack ... features (e.g. clip003); run viper extract for them` (exit 2), not a BadZipFile traceback."""
    store = FeatureStore(tmp_path / "store")
    shutil.copytree(run / "store", store.root)
    damage(store.video_path(KEY, "clip003"), "truncated")
    (store.feature_dir(KEY) / "packed" / "ids.json").unlink()  # a pack made before would still be sound
    with caplog.at_level(logging.WARNING):
        result = viper("train", "--features", store.root, "--out", tmp_path / "r", "--epochs", "1")
    assert_message(result, "1 clip(s) lack", "clip003", "run `viper extract`")
    assert any(str(store.video_path(KEY, "clip003")) in record.getMessage() for record in caplog.records)


def test_clip_features_of_another_shape_are_named(run, tmp_path):
    """A readable .npz whose arrays have another shape than the store's clips (N = 4, width 4): the pack stops
    with `error: <file> holds (5, 4) values where the store's clips have (4, 4): delete it ...` (exit 2); a
    well-formed file is never removed on its own."""
    store = FeatureStore(tmp_path / "store")
    shutil.copytree(run / "store", store.root)
    path = store.video_path(KEY, "clip005")
    np.savez(path, values=np.zeros((5, 4), np.float32), mask=np.ones(5, bool))
    (store.feature_dir(KEY) / "packed" / "ids.json").unlink()
    result = viper("train", "--features", store.root, "--out", tmp_path / "r", "--epochs", "1")
    assert_message(result, f"{path} holds (5, 4) values where the store's clips have (4, 4): delete it")
    assert path.exists()


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_damaged_packed_arrays_are_rebuilt(extracted, tmp_path, how):
    """packed/values.npy deleted or cut short: the pack is rebuilt from the per-clip files on the next read and
    equals them; `viper extract` on the store goes on as usual (exit 0)."""
    store = FeatureStore.open(copy_store(extracted, tmp_path))
    key = store.extractor_keys()[0]
    values_file = store.feature_dir(key) / "packed" / "values.npy"
    if how == "deleted":
        values_file.unlink()
    else:
        values_file.write_bytes(values_file.read_bytes()[:200])
    values, mask = store.load(key, ["a", "b", "c"])
    for row, video_id in enumerate("abc"):
        assert np.array_equal(values[row], store.read(key, video_id)[0])
    values_file.unlink()
    result = viper("extract", extracted / "clips", "--out", store.root, "-n", "4", "-e", "audio")
    assert result.exit_code == 0 and "skipped (already in store) 3" in result.stdout, result.output


def test_damaged_clip_metadata_means_the_clip_is_extracted_again(extracted, tmp_path):
    """clips/<id>.json cut short: `viper extract` extracts that clip again (exit 0) instead of failing to parse it."""
    store = FeatureStore.open(copy_store(extracted, tmp_path))
    store.clip_path("b").write_text('{"video_id": "b", "sour')
    result = viper("extract", extracted / "clips", "--out", store.root, "-n", "4", "-e", "audio")
    assert result.exit_code == 0 and "videos done 1, skipped (already in store) 2" in result.stdout, result.output
    assert store.clip_meta("b")["video_id"] == "b"


def edited_checkpoint(run: Path, tmp_path: Path, edit) -> Path:
    payload = torch.load(run / "run" / "best.pt", weights_only=True)
    edit(payload)
    torch.save(payload, tmp_path / "best.pt")
    return tmp_path / "best.pt"


def drop_keys(payload):
    del payload["emotions"], payload["token_dims"]


def reshape_last_weight(payload):
    name = list(payload["model_state"])[-1]
    payload["model_state"][name] = torch.zeros(3, 3)


def add_emotion(payload):
    payload["emotions"].append("surprise")


def drop_first_weight(payload):
    payload["model_state"].pop(next(iter(payload["model_state"])))


CHECKPOINT_EDITS = {  # case -> (edit of the payload, what the message must say)
    "missing keys": (drop_keys, "without token_dims, emotions"),
    "a weight of another shape": (reshape_last_weight, "is (3, 3), the model needs"),
    "an emotion more than outputs": (add_emotion, "3 emotions: joy, fear, surprise"),
    "a missing weight": (drop_first_weight, "missing "),
}


@pytest.mark.parametrize("case", CHECKPOINT_EDITS)
def test_inconsistent_checkpoint_says_what_is_wrong(run, tmp_path, case):
    """A checkpoint without some keys, with weights of other shapes, with more emotions than outputs, or missing
    a weight: `viper evaluate` says what is wrong, naming the file (exit 2)."""
    edit, expected = CHECKPOINT_EDITS[case]
    checkpoint = edited_checkpoint(run, tmp_path, edit)
    result = viper("evaluate", checkpoint, "--features", run / "store", "--split", "dev")
    assert_message(result, str(checkpoint), expected)


class Hostile:
    """Unpickled, it would create a file: what a booby-trapped .pt does with torch.load(weights_only=False)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def write_hostile(path: Path, marker: Path) -> None:
    buffer = io.BytesIO()
    torch.save({"format": 1, "payload": Hostile(marker)}, buffer)
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize("how", ["truncated", "hostile"])
def test_unreadable_checkpoint_is_one_message(run, tmp_path, how):
    """best.pt cut short, or a pickle that would run code: `viper evaluate` and `viper predict` say the file is
    damaged or not a viper checkpoint (exit 2); the hostile code never runs."""
    checkpoint, marker = tmp_path / "best.pt", tmp_path / "pwned"
    if how == "truncated":
        checkpoint.write_bytes((run / "run" / "best.pt").read_bytes()[:1000])
    else:
        write_hostile(checkpoint, marker)
    expected = f"{checkpoint} is damaged or not a viper checkpoint"
    assert_message(viper("evaluate", checkpoint, "--features", run / "store"), expected)
    make_clip(tmp_path / "a.mp4", frames=4)
    assert_message(viper("predict", tmp_path / "a.mp4", "--checkpoint", checkpoint), expected)
    assert not marker.exists()


@pytest.mark.parametrize("how", ["truncated", "hostile", "another file"])
def test_damaged_last_pt_when_resuming_is_one_message(run, tmp_path, how):
    """RUN/last.pt cut short, booby-trapped, or a dict that is not a resume state: the same `viper train` says
    `RUN/last.pt is damaged or not a viper resume file (...): delete it to start over` (exit 2), runs no code,
    and leaves best.pt as it was."""
    folder, marker = tmp_path / "run", tmp_path / "pwned"
    shutil.copytree(run / "run", folder)
    last, best = folder / "last.pt", (folder / "best.pt").read_bytes()
    if how == "truncated":
        last.write_bytes(last.read_bytes()[:1000])
    elif how == "hostile":
        write_hostile(last, marker)
    else:
        torch.save({"weights": torch.zeros(2)}, last)
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"lr": 1e-3, "batch_size": 4, "device": "cpu", "model_overrides": TINY}))
    result = viper("train", "--features", run / "store", "--out", folder, "--config", config, "--epochs", "2")
    assert_message(result, f"{last} is damaged or not a viper resume file", "delete it to start over")
    assert not marker.exists() and (folder / "best.pt").read_bytes() == best
