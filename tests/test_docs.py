"""The documentation site (docs/, mkdocs.yml): it builds with warnings as errors, every `python` block of its
pages runs as written (as the README's do, tests/test_readme.py), and the example manifest it and the README
point at is one viper reads."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_blocks import block_cases, run_block

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
CASES = block_cases(PAGES, DOCS)


def test_the_pages_have_python_examples():
    """The pages that moved out of the README kept its examples (predict, training, serve), and more."""
    assert len(CASES) >= 3


NO_MKDOCS = importlib.util.find_spec("mkdocs") is None


@pytest.mark.skipif(NO_MKDOCS, reason="mkdocs is not installed (it is in the dev extra: pip install -e '.[dev]')")
def test_the_site_builds_strictly(tmp_path):
    """`mkdocs build --strict`: a broken link or anchor, a page left out of the nav or a docstring the API
    reference cannot render fails the build, and so this test."""
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml"),
               "--site-dir", str(tmp_path / "site")]
    run = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})  # Material's banner about its successor
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    reference = (tmp_path / "site" / "reference" / "index.html").read_text(encoding="utf-8")
    assert "viper.jobs.predict.predict" in reference and "Per readable video or image" in reference  # docstrings in


def test_the_example_manifest_is_valid():
    """examples/manifest.csv, the README's first step, is read by viper's own manifest reader: every row checked,
    every path a bundled take, labels for train and test, a person per clip."""
    from viper.manifest import read_manifest

    table = read_manifest(REPO / "examples" / "manifest.csv")
    assert len(table) == 16 and table["video_id"].is_unique
    assert set(table["split"]) == {"train", "test"}
    assert all(Path(path).is_file() for path in table["path"])
    assert (table["person"] == "05").all()
    emotions = [column for column in table.columns if column not in ("video_id", "path", "split", "person")]
    assert emotions == ["neutral", "happy", "sad", "angry"]
    labels = table[emotions].astype(float)
    assert ((labels >= 0) & (labels <= 1)).all().all() and (labels.max(axis=1) > 0).all()


@pytest.mark.parametrize(("block", "path"), CASES)
def test_docs_python_block_runs(block, path, tmp_path, monkeypatch, capsys):
    run_block(block, path, tmp_path, monkeypatch, capsys)
