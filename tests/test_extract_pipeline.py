"""`viper extract` end to end on real faces (bundled takes, alone and in generated scenes): store contents, masks,
skipping, failures, resume after SIGKILL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from faces_media import take
from typer.testing import CliRunner

from viper.cli import app
from viper.jobs.extract import extract
from viper.store import FeatureStore

FRAMES = 8
VIDEOS = ["take.mp4", "single_face.mp4", "no_face.mp4", "face_noface.mov", "noface_face.mov"]


@pytest.fixture(scope="module")
def samples(face_videos, tmp_path_factory):
    """A bundled take as shipped (the face fills the frame) and the four clips of `face_videos`."""
    folder = tmp_path_factory.mktemp("samples")
    shutil.copy(take(), folder / "take.mp4")
    for name, path in face_videos.items():
        shutil.copy(path, folder / name)
    return folder


@pytest.fixture(scope="module")
def store(samples, tmp_path_factory):
    root = tmp_path_factory.mktemp("store") / "store"
    summary = extract(samples, root, frames=FRAMES)
    assert summary.done == len(VIDEOS) and not summary.failed
    return FeatureStore.open(root)


def arrays(store: FeatureStore) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    return {(key, vid): store.read(key, vid) for key in store.extractor_keys() for vid in store.video_ids(key)}


def test_store_holds_every_modality_for_every_clip(store):
    modalities = sorted(store.feature_spec(key).modality for key in store.extractor_keys())
    assert modalities == ["audio", "caption", "expression", "face_image", "fau"]
    for key in store.extractor_keys():
        info = store.feature_spec(key)
        values, mask = store.load(key, ["single_face", "no_face"])
        assert values.shape == (2, FRAMES, info.dim) and values.dtype == np.float32
        assert info.frames == FRAMES and info.face_crop is True
    meta = store.clip_meta("single_face")
    assert len(meta["times"]) == FRAMES and len(meta["source_sha256"]) == 64


def test_masks_follow_faces_and_audio(store):
    no_face = store.clip_meta("no_face")
    assert not any(no_face["face_mask"]) and all(no_face["audio_mask"])
    assert all(store.clip_meta("single_face")["face_mask"])
    face_noface = store.clip_meta("face_noface")["face_mask"]
    assert face_noface[0] and not face_noface[-1]
    noface_face = store.clip_meta("noface_face")["face_mask"]
    assert not noface_face[0] and all(noface_face[FRAMES // 2 :])
    assert all(store.clip_meta("take")["face_mask"])
    for key in store.extractor_keys():
        values, mask = store.read(key, "no_face")
        if store.feature_spec(key).modality == "audio":
            assert mask.all()
        else:
            assert not mask.any() and not values.any()  # masked, never invented


def test_rerun_skips_everything_and_changes_nothing(store, samples):
    before = arrays(store)
    summary = extract(samples, store.root, frames=FRAMES)
    assert summary.skipped == len(VIDEOS) and summary.done == 0
    after = arrays(store)
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k][0], after[k][0]) for k in before)


def test_a_changed_setting_gets_its_own_features(samples, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(samples / "single_face.mp4", one / "single_face.mp4")
    root = tmp_path / "s"
    extract(one, root, frames=FRAMES, extractors=["face_image"])
    extract(one, root, frames=FRAMES, extractors=["face_image"], face_crop=False)
    keys = FeatureStore.open(root).extractor_keys()
    assert len(keys) == 2 and sum("-nocrop-" in key for key in keys) == 1
    cropped, whole = (FeatureStore.open(root).read(key, "single_face")[0] for key in sorted(keys, key=len))
    assert not np.allclose(cropped, whole)


def test_unreadable_video_is_reported_and_the_run_goes_on(samples, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(samples / "single_face.mp4", folder / "good.mp4")
    (folder / "broken.mp4").write_text("not a video")
    result = CliRunner().invoke(
        app, ["extract", str(folder), "--out", str(tmp_path / "s"), "-n", "4", "-e", "audio"], catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "broken.mp4" in result.stderr and "Traceback" not in result.stderr
    assert "videos done 1" in result.stdout
    written = FeatureStore.open(tmp_path / "s")
    assert written.video_ids(written.extractor_keys()[0]) == ["good"]


@pytest.mark.slow
def test_killed_run_resumes_to_identical_arrays(store, samples, tmp_path):
    root = tmp_path / "killed"
    command = [sys.executable, "-m", "viper", "extract", str(samples), "--out", str(root), "-n", str(FRAMES)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if (root / "clips").exists() and any((root / "clips").glob("*.json")):
            break  # one clip is complete; kill while the next is being written
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    subprocess.run(command, check=True, capture_output=True)
    resumed = arrays(FeatureStore.open(root))
    clean = arrays(store)
    assert resumed.keys() == clean.keys()
    for key in clean:
        assert np.array_equal(resumed[key][0], clean[key][0]) and np.array_equal(resumed[key][1], clean[key][1])


@pytest.mark.slow
def test_two_workers_give_the_same_arrays(store, samples, tmp_path):
    extract(samples, tmp_path / "parallel", frames=FRAMES, workers=2)
    parallel = arrays(FeatureStore.open(tmp_path / "parallel"))
    clean = arrays(store)
    assert parallel.keys() == clean.keys()
    for key in clean:  # one torch thread per worker instead of two: float sums may differ in the last bits, and
        # the blendshape network turns the mesh's last-bit differences into up to 3e-4 of its [0, 1] scores
        np.testing.assert_allclose(parallel[key][0], clean[key][0], atol=1e-3, err_msg=str(key))
        assert np.array_equal(parallel[key][1], clean[key][1])


def test_batches_across_videos_give_the_same_features_and_isolate_a_bad_video(store, samples, tmp_path):
    folder = tmp_path / "with-bad"
    shutil.copytree(samples, folder)
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    root = tmp_path / "batched"
    summary = extract(folder, root, frames=FRAMES, batch_videos=4)
    assert summary.done == len(VIDEOS) and [os.path.basename(path) for path, _ in summary.failed] == ["broken.mp4"]
    batched = FeatureStore.open(root)
    one_by_one = arrays(store)
    assert arrays(batched).keys() == one_by_one.keys()
    for name, (values, mask) in arrays(batched).items():
        np.testing.assert_allclose(values, one_by_one[name][0], atol=1e-3, err_msg=str(name))  # as above
        np.testing.assert_array_equal(mask, one_by_one[name][1])
