"""Time the fusion model's forward in torch and in ONNX Runtime (its best.onnx), for a batch of 1 and of 16.

The compact preset on the demo's tokens (fau + expression, 66-d, N = 32, 8 emotions, anchored), random weights
and standardisation (speed does not depend on them); 1 thread each, the runtimes alternated, best of rounds; the
load average is recorded, as this machine's 2 cores are shared. The table is recorded as the figure `fusion-onnx`
(docs/figures/fusion-onnx.json, shown in docs/speed.md).

    python benchmarks/fusion_onnx.py [--rounds 5] [--calls 50] [--dims 59,7]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import figures
import numpy as np
import torch

from viper.checkpoint import predict_model
from viper.fusion_onnx import export_fusion, predict_onnx, session
from viper.model import Perceiver, model_config

EMOTIONS = 8  # RAVDESS: neutral, calm, happy, sad, angry, fearful, disgust, surprised
ANCHOR = {"anchor_map": (0, -1, 1, 2, 3, 4, 5, 6)}  # calm has no basic emotion
MEASURES = ["src/viper/fusion_onnx.py", "src/viper/model.py", "src/viper/checkpoint.py"]  # export, model, torch path


def mean_ms(forward, calls: int, *inputs) -> float:
    began = time.perf_counter()
    for _ in range(calls):
        forward(*inputs)
    return (time.perf_counter() - began) / calls * 1e3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--dims", default="59,7", help="token widths per modality, expression last")
    parser.add_argument("--preset", default="compact")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dims = [int(d) for d in args.dims.split(",")]
    config = model_config(args.preset, {"anchor_start": sum(dims) - 7, **ANCHOR})
    model = Perceiver(token_dims=dims, num_outputs=EMOTIONS, config=config).eval()
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "best.pt"
        checkpoint.write_bytes(b"stands for the weights")  # only its digest is recorded
        began = time.perf_counter()
        runner = session(export_fusion(model, args.frames, checkpoint, {}))  # no fields: nothing scores from it
        size = checkpoint.with_suffix(".onnx").stat().st_size
        export = f"export {time.perf_counter() - began:.2f} s, {size / 1e6:.1f} MB"
        print(export)
    rng = np.random.default_rng(0)
    before, rows = figures.begin(), []
    for batch in (1, 16):
        tokens = rng.random((batch, args.frames, sum(dims)), np.float32)
        masks = rng.random((batch, args.frames, len(dims))) > 0.1
        gap = np.abs(predict_onnx(runner, tokens, masks) - predict_model(model, tokens, masks)).max()
        timings = {"torch": [], "onnx": []}
        for _ in range(args.rounds):  # alternated, so a burst of load hits both
            timings["torch"].append(mean_ms(predict_model, args.calls, model, tokens, masks))
            timings["onnx"].append(mean_ms(predict_onnx, args.calls, runner, tokens, masks))
        torch_ms, onnx_ms = min(timings["torch"]), min(timings["onnx"])
        print(f"batch {batch:2d}: torch {torch_ms:.3f} ms, onnx {onnx_ms:.3f} ms ({torch_ms / onnx_ms:.2f}x), "
              f"max |difference| {gap:.1e}")
        rows.append({"clips": batch, "torch": torch_ms, "onnx": onnx_ms, "speed-up": torch_ms / onnx_ms,
                     "difference": float(gap)})
    figures.record("fusion-onnx", rows, began=before, measures=MEASURES,
                   columns=[("clips", "clips a forward"), ("torch", "torch", "{:.2f} ms"),
                            ("onnx", "onnx", "{:.2f} ms"), ("speed-up", "speed-up", "{:.2f}×"),
                            ("difference", "max difference", "{:.1e}")],
                   notes=f"the {args.preset} preset, tokens {'+'.join(map(str, dims))}-d, N = {args.frames}, "
                         f"1 thread; the runtimes alternated, best of {args.rounds} rounds of {args.calls} calls; "
                         f"{export}")


if __name__ == "__main__":
    main()
