"""`viper extract --workers 2` as a real process: SIGTERM or Ctrl-C stops the workers too and says how to resume;
a worker killed mid-clip is replaced and its clip tried again; a clip that kills its worker twice fails alone."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from media import make_clip

CLIPS = 64  # enough work after the first clip is written that a signal lands mid-run on an idle machine too


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    for i in range(CLIPS):
        make_clip(folder / f"c{i:02d}.mp4", frames=20, audio_seconds=1.0)
    return folder


def command(data: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "viper", "extract", str(data), "--out", str(store), "-n", "16", "-e", "audio",
            "--no-face-crop", "--workers", "2"]


def workers(pid: int) -> set[int]:
    """The worker processes (multiprocessing's spawned children) of a running `viper extract`."""
    found = set()
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            try:
                if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                    found.add(int(child))
            except OSError:
                continue  # it just ended
    return found


def holds(pid: int, path: Path) -> bool:
    """Whether a process has `path` open (decoding it)."""
    try:
        return any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_workers_and_the_same_command_resumes(clips, tmp_path, stop):
    """SIGTERM (or SIGINT) to `viper extract --workers 2` once a clip is written: it exits 143 (130), saying
    `interrupted: N of 64 clips done; run the same command again to resume`, without a traceback; no worker
    outlives it; the same command then extracts the rest."""
    store = tmp_path / "store"
    # a job started in the background (as CI may run the suite) inherits SIGINT ignored: give the child the default
    # a terminal gives it, so Ctrl-C reaches it as a user's would
    process = subprocess.Popen(command(clips, store), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen: set[int] = set()
    deadline = time.time() + 180
    while not any((store / "clips").glob("*.json")):
        assert process.poll() is None and time.time() < deadline, process.communicate()
        seen |= workers(process.pid)
        time.sleep(0.01)
    seen |= workers(process.pid)
    process.send_signal(stop)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + stop, err
    interrupted = re.search(rf"interrupted: (\d+) of {CLIPS} clips done; run the same command again to resume", err)
    assert interrupted and "Traceback" not in err, err
    assert len(seen) == 2 and not any(Path(f"/proc/{pid}").exists() for pid in seen)
    if stop == signal.SIGTERM:
        rerun = subprocess.run(command(clips, store), capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        done, skipped = map(int, re.search(r"videos done (\d+), skipped \(already in store\) (\d+), failed 0",
                                           rerun.stdout).groups())
        assert done + skipped == CLIPS and skipped >= int(interrupted[1])


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_a_clip_that_kills_it_twice_fails(clips, tmp_path):
    """Whenever a worker has `poison.mp4` open, the test SIGKILLs it (as a crash in a decoder would): the run
    goes on with a new worker, tries the clip once more, then reports it `FAILED ...: its worker process died
    twice (killed by SIGKILL)`; the 64 other clips are extracted; exit 1, no traceback."""
    folder = tmp_path / "clips"
    shutil.copytree(clips, folder)
    poison = make_clip(folder / "poison.mp4", frames=60, fps=30, size=(1280, 720), audio_seconds=2.0)
    store = tmp_path / "store"
    process = subprocess.Popen(command(folder, store), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed: set[int] = set()
    deadline = time.time() + 300
    while process.poll() is None and time.time() < deadline:
        for pid in workers(process.pid) - killed:
            if holds(pid, poison):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        time.sleep(0.002)
    out, err = process.communicate(timeout=60)
    assert len(killed) == 2, (out, err)
    assert process.returncode == 1 and "Traceback" not in err, err
    assert f"FAILED {poison}: its worker process died twice (killed by SIGKILL)" in err
    assert f"videos done {CLIPS}, skipped (already in store) 0, failed 1" in out
    assert "a worker process died (killed by SIGKILL) extracting poison; trying again in a new one" in out
