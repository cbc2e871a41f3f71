"""Training and inference speed of viper's Perceiver vs transformers' PerceiverModel at the same sizes.

Both models get the same tokens (batch 16 × N frames × token width) and frame mask, the same pooled linear head,
MSE loss and AdamW; their parameter counts are printed so the sizes can be seen to match. viper's model is built
without its input projection here (transformers' Perceiver has none); the `compact` preset row shows the preset
as it trains by default.

    python benchmarks/train.py                    # CPU, compact and mid sizes
    python benchmarks/train.py --device cuda --sizes compact,mid,paper --compile
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
import torch.nn.functional as F
from torch import nn

from viper.model import Perceiver, count_parameters, model_config

SIZES = {
    "compact": model_config("compact", {"input_dim": None}),
    "mid": model_config(
        "compact",
        {
            "input_dim": None,
            "num_latents": 128,
            "latent_dim": 512,
            "cross_heads": 8,
            "self_layers": 8,
            "latent_heads": 8,
            "widening_factor": 1,
        },
    ),
    "paper": model_config("paper"),
}


class HFPerceiver(nn.Module):
    """transformers.PerceiverModel with the same settings, its last hidden state mean-pooled into a linear head."""

    def __init__(self, *, token_dim: int, num_outputs: int, config) -> None:
        super().__init__()
        from transformers import PerceiverConfig as HFConfig
        from transformers import PerceiverModel

        hf_config = HFConfig(
            d_model=token_dim,
            num_latents=config.num_latents,
            d_latents=config.latent_dim,
            num_blocks=1,
            num_self_attends_per_block=config.self_layers,
            num_cross_attention_heads=config.cross_heads,
            num_self_attention_heads=config.latent_heads,
            self_attention_widening_factor=config.widening_factor,
            cross_attention_widening_factor=config.widening_factor,
            attention_probs_dropout_prob=config.attn_dropout,
        )
        self.perceiver = PerceiverModel(hf_config)
        self.to_out = nn.Sequential(nn.LayerNorm(config.latent_dim), nn.Linear(config.latent_dim, num_outputs))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.perceiver(inputs=tokens, attention_mask=mask.long()).last_hidden_state
        return self.to_out(hidden.mean(dim=1))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def speed(model: nn.Module, tokens, mask, labels, *, steps: int, warmup: int, amp: bool) -> tuple[float, float]:
    """(training samples/s, inference clips/s) over `steps` batches after `warmup` batches."""
    device = tokens.device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            began = time.perf_counter()
        with autocast:
            loss = F.mse_loss(model(tokens, mask).float(), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    sync(device)
    train_rate = steps * len(tokens) / (time.perf_counter() - began)

    model.eval()
    with torch.no_grad(), autocast:
        for step in range(warmup + steps):
            if step == warmup:
                sync(device)
                began = time.perf_counter()
            model(tokens, mask)
    sync(device)
    return train_rate, steps * len(tokens) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="compact,mid", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--token-dim", type=int, default=2080, help="token width (2080 = the paper's full token)")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--emotions", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10, help="timed batches per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    torch.manual_seed(0)
    tokens = torch.randn(args.batch, args.frames, args.token_dim, device=device)
    mask = torch.rand(args.batch, args.frames, device=device) > 0.1
    labels = torch.rand(args.batch, args.emotions, device=device)
    print(
        f"device {device}, threads {torch.get_num_threads()}, tokens {tuple(tokens.shape)}, "
        f"compile {args.compile}, amp {args.amp}"
    )
    header = f"{'size':<10}{'model':<24}{'params':>12}{'train samples/s':>18}{'infer clips/s':>16}"
    print(header)
    print("-" * len(header))
    for size in args.sizes.split(","):
        config = SIZES[size]
        rows = {}
        builders = {
            "viper": lambda c=config: Perceiver(token_dims=[args.token_dim], num_outputs=args.emotions, config=c),
            "transformers": lambda c=config: HFPerceiver(token_dim=args.token_dim, num_outputs=args.emotions, config=c),
        }
        if size == "compact":
            preset = model_config("compact")
            builders["viper (preset, proj)"] = lambda c=preset: Perceiver(
                token_dims=[args.token_dim], num_outputs=args.emotions, config=c
            )
        for name, build in builders.items():
            model = build().to(device)
            params = count_parameters(model)
            if args.compile:
                model = torch.compile(model)
            rows[name] = speed(model, tokens, mask, labels, steps=args.steps, warmup=args.warmup, amp=args.amp)
            print(f"{size:<10}{name:<24}{params:>12,}{rows[name][0]:>18.1f}{rows[name][1]:>16.1f}")
            del model
        train_ratio = rows["viper"][0] / rows["transformers"][0]
        infer_ratio = rows["viper"][1] / rows["transformers"][1]
        print(f"{size:<10}{'viper / transformers':<24}{'':>12}{train_ratio:>17.2f}x{infer_ratio:>15.2f}x")
    print("sizes:", {name: dataclasses.asdict(SIZES[name]) for name in args.sizes.split(",")})


if __name__ == "__main__":
    main()
