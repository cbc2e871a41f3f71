"""`viper train` killed with SIGKILL, then run again: it continues from the last completed epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from synthetic import make_synthetic_store

TINY = {"num_latents": 8, "latent_dim": 16, "input_dim": 16, "self_layers": 1, "latent_heads": 2}
EPOCHS = 16


@pytest.mark.slow
def test_sigkill_during_training_resumes_to_identical_weights(tmp_path):
    """SIGKILL mid-run, then the same command: training continues after the last completed epoch (last.pt is
    written atomically after each), history.csv lists every epoch exactly once, and the final weights equal those
    of an uninterrupted run (CPU, same seed, one thread in both)."""
    store = make_synthetic_store(tmp_path / "store", {"face_image-test-aaaa": ("face_image", 6),
                                                      "audio-test-bbbb": ("audio", 4)},
                                 ("joy", "fear"), n_clips=48, n_frames=8)
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"lr": 1e-2, "lr_step_epochs": 100, "batch_size": 16,
                                  "device": "cpu", "model_overrides": {**TINY, "ff_dropout": 0.2}}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def command(out):
        return [sys.executable, "-m", "viper", "train", "--features", str(store.root), "--out", str(out),
                "--config", str(config), "--epochs", str(EPOCHS)]

    killed = tmp_path / "killed"
    process = subprocess.Popen(command(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    history = killed / "history.csv"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if history.exists() and history.read_text().count("\n") >= 3:  # header + at least 2 epochs
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    done_at_kill = torch.load(killed / "last.pt", weights_only=False)["epoch"]
    assert 1 <= done_at_kill < EPOCHS
    subprocess.run(command(killed), check=True, capture_output=True, env=env, timeout=300)
    clean = tmp_path / "clean"
    subprocess.run(command(clean), check=True, capture_output=True, env=env, timeout=300)

    epochs = pd.read_csv(history)["epoch"].tolist()
    assert epochs == list(range(1, EPOCHS + 1))
    resumed, reference = (torch.load(run / "last.pt", weights_only=False)["model"] for run in (killed, clean))
    for name, value in reference.items():
        assert torch.equal(value, resumed[name]), name
