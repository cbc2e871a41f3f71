"""The README's Python examples run as written, from a fresh clone (bundled clips only)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
# an example that extracts and trains takes minutes: it runs with the slow tests
CASES = [pytest.param(block, marks=[pytest.mark.slow] if "viper.train(" in block else [], id=f"block{i + 1}")
         for i, block in enumerate(BLOCKS)]


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 2


def test_the_install_commands_fit_the_package_requirements():
    """The torch build the README's first commands and CI pin is one pyproject's floor accepts; other Pythons are
    told where PyTorch's CPU-only build is; the Pythons named are those requires-python allows."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]
    torch = next(Requirement(text) for text in project["dependencies"] if text.startswith("torch"))
    text = README.read_text(encoding="utf-8")
    pins = set(re.findall(r"pip install (?:-q )?torch==([\w.+]+)", text + (README.parent / ".ci" / "run").read_text()))
    assert pins and all(torch.specifier.contains(pin) for pin in pins), (pins, torch)
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in text
    assert f"**Python {project['requires-python'].removeprefix('>=')}–3.13.**" in text


@pytest.mark.parametrize("block", CASES)
def test_readme_python_block_runs(block, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.strip()  # every example prints what it shows
