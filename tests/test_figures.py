"""Measured figures in the docs are written by the benchmarks that measure them (benchmarks/figures.py): every
`<!-- figures:NAME -->` block has its results file and equals its rendering, and figures whose measured code
changed since are named in a warning (CI's output shows them; re-measuring is a judgement, not a failure)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import figures  # noqa: E402  (benchmarks/figures.py)

BLOCKS = figures.blocks(REPO)


def in_git(root: Path) -> bool:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True).returncode == 0


def test_the_docs_have_figure_blocks():
    """The start-up, ONNX Runtime and fusion tables of docs/speed.md at least."""
    assert {"startup", "onnx-runtime", "fusion-onnx"} <= {block.name for block in BLOCKS}


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{block.page.name}:{block.name}" for block in BLOCKS])
def test_a_figure_block_is_its_results_rendered(block):
    if message := figures.problem(block):
        pytest.fail(message, pytrace=False)


def test_no_table_of_the_docs_is_typed_in_by_hand():
    assert figures.tables_by_hand(REPO) == []


def test_a_table_typed_in_by_hand_is_named(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Speed\n\n| clip | seconds |\n|---|---|\n| a | 0.5 |\n\n"
                                              "| extra | what for |\n|---|---|\n| serve | a server |\n")
    [found] = figures.tables_by_hand(tmp_path)
    assert found.startswith("docs/page.md: a table no benchmark writes: | clip | seconds |")


@pytest.mark.skipif(not in_git(REPO), reason="not a git checkout: commit dates unknown")
def test_stale_figures_are_named():
    for line in figures.stale():
        warnings.warn(f"stale: {line}", stacklevel=1)


def git(root: Path, *args: str, when: int) -> None:
    """A git command at a fixed commit time, so which commit is newer does not depend on the clock's seconds."""
    date = f"@{when} +0000"
    env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date, "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A repository with measured code, a docs page holding a block, and a benchmark's command line."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "measured.py").write_text("SPEED = 1\n")
    (tmp_path / "src" / "other.py").write_text("")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Speed\n\nBefore.\n\n<!-- figures:demo -->\n<!-- /figures:demo -->\n"
                                              "\nAfter.\n")
    git(tmp_path, "init", "-q", when=0)
    git(tmp_path, "add", ".", when=0)
    git(tmp_path, "commit", "-qm", "measured code", when=1_000_000)
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "benchmarks" / "speed.py"), "--quick"])
    return tmp_path


def record(root: Path) -> Path:
    rows = [{"what": "decode", "seconds": 0.5}, {"what": "predict", "seconds": 1.25}, {"what": "serve"}]
    return figures.record("demo", rows, began=figures.begin(), root=root, measures=["src/measured.py"],
                          columns=[("what", "process"), ("seconds", "wall", "{:.2f} s")], notes="2 repeats")


def test_record_render_check(project):
    results = json.loads(record(project).read_text())
    assert results["command"] == "python benchmarks/speed.py --quick" and results["measures"] == ["src/measured.py"]
    assert results["git"]["commit_time"] == 1_000_000 and results["git"]["dirty"] is False
    assert len(results["load"]["before"]) == 3 and results["machine"]["cores"] == os.cpu_count()
    page = (project / "docs" / "page.md").read_text()
    assert "| process | wall |\n|---|---|\n| decode | 0.50 s |\n| predict | 1.25 s |\n| serve | — |\n" in page
    assert "Measured by `python benchmarks/speed.py --quick`" in page and "; 2 repeats." in page
    assert page.startswith("# Speed\n\nBefore.\n\n") and page.endswith("<!-- /figures:demo -->\n\nAfter.\n")
    assert figures.problems(project) == [] and figures.stale(project) == []

    (project / "docs" / "page.md").write_text(page.replace("1.25 s", "1.0 s"))  # a number edited by hand
    assert figures.problems(project) == ["docs/page.md: figure demo: the block differs from its results (edited by "
                                         "hand, or not re-rendered: python benchmarks/figures.py render demo)"]
    assert figures.render(root=project) == ["docs/page.md"] and figures.problems(project) == []
    assert (project / "docs" / "page.md").read_text() == page

    (project / "docs" / "figures" / "demo.json").unlink()
    assert figures.problems(project) == ["docs/page.md: figure demo: no results file docs/figures/demo.json (run the "
                                         'benchmark that calls record("demo", ...))']
    (project / "benchmarks").mkdir()
    (project / "benchmarks" / "speed.py").write_text('figures.record("demo", rows)\n')
    assert figures.problems(project)[0].endswith("(run python benchmarks/speed.py)")


def test_a_newer_commit_of_the_measured_code_makes_the_figure_stale(project):
    record(project)
    (project / "src" / "other.py").write_text("UNMEASURED = 1\n")
    git(project, "commit", "-qam", "code not measured", when=1_000_100)
    assert figures.stale(project) == []
    (project / "src" / "measured.py").write_text("SPEED = 2\n")
    git(project, "commit", "-qam", "faster", when=1_000_200)
    [line] = figures.stale(project)
    assert line.startswith("figure demo: src/measured.py last changed 1970-01-12 13:50 UTC, after the measured "
                           "commit") and line.endswith("of 1970-01-12 13:46 UTC (`python benchmarks/speed.py --quick`)")
    assert figures.problems(project) == []  # stale is reported, not a failure: the block still is its results


def test_a_dirty_tree_counts_as_its_commit(project):
    (project / "src" / "measured.py").write_text("SPEED = 3\n")  # measured before committing
    results = json.loads(record(project).read_text())
    assert results["git"]["dirty"] is True and "with uncommitted changes" in figures.caption(results)
    assert figures.stale(project) == []
    git(project, "commit", "-qam", "the measured change", when=1_000_300)
    assert [line.split(" last changed")[0] for line in figures.stale(project)] == ["figure demo: src/measured.py"]
    assert json.loads(record(project).read_text())["git"]["dirty"] is False  # the figures it wrote are no code


def test_a_measured_path_must_exist(project):
    with pytest.raises(ValueError, match="src/missing.py"):
        figures.record("demo", [], began=figures.begin(), root=project, measures=["src/missing.py"], columns=[])
