"""Several writers on one store or run folder, and a source file replaced while it is extracted: labels.csv is a
merge under a lock, a run folder takes one `viper train` at a time, a clip records the file it decoded."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from media import make_clip
from synthetic import make_synthetic_store
from typer.testing import CliRunner

from viper.cli import app
from viper.extraction import ExtractConfig, Extraction
from viper.jobs.extract import extract
from viper.locks import folder_in_use
from viper.store import FeatureStore, file_sha256

TINY = {"num_latents": 8, "latent_dim": 16, "input_dim": 16, "self_layers": 1, "latent_heads": 2}
LABEL_WRITER = textwrap.dedent("""
    import sys, time
    import pandas as pd
    from viper.store import FeatureStore
    root, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    store = FeatureStore.create(root, 4)
    while time.time() < start:
        time.sleep(0.001)
    for i in range(5):
        store.write_labels(pd.DataFrame({"video_id": [f"{name}{i}"], "path": "x.mp4", "split": "train", "joy": i}))
""")


def viper(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_concurrent_label_writers_keep_every_row(tmp_path):
    """Six processes each merging 5 rows into one labels.csv at the same moment: all 30 rows are there (the
    read-merge-write of labels.csv holds an exclusive file lock, so no writer works from a copy another replaces)."""
    root, start = tmp_path / "store", str(time.time() + 3.0)
    processes = [subprocess.Popen([sys.executable, "-c", LABEL_WRITER, str(root), name, start],
                                  stderr=subprocess.PIPE, text=True) for name in "abcdef"]
    for process in processes:
        assert process.wait(timeout=120) == 0, process.stderr.read()
    table = FeatureStore.open(root).labels()
    assert sorted(table["video_id"]) == sorted(f"{name}{i}" for name in "abcdef" for i in range(5))


@pytest.mark.slow
def test_six_extracts_of_different_manifests_into_one_store(tmp_path):
    """The outside test's case: six `viper extract` of six one-clip manifests into one store at once. All exit 0,
    every clip has features, and labels.csv holds all six rows with their own split and label."""
    rows = []
    for index in range(6):
        make_clip(tmp_path / f"c{index}.mp4", frames=4, audio_seconds=0.4)
        split = ("train", "dev", "test")[index % 3]
        pd.DataFrame({"video_id": [f"c{index}"], "path": [f"c{index}.mp4"], "split": split, "joy": index / 10}).to_csv(
            tmp_path / f"m{index}.csv", index=False)
        rows.append((f"c{index}", split, index / 10))
    root = tmp_path / "store"
    commands = [[sys.executable, "-m", "viper", "extract", str(tmp_path / f"m{index}.csv"), "--out", str(root),
                 "-n", "4", "-e", "audio"] for index in range(6)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for command in commands]
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read()
    store = FeatureStore.open(root)
    table = store.labels().sort_values("video_id")
    assert list(zip(table["video_id"], table["split"], table["joy"], strict=True)) == rows
    assert store.video_ids(store.key_for("audio")) == [video_id for video_id, _, _ in rows]


def test_a_folder_extracted_into_a_manifest_store_keeps_splits_and_labels(tmp_path, caplog):
    """Extracting the plain folder (no split, no labels) into a store made from a manifest updates the paths and
    erases nothing; a manifest that does change a split is applied, with a warning naming labels.csv and the clip."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b"):
        make_clip(videos / f"{name}.mp4", frames=4, audio_seconds=0.4)
    manifest = tmp_path / "m.csv"
    manifest.write_text("video_id,path,split,person,joy\na,videos/a.mp4,train,p1,0.2\nb,videos/b.mp4,test,p2,0.9\n")
    root = tmp_path / "store"
    extract(manifest, root, frames=4, extractors=["audio"])
    moved = tmp_path / "moved"
    videos.rename(moved)
    extract(moved, root, frames=4, extractors=["audio"])
    table = FeatureStore.open(root).labels().set_index("video_id")
    assert table.loc[["a", "b"], "split"].tolist() == ["train", "test"]
    assert table.loc[["a", "b"], "person"].tolist() == ["p1", "p2"]
    assert table.loc[["a", "b"], "joy"].tolist() == [0.2, 0.9]
    assert table.loc["a", "path"] == str(moved / "a.mp4")

    manifest.write_text("video_id,path,split,person,joy\na,moved/a.mp4,dev,p1,0.2\n")
    with caplog.at_level(logging.WARNING):
        extract(manifest, root, frames=4, extractors=["audio"])
    assert FeatureStore.open(root).labels().set_index("video_id").loc["a", "split"] == "dev"
    assert "labels.csv: 1 clip(s) get a new split, person or labels from this input (a)" in caplog.text


def tiny_store(tmp_path: Path) -> tuple[FeatureStore, Path]:
    store = make_synthetic_store(tmp_path / "store", {"audio-test-bbbb": ("audio", 4)}, ("joy", "fear"),
                                 n_clips=12, n_frames=4)
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"device": "cpu", "lr": 1e-2, "model_overrides": TINY}))
    return store, config


HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from viper.locks import folder_in_use
    with folder_in_use(Path(sys.argv[1]), "holder"):
        print("held", flush=True)
        time.sleep(600)
""")


def test_a_run_folder_in_use_is_refused_and_a_dead_holder_blocks_nothing(tmp_path, one_torch_thread):
    """A second `viper train` into a folder in use: exit 2 at once, naming the folder and the process holding it,
    nothing written. A holder killed with SIGKILL leaves its lock file, but the OS has let go of the lock: the
    next `viper train` into the folder runs."""
    store, config = tiny_store(tmp_path)
    run = tmp_path / "run"
    with folder_in_use(run, "`viper train`"):
        result = viper("train", "--features", str(store.root), "--out", str(run), "--config", str(config),
                       "--epochs", "1")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert f"{run}: another `viper train` is using this folder (process {os.getpid()})" in result.stderr
    assert sorted(p.name for p in run.iterdir()) == [".lock"]

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    refused = viper("train", "--features", str(store.root), "--out", str(run), "--config", str(config))
    assert refused.exit_code == 2 and f"(process {holder.pid})" in refused.stderr
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    result = viper("train", "--features", str(store.root), "--out", str(run), "--config", str(config),
                   "--epochs", "1")
    assert result.exit_code == 0, result.stderr
    assert (run / "best.pt").exists() and (run / ".lock").read_text() == str(os.getpid())


@pytest.mark.slow
def test_two_train_processes_into_one_run_folder(tmp_path):
    """The outside test's case with real processes: while one `viper train` runs, a second into the same folder
    exits 2 naming the folder; config.json and the weights stay the first run's (it then resumes as usual)."""
    store, config = tiny_store(tmp_path)
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def command(*extra: str) -> list[str]:
        return [sys.executable, "-m", "viper", "train", "--features", str(store.root), "--out", str(run),
                "--config", str(config), *extra]

    first = subprocess.Popen(command("--epochs", "100000"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "last.pt").exists():
        time.sleep(0.05)
    second = subprocess.run(command("--epochs", "1", "--seed", "7"), capture_output=True, text=True, env=env,
                            timeout=120)
    assert first.poll() is None, "the first run ended before the second started"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert second.returncode == 2 and f"{run}: another `viper train` is using this folder" in second.stderr
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 0
    again = subprocess.run(command("--epochs", "2"), capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stderr  # the killed run's lock is gone with it


def test_a_source_replaced_during_extraction_is_not_recorded(tmp_path):
    """The clip is decoded, then its file is replaced by another video before the features are written: the clip
    fails with a message saying so and nothing of it is recorded; the same command then extracts the new file,
    recording its hash beside its own features (equal to those of a store that only ever saw the new file)."""
    videos = tmp_path / "videos"
    videos.mkdir()
    source = make_clip(videos / "clip.mp4", frames=6, audio_seconds=0.6)
    other = make_clip(tmp_path / "other.mp4", frames=12, audio_seconds=1.2)
    root = tmp_path / "store"
    store = FeatureStore.create(root, 4)
    extraction = Extraction(ExtractConfig(frames=4, extractors=["audio"]))
    prepared = extraction.prepare(str(root), [("clip", str(source))])
    os.replace(other, source)
    [record] = extraction.finish(prepared)
    assert record["status"] == "failed" and "changed while it was being extracted" in record["reason"]
    assert store.clip_meta("clip") is None and not store.extractor_keys()

    summary = extract(videos, root, frames=4, extractors=["audio"])
    assert summary.done == 1 and not summary.failed
    meta = store.clip_meta("clip")
    assert meta["source_sha256"] == file_sha256(source) and meta["source_size"] == source.stat().st_size
    fresh = tmp_path / "fresh"
    extract(videos, fresh, frames=4, extractors=["audio"])
    key = store.key_for("audio")
    for got, want in zip(store.read(key, "clip"), FeatureStore.open(fresh).read(key, "clip"), strict=True):
        assert np.array_equal(got, want)
    assert meta["duration"] == FeatureStore.open(fresh).clip_meta("clip")["duration"]
