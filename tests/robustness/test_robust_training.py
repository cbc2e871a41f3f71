"""`viper train` killed with SIGKILL or stopped by a full disk, then run again: it continues from the last completed
epoch."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest
import torch
from synthetic import make_synthetic_store

from viper.jobs.train import train, train_config

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


FULL_DISK_DRIVER = textwrap.dedent("""
    import hashlib, json, subprocess, sys
    from pathlib import Path
    folder, first, command = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)]).returncode:
        print(json.dumps({"skip": "cannot mount a tmpfs here"}))
        sys.exit()
    run = folder / "run"
    subprocess.run(["cp", "-a", str(first), str(run)], check=True)
    digest = {name: hashlib.sha256((run / name).read_bytes()).hexdigest() for name in ("best.pt", "last.pt")}
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(bytes(4096))
        except OSError:
            pass
    with open(filler, "r+b") as handle:  # room for config.json, history.csv and events, not for a checkpoint
        handle.truncate(filler.stat().st_size - 64 * 1024)
    full = subprocess.run(command + ["--out", str(run)], capture_output=True, text=True)
    kept = {name: hashlib.sha256((run / name).read_bytes()).hexdigest() for name in ("best.pt", "last.pt")}
    leftovers = sorted(path.name for path in run.rglob("*.tmp"))
    filler.unlink()
    again = subprocess.run(command + ["--out", str(run)], capture_output=True, text=True)
    print(json.dumps({"code": full.returncode, "stderr": full.stderr, "intact": kept == digest,
                      "leftovers": leftovers, "again": again.returncode, "again_stderr": again.stderr,
                      "history": (run / "history.csv").read_text()}))
""")


@pytest.mark.slow
def test_disk_full_during_training_is_one_message_and_keeps_the_checkpoints(tmp_path):
    """The run folder on a real full filesystem (a tmpfs mounted in a user namespace; skipped where that is not
    allowed), one epoch done before: `viper train` stops with `error: RUN: training stopped, the run folder cannot
    be written: No space left on device (RUN/best.pt) ...` (exit 2, no traceback); best.pt and last.pt are byte for
    byte those of epoch 1 and no temp file is left; once there is space the same command finishes all epochs."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode:
        pytest.skip("no user namespaces here (unshare -rm)")
    store = make_synthetic_store(tmp_path / "store", {"audio-test-bbbb": ("audio", 4)}, ("joy", "fear"),
                                 n_clips=24, n_frames=4)
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"lr": 1e-2, "batch_size": 8, "device": "cpu",
                                  "model_overrides": {**TINY, "latent_dim": 64, "input_dim": 64}}))
    train(store.root, tmp_path / "first", train_config(config, epochs=1))
    command = [sys.executable, "-m", "viper", "train", "--features", str(store.root), "--config", str(config)]
    (tmp_path / "full").mkdir()
    driver = subprocess.run(["unshare", "-rm", sys.executable, "-c", FULL_DISK_DRIVER, str(tmp_path / "full"),
                             str(tmp_path / "first"), json.dumps([*command, "--epochs", "3"])],
                            capture_output=True, text=True, timeout=300)
    assert driver.returncode == 0, driver.stderr
    outcome = json.loads(driver.stdout.splitlines()[-1])
    if "skip" in outcome:
        pytest.skip(outcome["skip"])
    assert outcome["code"] == 2 and "Traceback" not in outcome["stderr"], outcome["stderr"]
    assert "training stopped, the run folder cannot be written: No space left on device" in outcome["stderr"]
    run = tmp_path / "full" / "run"
    assert f"{run}: " in outcome["stderr"] and (f"({run / 'best.pt'})" in outcome["stderr"]
                                                or f"({run / 'last.pt'})" in outcome["stderr"])
    assert outcome["intact"] and not outcome["leftovers"]
    assert outcome["again"] == 0, outcome["again_stderr"]
    assert pd.read_csv(io.StringIO(outcome["history"]))["epoch"].tolist() == [1, 2, 3]
