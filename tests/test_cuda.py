"""The CUDA paths: fusion model in fp32 / bf16 / fp16, training with resume, extraction in half precision.

Marked `cuda`: they run where torch sees a GPU (`python -m pytest -m cuda`, part of benchmarks/gpu_check.sh)
and skip elsewhere. Each compares the GPU against the CPU on the same inputs, so a wrong dtype, a lost mask or
a kernel that cannot take a shape fails here rather than on a user's cluster.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import make_synthetic_store

from viper.model import Perceiver, model_config

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)"),
]

EMOTIONS = ("joy", "anger", "sadness")
# input_dim None: attention reads the 2080-wide tokens as they are, as the paper preset does (absorbed
# cross-attention, 2081-wide heads in SDPA), at a size that keeps the float64 reference quick
PAPER_SHAPED = {"input_dim": None, "num_latents": 16, "latent_dim": 64, "cross_heads": 8, "self_layers": 2,
                "latent_heads": 4, "widening_factor": 1, "attn_dropout": 0.0, "ff_dropout": 0.0}


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.double().cpu() - ref.double().cpu()).norm() / ref.double().cpu().norm())


def inputs(batch: int = 6, frames: int = 32, width: int = 2080) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))  # fresh inputs every run
    tokens = torch.randn(batch, frames, width, generator=generator)
    mask = torch.rand(batch, frames, generator=generator) > 0.3
    mask[:, 0] = True
    mask[-1] = False  # a clip with no valid frame must stay finite
    return tokens, mask


@pytest.fixture(autouse=True)
def no_tf32():
    """fp32 on the GPU means fp32: TF32 matmuls would blur the comparison with the CPU."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("overrides", [{}, PAPER_SHAPED], ids=["compact", "paper-shaped"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=["fp32", "bf16", "fp16"])
def test_forward_and_gradients_match_cpu_float64(overrides, dtype):
    torch.manual_seed(0)
    config = model_config("compact", {"attn_dropout": 0.0, "ff_dropout": 0.0, **overrides})
    reference = Perceiver(token_dims=[1000, 1080], num_outputs=len(EMOTIONS), config=config).double()
    model = Perceiver(token_dims=[1000, 1080], num_outputs=len(EMOTIONS), config=config).cuda()
    model.load_state_dict(reference.state_dict())
    tokens, mask = inputs()
    model.train(), reference.train()  # the training path: absorbed cross-attention where it is cheaper

    expected = reference(tokens.double(), mask)
    expected.square().mean().backward()
    with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        out = model(tokens.cuda(), mask.cuda())
    out.float().square().mean().backward()

    tolerance = 1e-4 if dtype == torch.float32 else 3e-2
    assert torch.isfinite(out).all()
    assert relative_error(out, expected) < tolerance
    for (name, param), ref_param in zip(model.named_parameters(), reference.parameters(), strict=True):
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        if ref_param.grad.norm() > 1e-8:
            assert relative_error(param.grad, ref_param.grad) < 5 * tolerance, name


def test_paper_preset_trains_a_step_in_bf16_and_fp16():
    """The paper preset at full size: one optimiser step under each mixed precision changes the weights."""
    from viper.jobs.train import make_optimiser

    torch.manual_seed(0)
    model = Perceiver(token_dims=[2080], num_outputs=7, config=model_config("paper")).cuda()
    tokens, mask = (t.cuda() for t in inputs(batch=16))
    labels = torch.rand(16, 7, device="cuda")
    optimiser = make_optimiser(model.parameters(), lr=1e-5)
    for dtype in (torch.bfloat16, torch.float16):
        scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        before = model.to_out[1].weight.detach().clone()
        with torch.autocast("cuda", dtype=dtype):
            loss = torch.nn.functional.mse_loss(model(tokens, mask).float(), labels)
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        assert torch.isfinite(loss)
        assert not torch.equal(before, model.to_out[1].weight), f"no update under {dtype}"


@pytest.mark.parametrize("precision", ["auto", "fp16", "fp32"])
def test_train_on_cuda_resumes_and_its_checkpoint_runs_on_cpu(tmp_path, precision):
    from viper.jobs.evaluate import evaluate
    from viper.jobs.train import TrainConfig, train

    store = make_synthetic_store(tmp_path / "store", {"a": ("face_image", 24), "b": ("audio", 12)}, EMOTIONS,
                                 n_clips=48, n_frames=8)
    config = TrainConfig(epochs=2, lr=1e-3, batch_size=8, device="cuda", precision=precision)
    first = train(store.root, tmp_path / "run", config)
    assert first.epochs_done == 2
    resumed = train(store.root, tmp_path / "run", dataclasses.replace(config, epochs=4))
    assert resumed.epochs_done == 4 and [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert all(np.isfinite(h["train_loss"]) for h in resumed.history)
    metrics = evaluate(tmp_path / "run", store.root, "test", plots=False)  # loads on the CPU
    assert np.isfinite(metrics["mean_pearson"])


def extract_demo(tmp_path: Path, out: str, models: dict[str, Path], device: str, batch_videos: int | None):
    """Three bundled demo clips through fer and the three paper backends, whole frames (no face detector)."""
    from viper.jobs.demo import demo_clips
    from viper.jobs.extract import extract
    from viper.store import FeatureStore

    clips = tmp_path / "clips"
    if not clips.exists():
        clips.mkdir()
        for path in sorted(demo_clips().glob("*.mp4"))[:3]:
            shutil.copy(path, clips / path.name)
    options = {
        "face_image:vit": {"model": str(models["vit"])},
        "caption:clip": {"clip_model": str(models["clip"]), "text_model": str(models["roberta"])},
        "audio:wavlm": {"model": str(models["wavlm"])},
    }
    summary = extract(clips, tmp_path / out, frames=8, extractors=["face_image:fer", *options], options=options,
                      face_crop=False, device=device, batch_videos=batch_videos)
    assert summary.done == 3 and not summary.failed
    store = FeatureStore.open(tmp_path / out)
    return {key: store.load(key, sorted(store.video_ids(key))) for key in store.extractor_keys()}


def test_extract_on_cuda_matches_cpu(tmp_path, tiny_models):
    """Half precision on the GPU, all clips in one batch, gives the CPU's fp32 features (cosine > 0.99 per
    frame), and the same masks."""
    cpu = extract_demo(tmp_path, "cpu", tiny_models, "cpu", 1)
    gpu = extract_demo(tmp_path, "cuda", tiny_models, "cuda", None)
    assert cpu.keys() == gpu.keys()
    for key, (values, mask) in cpu.items():
        gpu_values, gpu_mask = gpu[key]
        assert np.array_equal(mask, gpu_mask), key
        a, b = values[mask], gpu_values[mask]
        assert np.isfinite(b).all(), key
        cosine = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)
        assert cosine.min() > 0.99, f"{key}: least cosine {cosine.min():.4f}"
