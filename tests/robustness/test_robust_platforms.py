"""Windows and macOS: nothing viper runs needs fcntl (Windows has none), no id becomes a name Windows refuses or
reserves, ids no one can tell apart are one id, and the memory caps say what they do where free memory is unknown."""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import unicodedata
from pathlib import Path

import pandas as pd
import pytest
from media import make_clip
from typer.testing import CliRunner

from viper import settings
from viper.cli import app
from viper.errors import ViperError
from viper.filenames import id_key, name_problem, safe_name
from viper.jobs.demo import demo_clips
from viper.manifest import scan_folder
from viper.settings import extraction_settings, usable_cpus
from viper.store import FeatureStore

CHILD_IMPORTS = """
import importlib, pkgutil, sys
try:
    import fcntl
except ImportError:
    pass
else:
    sys.exit("fcntl is importable: the block did not take")
import viper
names = [m.name for m in pkgutil.walk_packages(viper.__path__, "viper.") if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
print(" ".join(["viper", *names]))
"""
TINY = {"num_latents": 8, "latent_dim": 16, "input_dim": 16, "self_layers": 1, "latent_heads": 2}
NFC, NFD = unicodedata.normalize("NFC", "Café"), unicodedata.normalize("NFD", "Café")


def viper(*args: str):
    return CliRunner().invoke(app, list(map(str, args)), catch_exceptions=False)


@pytest.fixture(scope="module")
def without_fcntl(tmp_path_factory) -> dict[str, str]:
    """The environment of a Python where `import fcntl` fails, as on Windows: a sitecustomize (which every child
    process runs too) puts None in its place in sys.modules."""
    folder = tmp_path_factory.mktemp("no-fcntl")
    (folder / "sitecustomize.py").write_text("import sys\nsys.modules['fcntl'] = None\n")
    path = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


def run(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return result


def test_every_module_imports_without_fcntl(without_fcntl):
    """Every module of viper imports in a Python without fcntl (the CLI's `viper --help` too): the locks come from
    filelock, which takes LockFileEx on Windows."""
    imported = set(run(without_fcntl, "-c", CHILD_IMPORTS).stdout.split())
    package = Path(settings.__file__).parent
    modules = {".".join(["viper", *p.relative_to(package).with_suffix("").parts]).removesuffix(".__init__")
               for p in package.rglob("*.py") if p.name != "__main__.py"}
    assert imported == modules
    assert "predict" in run(without_fcntl, "-m", "viper", "--help").stdout


@pytest.mark.slow
def test_predict_extract_and_train_run_without_fcntl(without_fcntl, tmp_path):
    """Real `viper predict` on a bundled take, then `viper extract` of three takes and `viper train` on them, each a
    process where fcntl cannot be imported: all exit 0, their outputs are there, and where no lock can be taken
    (no fcntl outside Windows) one warning says so and the work goes on."""
    take = demo_clips() / "01-01-03-02-02-01-05.mp4"  # happy, strong
    record = json.loads(run(without_fcntl, "-m", "viper", "predict", take).stdout.splitlines()[-1])
    assert max(record["scores"], key=record["scores"].get) == "happy" and record["coverage"]["frames"] == 32

    rows = [("a", "01-01-03-02-01-01-05", "train", 1.0), ("b", "01-01-04-02-01-01-05", "train", 0.0),
            ("c", "01-01-03-01-01-02-05", "test", 0.5)]
    (tmp_path / "m.csv").write_text("video_id,path,split,joy\n" + "".join(
        f"{i},{demo_clips() / name}.mp4,{split},{joy}\n" for i, name, split, joy in rows))
    (tmp_path / "train.json").write_text(json.dumps({"device": "cpu", "model_overrides": TINY}))
    extracted = run(without_fcntl, "-m", "viper", "extract", "m.csv", "--out", "store", "-n", "4", "-e", "audio",
                    cwd=tmp_path)
    assert "file locks are not available here (fcntl is unavailable)" in extracted.stderr
    store = FeatureStore.open(tmp_path / "store")
    assert store.video_ids(store.key_for("audio")) == ["a", "b", "c"]
    run(without_fcntl, "-m", "viper", "train", "--features", "store", "--out", "run", "--config", "train.json",
        "--epochs", "2", cwd=tmp_path)
    assert (tmp_path / "run" / "best.pt").stat().st_size > 0


WINDOWS_NAMES = {  # manifest id -> what the refusal says
    "CON": "names the Windows device CON",
    "aux.txt": "names the Windows device AUX",
    "Com1.tar.gz": "names the Windows device COM1",
    "lpt9": "names the Windows device LPT9",
    "nul .mp4": "names the Windows device NUL",
    "a:b": "a character Windows forbids",
    "what?": "a character Windows forbids",
    'say "hi"': "a character Windows forbids",
    "x<y>z|w*": "a character Windows forbids",
    "end.": "ends with a dot or a space",
}


@pytest.mark.parametrize("name", WINDOWS_NAMES)
def test_names_windows_reserves_are_refused_by_the_store(tmp_path, name):
    assert WINDOWS_NAMES[name] in name_problem(name)
    with pytest.raises(ViperError, match="cannot name a file in the store"):
        FeatureStore.create(tmp_path / "store", 4).clip_path(name)


def test_names_like_windows_devices_that_are_not_pass():
    for name in ("CONSOLE", "com10", "LPT", "con-1", ".con", "nully.txt", "a.b", "trailing-dash-"):
        assert name_problem(name) is None, name


def test_manifest_ids_windows_refuses_are_listed_with_their_lines(tmp_path):
    """`viper extract manifest.csv` whose ids Windows reserves or forbids: exit 2, every line named, nothing
    written. (A trailing space is stripped from a manifest's ids, so it never reaches the check.)"""
    make_clip(tmp_path / "a.mp4", frames=4)
    ids = [*WINDOWS_NAMES, "fine"]
    pd.DataFrame({"video_id": ids, "path": "a.mp4", "split": "train"}).to_csv(tmp_path / "m.csv", index=False)
    result = viper("extract", tmp_path / "m.csv", "--out", tmp_path / "store", "-n", "4", "-e", "audio")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert f"{len(WINDOWS_NAMES)} video_id(s) cannot be file names" in result.stderr
    for line, name in enumerate(WINDOWS_NAMES, 2):
        assert f"line {line}: {name!r} " in result.stderr
    assert f"line {len(ids) + 1}" not in result.stderr and not (tmp_path / "store").exists()


def test_manifest_ids_that_only_look_different_are_refused(tmp_path):
    """Ids one cannot tell apart: NFC and NFD spellings of `Café` (one file on macOS), and `ab` beside `ab` with
    a zero-width space or a BOM in it. Exit 2, the groups shown escaped so the difference is visible."""
    make_clip(tmp_path / "a.mp4", frames=4)
    ids = [NFC, NFD, "ab", "a\u200bb", "\ufeffab", "a\u200db-2", "ab-2", "other"]
    pd.DataFrame({"video_id": ids, "path": "a.mp4", "split": "train"}).to_csv(tmp_path / "m.csv", index=False)
    result = viper("extract", tmp_path / "m.csv", "--out", tmp_path / "store", "-n", "4", "-e", "audio")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert ("'Cafe\\u0301' / 'Caf\\xe9' (the same but for Unicode normalisation or invisible characters)"
            in result.stderr)
    assert "'ab' / 'a\\u200bb' / '\\ufeffab'" in result.stderr and "'ab-2' / 'a\\u200db-2'" in result.stderr
    assert "other" not in result.stderr and not (tmp_path / "store").exists()


def test_file_names_windows_refuses_or_that_only_look_different_become_safe_unique_ids(tmp_path):
    """A folder of videos named as Windows devices, with characters it forbids, with a trailing dot or space,
    NFC beside NFD, with and without a zero-width space: every clip is extracted under its own id, each a name
    Windows takes, no two alike to the eye."""
    videos = tmp_path / "videos"
    videos.mkdir()
    names = ["CON.mp4", "aux.txt.mp4", "a:b.mp4", "a_b.mp4", "what?.mp4", 'say "hi".mp4', "end..mp4", "end .mp4",
             f"{NFC}.mp4", f"{NFD}.mp4", "ab.mp4", "a\u200bb.mp4"]
    for name in names:
        make_clip(videos / name, frames=4, audio_seconds=0.4)
    table = scan_folder(videos)
    ids = list(table["video_id"])
    assert len({id_key(video_id) for video_id in ids}) == len(names)
    assert all(name_problem(video_id) is None for video_id in ids)
    assert {"_CON", "_aux.txt", "what_", "say _hi_"} <= set(ids)
    result = viper("extract", videos, "--out", tmp_path / "store", "-n", "4", "-e", "audio")
    assert result.exit_code == 0, result.stderr
    store = FeatureStore.open(tmp_path / "store")
    assert sorted(store.video_ids(store.key_for("audio"))) == sorted(ids)


def test_safe_name_of_anything_passes_the_windows_rules():
    """2000 random names of devices, forbidden characters, dots, spaces and invisible characters: each safe name
    passes `name_problem`, so Windows takes it."""
    rng = random.Random(0)
    alphabet = ["CON", "nul", "Com1", "LPT\u00b9", ".", " ", ":", "?", "*", '"', "<", ">", "|", "\u200b", "\ufeff",
                "a", "é", "/"]
    for _ in range(2000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        assert name_problem(safe_name(name)) is None, (name, safe_name(name))


def test_memory_caps_where_free_memory_is_unknown(monkeypatch, caplog):
    """macOS and Windows report no free memory to the standard library (no /proc/meminfo; viper does not depend on
    psutil): `available_memory` is None there, so the workers are capped by the CPUs alone and the batch not at
    all, each with a warning that says so. (Linux's answer stands in for theirs: this machine has /proc.)"""
    assert settings.available_memory() > 0  # this machine: /proc/meminfo's MemAvailable
    monkeypatch.setattr(settings, "available_memory", lambda: None)
    with caplog.at_level(logging.WARNING):
        assert extraction_settings(1024, 256, 999, "cpu") == (256, usable_cpus())
    assert "--batch-videos 256: this system does not say how much memory is free" in caplog.text
    assert "--workers 999: this system does not say how much memory is free" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert extraction_settings(32, None, 1, "cpu") == (1, 1)
    assert caplog.text == ""  # one worker, one clip at a time: nothing a memory cap would change
