"""The README's Python examples run as written, from a fresh clone (bundled clips only); what it says about
installing fits pyproject; it stays a front door (short, every command listed, every link alive)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markdown_blocks import block_cases, python_blocks, run_block

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
INSTALL = REPO / "docs" / "install.md"  # the long version of the README's install notes
CASES = block_cases([README], REPO)


def test_the_readme_has_python_examples():
    assert len(python_blocks(README)) >= 2


def test_the_install_commands_fit_the_package_requirements():
    """The torch build the README's first commands and CI pin is one pyproject's floor accepts; other Pythons are
    told where PyTorch's CPU-only build is; the Pythons named are those requires-python allows (in the README and
    in docs/install.md, which holds the rest of the install notes)."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    torch = next(Requirement(text) for text in project["optional-dependencies"]["train"] if text.startswith("torch"))
    pages = [README.read_text(encoding="utf-8"), INSTALL.read_text(encoding="utf-8")]
    pins = set(re.findall(r"pip install (?:-q )?torch==([\w.+]+)", "".join(pages) + (REPO / ".ci" / "run").read_text()))
    assert pins and all(torch.specifier.contains(pin) for pin in pins), (pins, torch)
    for text in pages:
        assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in text
        assert f"**Python {project['requires-python'].removeprefix('>=')}–3.13.**" in text


def test_the_readme_is_a_front_door():
    """A few screens (the issue's bound: 250 lines); the rest lives in docs/."""
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 250


def test_the_readme_lists_every_command():
    """Each command `viper --help` lists has its line in the README's Commands block."""
    import typer

    from viper.cli import app

    commands = set(typer.main.get_command(app).commands)
    block = README.read_text(encoding="utf-8").split("## Commands", 1)[1].split("```", 2)[1]
    listed = set(re.findall(r"^viper ([a-z-]+)", block, flags=re.M))
    assert commands and commands <= listed, sorted(commands - listed)


def test_the_readme_links_resolve():
    """Every relative link and image of the README names a file of the repository (its pages under docs/, the
    example manifest, the picture), and every anchor one of that page's headings."""
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [target for target in targets if not re.match(r"[a-z]+:", target)]
    assert local
    for target in local:
        path, _, anchor = target.partition("#")
        assert (REPO / path).is_file(), target
        if anchor:
            headings = re.findall(r"^#+ (.+)$", (REPO / path).read_text(encoding="utf-8"), flags=re.M)
            slugs = {re.sub(r"[^\w\- ]", "", heading.lower()).strip().replace(" ", "-") for heading in headings}
            assert anchor in slugs, target


@pytest.mark.parametrize(("block", "path"), CASES)
def test_readme_python_block_runs(block, path, tmp_path, monkeypatch, capsys):
    run_block(block, path, tmp_path, monkeypatch, capsys)
