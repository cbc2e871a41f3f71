"""The feature store under interruption, concurrency and a full disk."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from media import make_clip
from typer.testing import CliRunner

import viper.atomic
from viper import __version__
from viper.cli import app
from viper.errors import ViperError
from viper.jobs.extract import extract
from viper.store import FeatureStore


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    for name in ("a", "b", "c"):
        make_clip(folder / f"{name}.mp4", frames=6, audio_seconds=0.6)
    return folder


def all_arrays(store: FeatureStore):
    return {(key, vid): store.read(key, vid) for key in store.extractor_keys() for vid in store.video_ids(key)}


def assert_packed_matches(store: FeatureStore) -> None:
    for key in store.extractor_keys():
        ids = store.video_ids(key)
        values, mask = store.load(key, ids)
        for row, video_id in enumerate(ids):
            one_values, one_mask = store.read(key, video_id)
            assert np.array_equal(values[row], one_values) and np.array_equal(mask[row], one_mask), video_id


def test_stale_tmp_files_are_invisible_and_removed_on_resume(tmp_path):
    """A writer killed mid-write leaves `.<name>.<random>.tmp` beside the target: readers never list it (only
    `*.npz` / named files count), and `FeatureStore.create` (every `viper extract`) deletes such files older than a
    minute; younger ones may belong to a live writer and stay."""
    store = FeatureStore.create(tmp_path / "s", 4)
    store.write("k", "v1", np.ones((4, 2)), np.ones(4, bool))
    videos = store.video_path("k", "v1").parent
    old, young = videos / ".v2.npz.abc.tmp", videos / ".v3.npz.def.tmp"
    old.write_bytes(b"half")
    young.write_bytes(b"half")
    os.utime(old, (time.time() - 120, time.time() - 120))
    assert store.video_ids("k") == ["v1"]
    FeatureStore.create(tmp_path / "s", 4)
    assert not old.exists() and young.exists()


@pytest.mark.slow
def test_two_extract_processes_on_one_store(clips, tmp_path):
    """Two `viper extract` processes on one store with the same inputs at once: both exit 0 and the store is
    sound (every npz loads, `load` works, packed arrays equal the per-video arrays)."""
    root = tmp_path / "store"
    command = [sys.executable, "-m", "viper", "extract", str(clips), "--out", str(root), "-n", "4", "-e", "audio"]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    results = [(process.wait(timeout=240), process.stderr.read()) for process in processes]
    for code, stderr in results:
        assert code == 0 and "Traceback" not in stderr, stderr
    store = FeatureStore.open(root)
    arrays = all_arrays(store)
    assert sorted(vid for _, vid in arrays) == ["a", "b", "c"]
    assert_packed_matches(store)
    assert not list(root.rglob("*.tmp"))


PACKER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from viper.store import FeatureStore
    root, prefix, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    store = FeatureStore(root)
    rng = np.random.default_rng(ord(prefix))
    while time.time() < start:
        time.sleep(0.001)
    checked = 0
    for i in range(40):
        store.write("k", f"{prefix}{i:02d}", rng.normal(size=(4, 3)), rng.random(4) > 0.5)
        store.pack("k")
        packed = store._packed("k")
        if packed is None:
            continue  # the other process has just written a video: the pack is stale, not wrong
        rows, values, mask = packed
        for video_id, row in rows.items():
            one_values, one_mask = store.read("k", video_id)
            assert np.array_equal(values[row], one_values), (video_id, "values of another pack")
            assert np.array_equal(mask[row], one_mask), (video_id, "mask of another pack")
        checked += 1
    print(checked)
""")


@pytest.mark.slow
def test_concurrent_packs_never_mix(tmp_path):
    """Two processes writing different videos and packing at once: `pack` and `_packed` hold the lock on
    packed/.lock, so a reader never pairs values.npy of one pack with ids.json of another; after both finish, one
    more pack gives all 80 videos."""
    store = FeatureStore.create(tmp_path / "s", 4)
    start = str(time.time() + 2.0)
    processes = [subprocess.Popen([sys.executable, "-c", PACKER, str(store.root), prefix, start],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for prefix in "xy"]
    for process in processes:
        assert process.wait(timeout=120) == 0, process.stderr.read()
        assert int(process.stdout.read()) > 0
    assert len(store.video_ids("k")) == 80
    assert_packed_matches(store)


def test_disk_full_stops_with_a_clear_message_and_keeps_the_store(clips, tmp_path, monkeypatch):
    """Disk full (every atomic write fails with ENOSPC at fsync, in process): `extract` stops with a ViperError
    saying "No space left on device" (the CLI prints it as `error: ...`, exit 2) instead of marking each clip
    failed; videos written before are intact, no partial npz or temp file is left, and once space is back the
    same command resumes and the store loads."""
    root = tmp_path / "store"
    one = tmp_path / "one"
    one.mkdir()
    (one / "a.mp4").write_bytes((clips / "a.mp4").read_bytes())
    extract(one, root, frames=4, extractors=["audio"])
    before = all_arrays(FeatureStore.open(root))

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(viper.atomic.os, "fsync", no_space)
    with pytest.raises(ViperError, match="No space left on device") as error:
        extract(clips, root, frames=4, extractors=["audio"])
    assert str(root) in str(error.value)
    monkeypatch.undo()
    store = FeatureStore.open(root)
    after = all_arrays(store)
    assert after.keys() == before.keys()
    assert all(np.array_equal(after[k][0], before[k][0]) for k in before)
    assert not list(root.rglob("*.tmp"))
    summary = extract(clips, root, frames=4, extractors=["audio"])
    assert summary.done == 2 and summary.skipped == 1
    assert_packed_matches(FeatureStore.open(root))


@pytest.mark.parametrize("found", [2, None, "1"])
def test_a_store_of_an_unknown_format_is_refused(clips, tmp_path, found):
    """store.json of a format this viper does not know (newer, missing, a string): `viper train` and `viper
    extract` stop at once with `error: <store.json>: store format ...` naming the format read; exit 2."""
    store = FeatureStore.create(tmp_path / "store", 4)
    info = json.loads((store.root / "store.json").read_text()) | {"format": found}
    (store.root / "store.json").write_text(json.dumps(info))
    expected = f"{store.root / 'store.json'}: store format {found!r}; viper {__version__} reads format 1 only"
    for command in (["train", "--features", str(store.root), "--out", str(tmp_path / "run")],
                    ["extract", str(clips), "--out", str(store.root), "-n", "4", "-e", "audio"]):
        result = CliRunner().invoke(app, command, catch_exceptions=False)
        assert result.exit_code == 2 and expected in result.stderr, result.stderr
