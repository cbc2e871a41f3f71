"""Apple silicon's GPU (`--device mps`): the CUDA checks again on MPS, and the refusals where there is none.

The tests marked `mps` run where torch sees a Metal GPU (`python -m pytest -m mps` on a Mac) and skip elsewhere; each
compares the GPU with the CPU on the same inputs. The refusals run everywhere.
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch
from synthetic import make_synthetic_store
from typer.testing import CliRunner

from viper.cli import app
from viper.errors import SettingError
from viper.model import Perceiver, model_config
from viper.settings import check_device, resolve_precision

HAS_MPS = torch.backends.mps.is_available()
needs_mps = pytest.mark.skipif(not HAS_MPS, reason="needs Apple silicon (torch sees no MPS device)")
EMOTIONS = ("joy", "anger", "sadness")


@pytest.mark.skipif(HAS_MPS, reason="this machine has an MPS device")
def test_mps_is_refused_with_the_reason_where_there_is_none(tmp_path):
    with pytest.raises(SettingError, match="mps needs Apple silicon"):
        check_device("mps")
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "clip.mp4"), "--device", "mps"])
    assert result.exit_code != 0 and "mps needs Apple silicon" in result.output and "Traceback" not in result.output


def test_mps_trains_in_fp32_and_refuses_mixed_precision():
    assert check_device("mps", here=False) == "mps"  # a name viper takes
    assert resolve_precision("auto", torch.device("mps")) == torch.float32
    with pytest.raises(SettingError, match="bf16 is not supported on mps"):
        resolve_precision("bf16", torch.device("mps"))


@pytest.mark.mps
@needs_mps
@pytest.mark.parametrize("preset", ["compact", "paper"])
def test_forward_and_gradients_on_mps_match_cpu(preset):
    torch.manual_seed(0)
    config = model_config(preset, {"attn_dropout": 0.0, "ff_dropout": 0.0})
    reference = Perceiver(token_dims=[1000, 1080], num_outputs=len(EMOTIONS), config=config).double()
    model = Perceiver(token_dims=[1000, 1080], num_outputs=len(EMOTIONS), config=config).to("mps")
    model.load_state_dict(reference.state_dict())
    tokens = torch.randn(6, 32, 2080)
    mask = torch.rand(6, 32) > 0.3
    mask[:, 0], mask[-1] = True, False  # a clip with no valid frame stays finite
    expected = reference(tokens.double(), mask)
    out = model(tokens.to("mps"), mask.to("mps"))
    error = float((out.double().cpu() - expected).norm() / expected.norm())
    assert torch.isfinite(out).all() and error < 1e-4
    out.square().mean().backward()
    assert all(param.grad is not None and torch.isfinite(param.grad).all() for param in model.parameters())


@pytest.mark.mps
@needs_mps
def test_train_on_mps_resumes_and_its_checkpoint_runs_on_cpu(tmp_path):
    from viper.jobs.evaluate import evaluate
    from viper.jobs.train import TrainConfig, train

    store = make_synthetic_store(tmp_path / "store", {"a": ("face_image", 24), "b": ("audio", 12)}, EMOTIONS,
                                 n_clips=48, n_frames=8)
    config = TrainConfig(epochs=2, lr=1e-3, batch_size=8, device="mps")
    assert train(store.root, tmp_path / "run", config).epochs_done == 2
    resumed = train(store.root, tmp_path / "run", dataclasses.replace(config, epochs=4))
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert np.isfinite(evaluate(tmp_path / "run", store.root, "test", plots=False)["mean_pearson"])


@pytest.mark.mps
@needs_mps
def test_extract_and_predict_on_mps_match_cpu(tmp_path):
    from viper.jobs.demo import demo_clips
    from viper.jobs.extract import extract
    from viper.jobs.predict import predict
    from viper.store import FeatureStore

    clips = tmp_path / "clips"
    clips.mkdir()
    for path in sorted(demo_clips().glob("*.mp4"))[:3]:
        shutil.copy(path, clips / path.name)
    stores = {}
    for device in ("cpu", "mps"):
        assert extract(clips, tmp_path / device, frames=8, device=device).done == 3
        stores[device] = FeatureStore.open(tmp_path / device)
    for key in stores["cpu"].extractor_keys():
        (cpu, cpu_mask), (gpu, gpu_mask) = (store.load(key, sorted(store.video_ids(key))) for store in stores.values())
        assert np.array_equal(cpu_mask, gpu_mask), key
        assert np.allclose(cpu[cpu_mask], gpu[gpu_mask], atol=1e-3), key
    (cpu_record,), _ = predict(clips / sorted(p.name for p in clips.iterdir())[0])
    (gpu_record,), _ = predict(clips / sorted(p.name for p in clips.iterdir())[0], device="mps")
    assert all(abs(cpu_record["scores"][k] - gpu_record["scores"][k]) < 1e-4 for k in cpu_record["scores"])

