"""How far the Perceiver's output moves from a float64 reference under each precision, attention path and SDPA
kernel: where mixed precision loses accuracy, and whether one path loses more than another.

    python benchmarks/attention_precision.py [--device cuda] [--repeats 3]

The model reads 2080-wide tokens without projection (as the `paper` preset does) at a small latent size; the
cross-attention runs absorbed (the training default when queries are shared) or plain (projected keys/values).
Figures: ‖out − ref‖ / ‖ref‖, the median over fresh random inputs.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics

import torch

import viper.model as fusion
from viper.model import Perceiver, model_config

SHAPE = {"input_dim": None, "num_latents": 16, "latent_dim": 64, "cross_heads": 8, "self_layers": 2,
         "latent_heads": 4, "widening_factor": 1, "attn_dropout": 0.0, "ff_dropout": 0.0}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def kernels(device: str) -> dict[str, contextlib.AbstractContextManager]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    chosen = {"default": contextlib.nullcontext()}
    if device.startswith("cuda"):
        chosen["math"] = sdpa_kernel(SDPBackend.MATH)
        chosen["efficient"] = sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION)
        chosen["fp32-sum"] = full_precision_sums()
    return chosen


@contextlib.contextmanager
def full_precision_sums():
    """cuBLAS may sum fp16/bf16 matrix products in reduced precision (split-K); this forbids it."""
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_fp16_reduced_precision_reduction, matmul.allow_bf16_reduced_precision_reduction
    matmul.allow_fp16_reduced_precision_reduction = matmul.allow_bf16_reduced_precision_reduction = False
    try:
        yield
    finally:
        matmul.allow_fp16_reduced_precision_reduction, matmul.allow_bf16_reduced_precision_reduction = before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    config = model_config("compact", SHAPE)
    reference = Perceiver(token_dims=[2080], num_outputs=7, config=config).double().train()
    model = Perceiver(token_dims=[2080], num_outputs=7, config=config).to(args.device).train()
    model.load_state_dict(reference.state_dict())
    inputs = []
    for _ in range(args.repeats):
        tokens, mask = torch.randn(8, 32, 2080), torch.rand(8, 32) > 0.3
        mask[:, 0] = True
        inputs.append((tokens, mask, reference(tokens.double(), mask).detach()))
    cheaper = fusion.absorbed_is_cheaper
    print(f"{'path':<10}{'kernel':<11}" + "".join(f"{name:>10}" for name in DTYPES))
    for path in ("absorbed", "plain"):
        fusion.absorbed_is_cheaper = cheaper if path == "absorbed" else (lambda **_: False)
        for kernel_name in kernels(args.device):
            row = []
            for dtype in DTYPES.values():
                errors = []
                for tokens, mask, expected in inputs:
                    amp = torch.autocast(torch.device(args.device).type, dtype=dtype, enabled=dtype != torch.float32)
                    try:
                        with kernels(args.device)[kernel_name], amp:  # with gradients: the training path
                            out = model(tokens.to(args.device), mask.to(args.device)).detach().double().cpu()
                    except RuntimeError as error:
                        errors = [f"fails: {str(error).splitlines()[0][:40]}"]
                        break
                    errors.append(float((out - expected).norm() / expected.norm()))
                row.append(errors[0] if isinstance(errors[0], str) else f"{statistics.median(errors):.2e}")
            print(f"{path:<10}{kernel_name:<11}" + "".join(f"{cell:>10}" for cell in row), flush=True)
    fusion.absorbed_is_cheaper = cheaper


if __name__ == "__main__":
    main()
