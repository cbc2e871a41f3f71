"""The layout docs/architecture.md describes, held by the code: jobs above the engine, nothing
importing upward, no import cycle, one registry class, files of a few hundred lines, and a command importing only
the libraries it uses."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def entry_point(module: str) -> bool:
    """The package, `python -m viper` and the CLI package (viper.cli and its modules): they may import any job."""
    return module in ("viper", "viper.__main__", "viper.cli") or module.startswith("viper.cli.")


def imports(path: Path) -> set[str]:
    """Every viper module this file imports, at module level or inside functions (lazy imports count too)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{alias.name}" for alias in node.names]
            found |= {target} | set(names)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name == "viper" or name.startswith("viper.")}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in SRC.rglob("*.py")}
    return {name: {target for target in imports(path) if target in modules and target != name}
            for name, path in modules.items()}


def test_nothing_below_the_jobs_imports_a_job(graph):
    upward = {module: sorted(t for t in targets if t.startswith("viper.jobs"))
              for module, targets in graph.items() if not entry_point(module) and not module.startswith("viper.jobs")}
    assert {module: targets for module, targets in upward.items() if targets} == {}


def test_no_import_cycle(graph):
    """Over every module, the CLI and the entry points included; a package and its own modules count too (a
    package's __init__ importing a module that imports the package back is a cycle that only import order hides)."""
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, [*stack, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_files_stay_short():
    lengths = {str(path.relative_to(SRC)): len(path.read_text().splitlines()) for path in SRC.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 400} == {}


def test_every_pluggable_part_uses_the_one_registry():
    from viper.datasets import DATASET_LAYOUTS
    from viper.extractors.base import EXTRACTORS
    from viper.faces import FACE_DETECTORS
    from viper.jobs.ablate.baselines import BASELINES
    from viper.registry import Registry

    for registry in (EXTRACTORS, FACE_DETECTORS, DATASET_LAYOUTS, BASELINES):
        assert isinstance(registry, Registry) and registry.names()
        first = registry.names()[0]
        with pytest.raises(ValueError, match="registered twice"):
            registry.register(first, registry.get(first))
    assert {"ravdess", "hume-reaction"} <= set(DATASET_LAYOUTS.names()) and "blazeface" in FACE_DETECTORS


UNUSED_BY_PREDICT = {"matplotlib", "pandas", "sklearn", "scipy", "transformers", "mediapipe", "cv2", "librosa",
                     "tensorboard"}


def run_viper(*argv: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """A whole `python -m viper ARGV` process and the top-level packages it had imported when it exited."""
    code = ("import atexit, runpy, sys; atexit.register(lambda: print('imported:', *{m.split('.')[0] for m in "
            "sys.modules})); sys.argv = ['viper', *sys.argv[1:]]; runpy.run_module('viper', run_name='__main__')")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=300)
    last = done.stdout.splitlines()[-1]
    assert last.startswith("imported:"), done.stdout + done.stderr
    return done, set(last.split()[1:])


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--help"], ["--version"]])
def test_the_cli_imports_no_library_for_help(argv):
    done, imported = run_viper(*argv)
    assert done.returncode == 0 and (argv != ["--version"] or done.stdout.startswith("viper 0."))
    assert imported & (UNUSED_BY_PREDICT | {"torch", "numpy", "av", "PIL"}) == set()


@pytest.mark.parametrize("command", ["predict", "inspect"])
def test_help_names_what_the_paths_may_be(command):
    usage = run_viper(command, "--help")[0].stdout.splitlines()[0]
    assert usage == f"Usage: viper {command} [OPTIONS] {{VIDEO|IMAGE|FOLDER}}..."  # not the parameter's name


def test_predict_refuses_a_wrong_checkpoint_before_importing_torch(tmp_path):
    done, imported = run_viper("predict", str(tmp_path / "clip.mp4"), "--checkpoint", str(tmp_path / "no-run"))
    assert done.returncode == 2 and "no checkpoint" in done.stderr
    assert "torch" not in imported


def test_predict_refuses_missing_videos_before_loading_models(tiny_demo_run, tmp_path):
    done, imported = run_viper("predict", str(tmp_path / "gone.mp4"), "-c", str(tiny_demo_run / "run"))
    assert done.returncode == 1 and "gone.mp4: file does not exist" in done.stderr
    assert "torch" not in imported  # no model was loaded for nothing


@pytest.mark.parametrize("model", ["checkpoint", "general"])
def test_predict_imports_only_the_libraries_it_uses(tiny_demo_run, model):
    """Not even torch, on the CPU: ONNX Runtime runs the networks and the run's best.onnx (or the general model's
    numpy pooling), and nothing imports torch to look for a GPU."""
    from viper.jobs.demo import demo_clips

    checkpoint = ["-c", str(tiny_demo_run / "run")] if model == "checkpoint" else []
    done, imported = run_viper("predict", str(demo_clips() / "01-01-03-02-02-01-05.mp4"), *checkpoint)
    assert done.returncode == 0 and '"scores"' in done.stdout, done.stderr
    assert imported & (UNUSED_BY_PREDICT | {"torch"}) == set()


def test_the_test_summary_names_failures_errors_and_skips(tmp_path):
    """pyproject's addopts (`-rfEs`): pytest's short summary lists every failure and error as well as every skip
    with its reason (`-rs` alone replaced pytest's default and left the failures out of it)."""
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n\n\n@pytest.fixture\ndef broken():\n    raise RuntimeError\n\n\n"
        "def test_fails():\n    assert False\n\n\ndef test_errors(broken):\n    pass\n\n\n"
        "def test_skips():\n    pytest.skip('no reason')\n"
    )
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
                           str(SRC.parent / "pyproject.toml"), "--rootdir", ".", "test_sample.py"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    summary = done.stdout.split("short test summary info")[-1]
    for line in ("FAILED test_sample.py::test_fails", "ERROR test_sample.py::test_errors", "SKIPPED [1]"):
        assert line in summary, done.stdout
