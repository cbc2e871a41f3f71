"""The `python` blocks of a Markdown file (the README, the pages under docs/), run as tests: each in a fresh
namespace, in a temporary working folder, and each must print what it shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)


def python_blocks(path: Path) -> list[str]:
    """The code of every ```python fenced block of `path`, in order."""
    return BLOCK.findall(path.read_text(encoding="utf-8"))


def block_cases(paths: list[Path], root: Path) -> list:
    """One pytest param per block, named `<page>-block<k>` (`block<k>` for a single file); an example that trains
    takes minutes, so it runs with the slow tests."""
    cases = []
    for path in paths:
        prefix = "" if len(paths) == 1 else f"{path.relative_to(root).as_posix()}-"
        for index, block in enumerate(python_blocks(path)):
            marks = [pytest.mark.slow] if "viper.train(" in block else []
            cases.append(pytest.param(block, path, marks=marks, id=f"{prefix}block{index + 1}"))
    return cases


def run_block(block: str, path: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """Run one block as a reader would paste it, from an empty folder (outputs go under it)."""
    monkeypatch.chdir(tmp_path)
    exec(compile(block, str(path), "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.strip(), f"a block of {path.name} printed nothing"  # every example prints
