"""The command wrapper every command shares (viper.cli.common.friendly): a missing PyTorch or Transformers is one
line that says what to install, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
INSTALL = 'which this install lacks: pip install "viper-emotion[train]"'

WITHOUT_TORCH = """
import sys


class NoTorch:
    \"\"\"torch and every module under it are missing, as on an install without them.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, NoTorch())
sys.argv = ["viper", *sys.argv[1:]]
from viper.cli import app

app(prog_name="viper")
"""


def viper_without_torch(*argv: str) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if name != "VIPER_DEBUG"} | {"PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *argv], capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_command_without_torch_says_so_in_one_line(tmp_path):
    done = viper_without_torch("train", "-f", str(tmp_path / "store"), "-o", str(tmp_path / "run"))
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == f"error: viper train needs PyTorch (torch), {INSTALL}"
    assert "Traceback" not in done.stderr and done.stdout == ""
    debug = viper_without_torch("--debug", "train", "-f", str(tmp_path / "store"), "-o", str(tmp_path / "run"))
    assert debug.returncode == 1 and "ModuleNotFoundError: No module named 'torch'" in debug.stderr  # --debug: whole


@pytest.mark.parametrize(("module", "line"), [
    ("torch.nn", f"viper predict needs PyTorch (torch.nn), {INSTALL}"),
    ("transformers.models.clip",
     f"viper predict needs Hugging Face Transformers (transformers.models.clip), {INSTALL}"),
    ("ray", None),  # any other missing module is not the [train] extra's: its traceback stays
    ("torchaudio", None),
])
def test_the_missing_module_is_named_as_python_reports_it(module, line):
    from viper.cli.common import missing_library

    assert missing_library("predict", ModuleNotFoundError(f"No module named {module!r}", name=module)) == line
