"""The prediction-only install: a fresh venv, `pip install` of this checkout without extras; its time and size.

Makes a venv with the given Python (default: the newest /root/.pyenv/versions/3.13*/bin/python3.13, else
`python3.13` on PATH) in a temporary folder, installs this checkout into it (no extras: what `viper predict` needs,
no torch), and measures the seconds pip took, the venv's size on disk, the number of installed distributions,
whether torch came with them, and the largest packages (each by the files its RECORD lists). Recorded as the
figures `install-size` (the totals) and `install-size-parts` (the 8 largest packages), docs/figures/*.json, shown in
docs/install.md.

    python benchmarks/install_size.py [--python /path/to/python3.13] [--top 8]

pip uses its usual configuration (index, find-links, cache), so the seconds say more about the network and the
cache than about viper; the sizes do not depend on them.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import figures

REPO = Path(__file__).resolve().parents[1]
MEASURES = ["pyproject.toml", "src/viper/assets"]  # the dependencies, and the bulk of viper's own size


def default_python() -> str:
    """The newest pyenv 3.13, else python3.13 on PATH."""
    found = sorted(glob.glob("/root/.pyenv/versions/3.13*/bin/python3.13"),
                   key=lambda path: [int(part) if part.isdigit() else 0
                                     for part in Path(path).parents[1].name.split(".")])
    if found:
        return found[-1]
    on_path = shutil.which("python3.13")
    if on_path is None:
        raise SystemExit("error: no Python 3.13 found: pass --python")
    return on_path


def size(path: Path) -> int:
    """Bytes on disk under `path` (files and their apparent sizes; links not followed)."""
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum((Path(root) / name).lstat().st_size for root, _, names in os.walk(path) for name in names)


def site_packages(venv: Path) -> Path:
    return next(venv.glob("lib/python*/site-packages"))


def distributions(site: Path) -> dict[str, int]:
    """Bytes on disk per installed distribution, from the files its RECORD lists (a package's bundled libraries,
    such as PyAV's av.libs, count as its own)."""
    sizes = {}
    for record in site.glob("*.dist-info/RECORD"):
        name = (record.parent / "METADATA").read_text(encoding="utf-8").split("\nName: ", 1)[1].split("\n", 1)[0]
        files = {(site / line.split(",")[0]).resolve() for line in record.read_text(encoding="utf-8").splitlines()
                 if line}
        sizes[name] = sum(path.stat().st_size for path in files if path.is_file())
    return sizes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=None, help="the interpreter for the venv (default: the newest 3.13)")
    parser.add_argument("--top", type=int, default=8, help="how many of the largest site-packages folders")
    args = parser.parse_args(argv)
    python = args.python or default_python()
    version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="viper-install-") as folder:
        venv = Path(folder) / "venv"
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip"]
        began = figures.begin()
        started = time.perf_counter()
        subprocess.run([*pip, "install", "--quiet", str(REPO)], check=True)
        seconds = time.perf_counter() - started
        listed = subprocess.run([*pip, "list", "--format=freeze"], capture_output=True, text=True, check=True)
        packages = [line.split("==")[0].lower() for line in listed.stdout.splitlines() if "==" in line]
        total, parts = size(venv), distributions(site_packages(venv))
    installed = [name for name in packages if name not in {"pip", "setuptools", "wheel"}]  # besides the venv's own
    torch = "torch" in packages
    print(f"Python {version}: {seconds:.0f} s, {len(installed)} packages, {total / 1e6:.0f} MB, torch: {torch}")
    figures.record("install-size", [{"python": version, "seconds": seconds, "packages": len(installed),
                                     "MB": total / 1e6, "torch": "yes" if torch else "no"}],
                   began=began, measures=MEASURES,
                   columns=[("python", "Python"), ("seconds", "pip install", "{:.0f} s"),
                            ("packages", "packages"), ("MB", "venv on disk", "{:.0f} MB"), ("torch", "torch")],
                   notes="a fresh venv, `pip install` of the checkout without extras; packages besides pip")
    largest = sorted(parts.items(), key=lambda item: -item[1])[:args.top]
    rows = [{"package": name, "MB": bytes_ / 1e6} for name, bytes_ in largest]
    for row in rows:
        print(f"  {row['package']}: {row['MB']:.0f} MB")
    figures.record("install-size-parts", rows, began=began, measures=MEASURES,
                   columns=[("package", "package"), ("MB", "on disk", "{:.0f} MB")],
                   notes=f"the {args.top} largest of that install, by the files each package's RECORD lists")


if __name__ == "__main__":
    main(sys.argv[1:])
