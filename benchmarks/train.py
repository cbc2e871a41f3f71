"""Training and inference speed of viper's Perceiver vs transformers' PerceiverModel at the same sizes, in one run.

Both models get the same tokens (batch 16 × 32 frames × 2080, the paper's full token), the same frame mask, a
mean-pooled linear head, MSE loss and the same AdamW (`viper.jobs.train.make_optimiser`, as `viper train` uses it);
their parameter counts are printed so the sizes can be seen to match. viper's model is built without its input
projection (transformers' Perceiver has none) and without feed-forward dropout (transformers' MLP has none);
attention dropout is 0.1 in both. The `compact preset` row shows viper's default model as it trains (with its
2080 -> 128 input projection), for which transformers has no equal.

The two models are timed alternately, `--repeats` times per setting, each timing at least `--seconds` long; the
figures are medians and the ratio is the median of the paired ratios, so background load on a shared machine
weighs on both alike. `bf16` rows run both under bf16 autocast (mixed precision); `fp32` rows are like for like.
On a CPU without bf16 instructions (no AVX512-BF16 or AMX) bf16 is emulated, 20-70x slower than fp32, a measure of
neither model: there the default is fp32 alone. With every setting at its default the table is recorded as the
figure `train-transformers` (docs/figures/train-transformers.json, rendered into docs/speed.md).

    python benchmarks/train.py                    # CPU: compact and mid, fp32 (and bf16), 1 and 2 threads
    python benchmarks/train.py --compile          # adds torch.compile rows; compile time printed
    python benchmarks/train.py --compile ours     # ours compiled against transformers as it runs (eager)
    python benchmarks/train.py --device cuda --sizes compact,mid,paper --precisions fp32,bf16 --threads 0
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial

import figures
import torch
import torch.nn.functional as F
from torch import nn

from viper.jobs.train import make_optimiser
from viper.model import Perceiver, count_parameters, model_config

EQUAL = {"input_dim": None, "ff_dropout": 0.0}  # the shape of transformers' Perceiver
SIZES = {
    "compact": model_config("compact", EQUAL),
    "mid": model_config(
        "compact",
        {
            **EQUAL,
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
MEASURES = ["src/viper/model.py", "src/viper/jobs/train.py"]  # the Perceiver and its optimiser


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


@dataclasses.dataclass
class Batch:
    tokens: torch.Tensor
    mask: torch.Tensor
    labels: torch.Tensor


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step(model: nn.Module, optimiser, batch: Batch, autocast) -> None:
    model.train()
    with autocast:
        loss = F.mse_loss(model(batch.tokens, batch.mask).float(), batch.labels)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()


def infer_step(model: nn.Module, batch: Batch, autocast) -> None:
    model.eval()
    with torch.no_grad(), autocast:
        model(batch.tokens, batch.mask)


def timed(step: Callable[[], None], count: int, device: torch.device) -> float:
    sync(device)
    began = time.perf_counter()
    for _ in range(count):
        step()
    sync(device)
    return time.perf_counter() - began


def compare(steps: dict[str, Callable[[], None]], *, batch: int, repeats: int, seconds: float, device) -> dict:
    """Samples/s of each step (medians) and the median ratio ours/transformers over alternating repeats."""
    counts = {}
    for name, step in steps.items():
        step()  # warm-up
        counts[name] = max(1, math.ceil(seconds / timed(step, 1, device)))
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for repeat in range(repeats):
        for name in list(steps)[:: 1 if repeat % 2 == 0 else -1]:  # alternate who goes first
            rates[name].append(counts[name] * batch / timed(steps[name], counts[name], device))
    ratios = [ours / theirs for ours, theirs in zip(rates["ours"], rates["transformers"], strict=True)]
    return {name: statistics.median(values) for name, values in rates.items()} | {
        "ratio": statistics.median(ratios)
    }


@dataclasses.dataclass
class Row:
    """One size × precision × thread count: samples/s training and clips/s inferring, ours against transformers."""

    model: str
    precision: str
    threads: int
    train: float
    infer: float
    train_theirs: float | None = None
    train_ratio: float | None = None
    infer_theirs: float | None = None
    infer_ratio: float | None = None


class Table:
    """Each timing printed as it comes, then the rows again at the end."""

    def __init__(self) -> None:
        header = f"{'setting':<48}{'ours':>10}{'transformers':>14}{'ratio':>8}"
        self.lines, self.rows = [header, "-" * len(header)], []
        print("\n".join(self.lines), flush=True)

    def add(self, setting: str, ours: float, theirs: float | None = None, ratio: float | None = None) -> None:
        theirs_text = "—" if theirs is None else f"{theirs:.1f}"
        ratio_text = "" if ratio is None else f"{ratio:.2f}x"
        self.lines.append(f"{setting:<48}{ours:>10.1f}{theirs_text:>14}{ratio_text:>8}")
        print(self.lines[-1], flush=True)


def measure_size(size: str, args, batch: Batch, table: Table, notes: list[str]) -> None:
    """Every thread count × precision (× compiled) row of one size, ours against transformers."""
    device, config = batch.tokens.device, SIZES[size]
    torch.manual_seed(0)
    models = {
        "ours": Perceiver(token_dims=[args.token_dim], num_outputs=args.emotions, config=config).to(device),
        "transformers": HFPerceiver(token_dim=args.token_dim, num_outputs=args.emotions, config=config).to(device),
    }
    params = {name: count_parameters(model) for name, model in models.items()}
    print(f"{size}: parameters ours {params['ours']:,}, transformers {params['transformers']:,}", flush=True)
    notes.append(f"{size}: {params['ours'] / 1e6:.2f} M parameters ours, {params['transformers'] / 1e6:.2f} M "
                 "transformers")
    optimisers = {name: make_optimiser(model.parameters(), lr=1e-5) for name, model in models.items()}
    variants = {"": models}
    if args.compile:
        names = list(models) if args.compile == "both" else ["ours"]
        prefix = "compiled " if args.compile == "both" else "ours compiled "
        variants[prefix] = {name: torch.compile(m) if name in names else m for name, m in models.items()}
        for name in names:
            compiled = variants[prefix][name]
            first = resolved_precisions(args).split(",")[0]  # compiled for the autocast state the first rows use
            amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=first == "bf16")
            seconds = timed(partial(train_step, compiled, optimisers[name], batch, amp), 1, device)
            seconds += timed(partial(infer_step, compiled, batch, amp), 1, device)
            notes.append(f"{size} {name}: torch.compile, first train + inference step {seconds:.1f} s")
    for threads in (int(t) for t in args.threads.split(",")):
        if threads:
            torch.set_num_threads(threads)
        for precision in resolved_precisions(args).split(","):
            amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
            label = f"{precision} autocast" if precision == "bf16" else precision
            for prefix, chosen in variants.items():
                steps = {
                    "train": {name: partial(train_step, m, optimisers[name], batch, amp) for name, m in chosen.items()},
                    "infer": {name: partial(infer_step, m, batch, amp) for name, m in chosen.items()},
                }
                results = {}
                for kind, pair in steps.items():
                    results[kind] = compare(pair, batch=args.batch, repeats=args.repeats, seconds=args.seconds,
                                            device=device)
                    setting = f"{size} {prefix}{label} {torch.get_num_threads()}T {kind}"
                    table.add(setting, results[kind]["ours"], results[kind]["transformers"], results[kind]["ratio"])
                train, infer = results["train"], results["infer"]
                table.rows.append(Row(f"{size} {prefix}".strip(), label, torch.get_num_threads(), train["ours"],
                                      infer["ours"], train["transformers"], train["ratio"], infer["transformers"],
                                      infer["ratio"]))
        if size == "compact":
            measure_preset(args, batch, table)


def measure_preset(args, batch: Batch, table: Table) -> None:
    """viper's default model as it trains (2080 -> 128 projection first); transformers has no equal."""
    device = batch.tokens.device
    preset = Perceiver(token_dims=[args.token_dim], num_outputs=args.emotions, config=model_config("compact"))
    preset.to(device)
    optimiser, fp32 = make_optimiser(preset.parameters(), lr=1e-5), contextlib.nullcontext()
    rates = {}
    for kind, step in (
        ("train", partial(train_step, preset, optimiser, batch, fp32)),
        ("infer", partial(infer_step, preset, batch, fp32)),
    ):
        step()
        count = max(1, math.ceil(args.seconds / timed(step, 1, device)))
        rates[kind] = statistics.median(args.batch * count / timed(step, count, device) for _ in range(args.repeats))
        table.add(f"compact preset (128-d projection) fp32 {torch.get_num_threads()}T {kind}", rates[kind])
    table.rows.append(Row("`compact` preset as it trains (2080 → 128 projection)", "fp32", torch.get_num_threads(),
                          rates["train"], rates["infer"]))


def bf16_instructions() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); without, oneDNN emulates it, 20-70x slower."""
    flags = next((line for line in figures.cpuinfo() if line.startswith("flags")), "").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def record(args: argparse.Namespace, defaults: argparse.Namespace, began: dict, table: Table,
           notes: list[str]) -> None:
    """The rows as the figure `train-transformers`, when every setting is the default's (the documented run)."""
    variant = [name for name, value in vars(args).items() if value != getattr(defaults, name)]
    if variant:
        print(f"not recorded as a figure: a variant ({', '.join(variant)})")
        return
    precisions = resolved_precisions(args)
    figures.record("train-transformers", [dataclasses.asdict(row) for row in table.rows], began=began,
                   measures=MEASURES,
                   columns=[("model", "size"), ("precision", "precision"), ("threads", "threads"),
                            ("train", "train: ours", "{:.1f}"), ("train_theirs", "transformers", "{:.1f}"),
                            ("train_ratio", "ratio", "{:.2f}x"), ("infer", "inference: ours", "{:.1f}"),
                            ("infer_theirs", "transformers", "{:.1f}"), ("infer_ratio", "ratio", "{:.2f}x")],
                   notes=f"samples/s (clips/s for inference), batches of {args.batch} clips × {args.frames} frames "
                         f"× {args.token_dim}-d tokens; medians of {args.repeats} alternated timings of at least "
                         f"{args.seconds} s, ratio ours / transformers the median of the paired ratios; "
                         + "; ".join(notes) + f"; torch {torch.__version__}"
                         + ("" if "bf16" in precisions else "; no bf16 rows: this CPU has no bf16 instructions"))


def resolved_precisions(args: argparse.Namespace) -> str:
    """`--precisions`, or by default fp32 and, where the device computes bf16 natively, bf16."""
    if args.precisions:
        return args.precisions
    return "fp32,bf16" if args.device != "cpu" or bf16_instructions() else "fp32"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="compact,mid", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--precisions", help="fp32 (like for like) and/or bf16 (autocast); default fp32, and bf16 "
                                             "where the device computes it natively")
    parser.add_argument("--threads", default="1,2", help="torch CPU threads to measure at (0: torch's default)")
    parser.add_argument("--token-dim", type=int, default=2080, help="token width (2080 = the paper's full token)")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--emotions", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5, help="alternating timings per setting and model")
    parser.add_argument("--seconds", type=float, default=0.5, help="least length of one timing")
    parser.add_argument("--compile", nargs="?", const="both", choices=("both", "ours"),
                        help="also time under torch.compile: both models, or ours (against transformers eager)")
    args, defaults = parser.parse_args(), parser.parse_args([])
    began = figures.begin()

    device = torch.device(args.device)
    torch.manual_seed(0)
    batch = Batch(
        torch.randn(args.batch, args.frames, args.token_dim, device=device),
        torch.rand(args.batch, args.frames, device=device) > 0.1,
        torch.rand(args.batch, args.emotions, device=device),
    )
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}, torch {torch.__version__}, device {device}; tokens {tuple(batch.tokens.shape)}"
    )
    table, notes = Table(), []
    for size in args.sizes.split(","):
        measure_size(size, args, batch, table, notes)
    print("\n" + "\n".join(table.lines + notes))
    print(f"load average at the end {os.getloadavg()[0]:.1f}; samples/s (clips/s when infer); ratio: ours / theirs")
    print("sizes:", {name: dataclasses.asdict(SIZES[name]) for name in args.sizes.split(",")})
    record(args, defaults, began, table, notes)


if __name__ == "__main__":
    main()
