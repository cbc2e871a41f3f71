"""`viper predict --per-frame TABLE`: a table that cannot be written is refused before any model loads (it used to
end in a traceback after every video was scored), and a run where every video failed leaves an earlier table alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from viper.cli import app
from viper.errors import ViperError
from viper.jobs.demo import demo_clips
from viper.jobs.predict import write_table

TAKE = demo_clips() / "01-01-03-02-01-01-05.mp4"
SRC = Path(__file__).resolve().parents[2] / "src"


def predict_process(*argv: str, no_pyarrow: bool = False) -> tuple[subprocess.CompletedProcess, bool]:
    """A whole `viper predict ARGV` process (pyarrow made unimportable when asked), and whether torch had loaded."""
    code = ("import atexit, runpy, sys; atexit.register(lambda: print('torch loaded:', 'torch' in sys.modules)); "
            + ("sys.modules['pyarrow'] = None; " if no_pyarrow else "")
            + "sys.argv = ['viper', 'predict', *sys.argv[1:]]; runpy.run_module('viper', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(SRC)})
    return done, done.stdout.splitlines()[-1] == "torch loaded: True"


@pytest.mark.parametrize("where, message", [
    ("folder", "is a folder; name a .csv or .parquet file"),
    ("inside a file", "notes.txt is not a folder"),
    ("/proc/x.csv", "cannot write in /proc"),
    ("read-only folder", "cannot write in"),
])
def test_a_table_that_cannot_be_written_is_refused_before_any_model_loads(tmp_path, where, message):
    if where == "/proc/x.csv" and not Path("/proc/self").exists():
        pytest.skip("no /proc here")
    if where == "read-only folder" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    (tmp_path / "frames.csv").mkdir()
    (tmp_path / "notes.txt").write_text("notes")
    (tmp_path / "locked").mkdir(mode=0o555)
    table = {"folder": tmp_path / "frames.csv", "inside a file": tmp_path / "notes.txt" / "frames.csv",
             "/proc/x.csv": Path("/proc/x.csv"), "read-only folder": tmp_path / "locked" / "frames.csv"}[where]
    done, torch_loaded = predict_process(str(TAKE), "--per-frame", str(table))
    assert done.returncode == 2 and f"error: --per-frame {table}: " in done.stderr and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not torch_loaded


def test_parquet_without_pyarrow_is_refused_before_any_model_loads(tmp_path):
    done, torch_loaded = predict_process(str(TAKE), "--per-frame", str(tmp_path / "frames.parquet"), no_pyarrow=True)
    assert done.returncode == 2 and not torch_loaded
    assert "frames.parquet: writing Parquet needs pyarrow (pip install pyarrow), or name a .csv" in done.stderr


def test_a_table_that_fails_when_written_is_one_message(tmp_path):
    """A write that fails after the check (the folder replaced by a file while the videos were scored): a
    ViperError naming the table, which the CLI prints as one line after the records it printed."""
    (tmp_path / "out").write_text("a file where the table's folder was")
    with pytest.raises(ViperError, match=r"out/frames.csv: cannot write the per-frame table \(.+\)"):
        write_table(pd.DataFrame({"time": [0.0]}), tmp_path / "out" / "frames.csv")


def test_a_run_where_every_video_failed_keeps_the_earlier_table(tmp_path):
    table = tmp_path / "frames.csv"
    table.write_text("video,frame\nearlier.mp4,0\n")
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "gone.mp4"), "--per-frame", str(table)])
    assert result.exit_code == 1 and "gone.mp4: file does not exist" in result.stderr
    assert f"no per-frame table written to {table}: no video was scored" in result.stderr
    assert table.read_text() == "video,frame\nearlier.mp4,0\n"
    fresh = tmp_path / "fresh.csv"
    CliRunner().invoke(app, ["predict", str(tmp_path / "gone.mp4"), "--per-frame", str(fresh)])
    assert not fresh.exists()  # not a 1-byte file
