"""Jobs report progress and messages through one hook (viper.progress); without one they say nothing."""

from __future__ import annotations

import shutil

from synthetic import make_synthetic_store

from viper.jobs.demo import demo_clips
from viper.jobs.extract import extract
from viper.jobs.train import TrainConfig, train


class Recorder:
    """A hook that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, step: str, **update) -> None:
        self.calls.append((step, update))


def test_extract_reports_each_clip_and_train_each_epoch(tmp_path, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    for path in sorted(demo_clips().glob("*.mp4"))[:2]:
        shutil.copy(path, clips / path.name)
    hook = Recorder()
    extract(clips, tmp_path / "store", frames=4, extractors=["face_image"], face_crop=False, hook=hook)
    assert [(step, u["completed"], u["total"]) for step, u in hook.calls] == [("extract", k, 2) for k in (0, 1, 2)]
    again = Recorder()
    extract(clips, tmp_path / "store", frames=4, extractors=["face_image"], face_crop=False, hook=again)
    assert [u["completed"] for _, u in again.calls] == [0, 1, 2]  # skipped clips count as done

    store = make_synthetic_store(tmp_path / "synthetic", {"a": ("face_image", 4)}, ("joy", "anger"),
                                 n_clips=12, n_frames=4)
    hook = Recorder()
    train(store.root, tmp_path / "run", TrainConfig(epochs=3, batch_size=4, device="cpu"), hook=hook)
    assert [(step, u["completed"], u["total"]) for step, u in hook.calls] == [("train", e, 3) for e in (0, 1, 2, 3)]
    assert all({"loss", "dev_r"} <= set(u["details"]) for _, u in hook.calls[1:])

    train(store.root, tmp_path / "silent", TrainConfig(epochs=1, batch_size=4, device="cpu"))
    out = capsys.readouterr()
    assert "train" not in out.out + out.err  # no hook: no bar, no message
