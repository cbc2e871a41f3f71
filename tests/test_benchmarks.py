"""The benchmarks run on any clone: without ../shared they take the RAVDESS takes bundled with viper, or end with one
line naming the file they need and why (exit code 2), never a traceback. No benchmark is run here: their
data-finding functions are called with ../shared made absent."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import shared_data  # noqa: E402  (benchmarks/shared_data.py)


@pytest.fixture
def no_shared(monkeypatch, tmp_path):
    """../shared as on a clone: absent."""
    monkeypatch.setattr(shared_data, "SHARED", tmp_path / "shared")
    monkeypatch.setattr(sys, "argv", ["some_benchmark.py"])


def test_the_takes_are_the_bundled_ones_without_shared(no_shared):
    from viper.jobs.demo import demo_clips

    assert shared_data.ravdess_takes() == demo_clips()
    assert len(list(demo_clips().glob("*.mp4"))) == 60


def test_a_missing_file_is_one_line_and_exit_code_2(no_shared, capsys):
    with pytest.raises(SystemExit) as stopped:
        shared_data.needs("data/faces-cc-by", "the photos of many people")
    assert stopped.value.code == 2
    line = "some_benchmark.py: needs ../shared/data/faces-cc-by, absent here: the photos of many people\n"
    assert capsys.readouterr().err == line


def test_real_labels_runs_on_the_bundled_takes(no_shared, capsys):
    import real_labels

    from viper.jobs.demo import demo_clips

    assert real_labels.takes_folder(include_full=False) == demo_clips()
    with pytest.raises(SystemExit) as stopped:  # the 14 full-frame takes are not bundled
        real_labels.takes_folder(include_full=True)
    assert stopped.value.code == 2 and "needs ../shared/data/ravdess-actor05/full" in capsys.readouterr().err


def test_real_labels_records_a_figure_only_for_its_default_settings():
    """A variant run (another lr, fewer seeds, ...) must not overwrite the docs' figure; --quick and --fau name their
    own."""
    import argparse

    import real_labels

    default = dict(epochs=None, lr=None, overrides={}, modality_dropout=0.0, no_standardise=False,
                   include_full=False, seeds=5, quick=False, fau=None)

    def name(**changes):
        return real_labels.recorded_name(argparse.Namespace(**default | changes), "person-norm")

    assert name() == "person-norm" and name(quick=True, seeds=2) == "person-norm-quick"
    assert name(fau="mesh") == "person-norm-fau-mesh"
    assert name(lr=3e-4) is None and name(seeds=3) is None and name(overrides={"ff_dropout": 0.3}) is None


def test_the_fuzzed_video_is_a_bundled_take_without_shared(no_shared):
    import fuzz_video

    assert fuzz_video.default_clip().is_file()


def test_extract_names_the_reference_clip_it_cannot_make(no_shared, monkeypatch, tmp_path, capsys):
    import extract

    monkeypatch.setattr(extract, "OUT", tmp_path / "out")  # no reference clip made before
    with pytest.raises(SystemExit) as stopped:
        extract.make_12s_clip()
    assert stopped.value.code == 2 and "WolfgangLanger_Pexels.mp4, absent here" in capsys.readouterr().err


def test_every_benchmark_finds_shared_through_one_module():
    """A path into ../shared built by hand would skip the one-line rule (and the bundled takes)."""
    by_hand = re.compile(r"""(parent|parents\[\d\])\s*/\s*["']shared""")
    scripts = [path for path in BENCHMARKS.glob("*.py") if path.name != "shared_data.py"]
    assert len(scripts) > 20 and [path.name for path in scripts if by_hand.search(path.read_text())] == []
