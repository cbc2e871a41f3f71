"""Options that are zero, negative, not a number, unknown or absurd: one `error: --option ...` naming what it
accepts (exit 2, nothing written), or, where the machine sets the limit, a warning and the most it holds."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from media import make_clip
from synthetic import make_synthetic_store
from typer.testing import CliRunner

from viper.cli import app
from viper.settings import MAX_BATCH_VIDEOS, extraction_settings, usable_cpus

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


def viper(*args: object):
    """`viper ARGS` in this process; an exception the CLI does not turn into a message fails the test."""
    return CliRunner().invoke(app, [str(arg) for arg in args], catch_exceptions=False)


def assert_refused(result, *parts: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stderr.startswith("error: "), result.stderr
    for part in parts:
        assert part in result.stderr, (part, result.stderr)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("settings") / "store"
    make_synthetic_store(root, {"audio-test-bbbb": ("audio", 4)}, ("joy", "fear"), n_clips=12, n_frames=4)
    return root


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "a.mp4", frames=6, audio_seconds=0.6)


TRAIN_OPTIONS = {  # case -> (arguments, what the message must say)
    "batch size 0": (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    "negative lr": (["--lr", "-1"], "--lr must be a number above 0, got -1"),
    "lr nan": (["--lr", "nan"], "--lr must be a number above 0, got nan"),
    "lr step 0": (["--lr-step-epochs", "0"], "--lr-step-epochs must be at least 1, got 0"),
    "epochs 0": (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    "device gpu": (["--device", "gpu"], "--device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    "precision": (["--precision", "fp8"], "--precision must be auto, fp32, bf16 or fp16, got 'fp8'"),
    "modality dropout": (["--modality-dropout", "1.5"], "--modality-dropout must be a number between 0 and 1"),
    "anchor shrink": (["--anchor-shrink", "-1"], "--anchor-shrink must be a number at least 0, got -1"),
}


@pytest.mark.parametrize("case", TRAIN_OPTIONS)
def test_bad_train_option_is_refused_by_name(store, tmp_path, case):
    """Each bad `viper train` option: `error: --option must be ...` with the accepted values, exit 2, no run."""
    arguments, expected = TRAIN_OPTIONS[case]
    assert_refused(viper("train", "--features", store, "--out", tmp_path / "run", *arguments), expected)
    assert not (tmp_path / "run").exists()


@NO_GPU
@pytest.mark.parametrize("command", ["train", "extract", "predict"])
def test_cuda_without_a_gpu_is_refused(store, clip, tmp_path, command):
    """`--device cuda` on a machine without a GPU: `--device cuda needs a CUDA GPU, and torch sees none`, exit 2,
    for train, extract and predict alike (not torch's AssertionError)."""
    arguments = {"train": ["--features", store, "--out", tmp_path / "run"],
                 "extract": [clip, "--out", tmp_path / "s", "-n", "4", "-e", "audio"],
                 "predict": [clip]}[command]
    assert_refused(viper(command, *arguments, "--device", "cuda"), "--device cuda needs a CUDA GPU", "use cpu")


CONFIG_FILES = {  # case -> (file name, content or None for a missing file, what the message must say)
    "missing": ("nowhere.json", None, "cannot read the config file (No such file or directory)"),
    "invalid JSON": ("train.json", '{"epochs": 3,', "not valid JSON"),
    "invalid YAML": ("train.yaml", "epochs: [3\n", "not valid YAML"),
    "not a mapping": ("train.json", "[1, 2]", "expected a mapping of settings (name: value), got a list"),
    "unknown setting": ("train.json", '{"epoch": 3}', "unknown TrainConfig option(s): epoch"),
    "bad value": ("train.yaml", "lr: -0.1\n", "lr must be a number above 0, got -0.1"),
}


@pytest.mark.parametrize("case", CONFIG_FILES)
def test_bad_config_file_names_the_file(store, tmp_path, case):
    """`--config` missing, not JSON/YAML, not a mapping, with an unknown setting or a bad value: `error: FILE: ...`
    (exit 2), for `viper train` and `viper ablate` alike."""
    name, content, expected = CONFIG_FILES[case]
    config = tmp_path / name
    if content is not None:
        config.write_text(content)
    assert_refused(viper("train", "--features", store, "--out", tmp_path / "run", "--config", config),
                   f"{config}: ", expected)
    assert_refused(viper("ablate", "--features", store, "--out", tmp_path / "sweep", "--config", config),
                   f"{config}: ", expected)


def test_flag_over_a_bad_config_value_is_named_as_the_flag(store, tmp_path):
    """A bad value given as a flag on top of a config file is the flag's fault: `--epochs must be ...`."""
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"lr": 1e-3}))
    assert_refused(viper("train", "--features", store, "--out", tmp_path / "run", "--config", config,
                         "--epochs", "-2"), "error: --epochs must be at least 1, got -2")


EXTRACT_OPTIONS = {
    "frames 0": (["-n", "0"], "--frames must be between 1 and 1024, got 0"),
    "frames 100000": (["-n", "100000"], "--frames must be between 1 and 1024, got 100000"),
    "batch videos 0": (["--batch-videos", "0"], f"--batch-videos must be between 1 and {MAX_BATCH_VIDEOS}, got 0"),
    "batch videos 100000": (["--batch-videos", "100000"], "--batch-videos must be between 1 and 256, got 100000"),
    "workers 0": (["--workers", "0"], "--workers must be at least 1, got 0"),
    "workers -3": (["--workers", "-3"], "--workers must be at least 1, got -3"),
    "device gpu": (["--device", "gpu"], "--device must be cpu, cuda, cuda:N or mps, got 'gpu'"),
    "config missing": (["--config", "nowhere.yaml"], "nowhere.yaml: cannot read the config file"),
}


@pytest.mark.parametrize("case", EXTRACT_OPTIONS)
def test_bad_extract_option_is_refused_by_name(clip, tmp_path, case):
    """Each bad `viper extract` option: `error: --option must be ...`, exit 2, before any model loads and with
    nothing written."""
    arguments, expected = EXTRACT_OPTIONS[case]
    out = tmp_path / "store"
    assert_refused(viper("extract", clip, "--out", out, "-e", "audio", *arguments), expected)
    assert not out.exists()


def test_extract_config_options_must_be_settings_per_extractor(clip, tmp_path):
    """`viper extract --config` whose `options` are not a mapping of extractor -> settings: one message naming
    the file (exit 2)."""
    config = tmp_path / "extract.json"
    config.write_text('{"options": {"audio": 3}}')
    assert_refused(viper("extract", clip, "--out", tmp_path / "store", "-e", "audio", "--config", config),
                   f"{config}: `options` must map each extractor (modality:backend) to its settings")


def test_an_extractor_option_of_the_wrong_kind_is_named_with_its_extractor(clip, tmp_path):
    """`crops: 1.2` where a mapping of expert -> [scale, shift] belongs: one message naming the extractor, the
    option and what it takes (it was a TypeError inside the run), before the store is made."""
    config = tmp_path / "extract.json"
    config.write_text('{"options": {"expression:general": {"crops": 1.2}}}')
    out = tmp_path / "store"
    assert_refused(viper("extract", clip, "--out", out, "-e", "expression", "--config", config),
                   "expression:general: option crops must be a mapping of text to a list of a number, got 1.2")
    assert not out.exists()


def test_too_many_workers_are_capped_with_a_warning(clip, tmp_path, caplog):
    """`--workers 999` (which started one process per clip: 5 GB in 23 s): capped to this machine's CPUs and
    memory, with a warning naming the option and the number used; the run succeeds."""
    with caplog.at_level(logging.WARNING):
        result = viper("extract", clip, "--out", tmp_path / "store", "-n", "4", "-e", "audio", "--workers", "999")
    assert result.exit_code == 0, result.output
    warning = " ".join(record.getMessage() for record in caplog.records)
    assert "--workers 999 is more than this machine can run at once" in warning
    assert f"{usable_cpus()} CPU(s)" in warning and "GB free" in warning


def test_batches_larger_than_memory_are_capped_with_a_warning(caplog):
    """256 clips of 1024 frames at once (~700 GB of decoded frames): the batch is cut to what the free memory
    holds, with a warning saying the estimate; settings that fit are left alone."""
    with caplog.at_level(logging.WARNING):
        batch, workers = extraction_settings(1024, 256, 4, "cpu")
    assert 1 <= batch < 256 and 1 <= workers <= usable_cpus()
    assert "--batch-videos 256: the decoded frames of 256 clips x 1024 frames" in caplog.text
    assert extraction_settings(32, None, 1, "cpu") == (1, 1)


def test_bad_predict_device_is_refused(clip):
    """`viper predict --device gpu`: refused by name before any model loads."""
    assert_refused(viper("predict", clip, "--device", "gpu"), "--device must be cpu, cuda, cuda:N or mps, got 'gpu'")


ABLATE_OPTIONS = {
    "seeds 0": (["--seeds", "0"], "--seeds must be at least 1, got 0"),
    "workers 0": (["--workers", "0"], "--workers must be at least 1, got 0"),
    "resamples 0": (["--resamples", "0"], "--resamples must be between 1 and 100000, got 0"),
    "resamples 10^9": (["--resamples", "1000000000"], "--resamples must be between 1 and 100000"),
    "gru epochs 0": (["--gru-epochs", "0"], "--gru-epochs must be at least 1, got 0"),
    "epochs 0": (["--epochs", "0"], "--epochs must be at least 1, got 0"),
}


@pytest.mark.parametrize("case", ABLATE_OPTIONS)
def test_bad_ablate_option_is_refused_by_name(store, tmp_path, case):
    """Each bad `viper ablate` option: `error: --option must be ...`, exit 2, no sweep folder."""
    arguments, expected = ABLATE_OPTIONS[case]
    assert_refused(viper("ablate", "--features", store, "--out", tmp_path / "sweep", *arguments), expected)
    assert not (tmp_path / "sweep").exists()


def test_too_many_ablate_workers_are_capped_with_a_warning(tmp_path, caplog):
    """`viper ablate --workers 999`: capped to what the machine runs at once, with a warning (here the sweep
    then stops at its missing store, before training anything)."""
    with caplog.at_level(logging.WARNING):
        result = viper("ablate", "--features", tmp_path / "nowhere", "--out", tmp_path / "sweep", "--workers", "999")
    assert_refused(result, "not a viper feature store")
    assert "--workers 999 is more than this machine can run at once" in caplog.text


IMPORT_OPTIONS = {
    "frames 0": (["--frames", "0"], "--frames must be between 1 and 1024, got 0"),
    "tolerance -1": (["--tolerance", "-1"], "--tolerance must be a number above 0, got -1"),
    "tolerance nan": (["--tolerance", "nan"], "--tolerance must be a number above 0, got nan"),
    "time unit": (["--time-unit", "min"], "--time-unit must be auto, s or ms, got 'min'"),
}


@pytest.mark.parametrize("case", IMPORT_OPTIONS)
def test_bad_import_features_option_is_refused_by_name(tmp_path, case):
    """Each bad `viper import-features` option: `error: --option must be ...`, exit 2, before reading the data."""
    arguments, expected = IMPORT_OPTIONS[case]
    assert_refused(viper("import-features", tmp_path, "--out", tmp_path / "store", *arguments), expected)


def test_bad_model_setting_in_a_config_file_is_one_message(store, tmp_path):
    """`model_overrides: {num_latents: 0}` in a `--config` file: `error: model setting num_latents must be at least
    1, got 0` (exit 2), not a torch error from building the model."""
    config = tmp_path / "train.yaml"
    config.write_text("model_overrides:\n  num_latents: 0\n")
    assert_refused(viper("train", "--features", store, "--out", tmp_path / "run", "--config", config),
                   "model setting num_latents must be at least 1, got 0")
