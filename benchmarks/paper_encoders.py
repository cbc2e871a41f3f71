"""Throughput of the paper's encoders (ViT-Base/16, CLIP ViT-B/32 + RoBERTa-base, WavLM-Base-plus x-vector) in
viper's extractors, batched across videos, on CPU or GPU (half precision on CUDA).

    python benchmarks/paper_encoders.py [--device cuda] [--clips 64] [--batch-videos 1,4,16] [--models DIR]
                                        [--video FILE] [--no-face-crop]

Throughput does not depend on the weights, so by default the encoders are the real architectures with random
weights, built offline (tests/hf_models.py) into a temp folder; `--models DIR` takes folders named vit, clip,
roberta, wavlm with real checkpoints instead. The clips (copies of the 12-second 30 fps 640x360 reference clip of
benchmarks/extract.py) are decoded and their faces cropped once, before timing: the figures are the encoders'
own clips/s, which is what a GPU adds; decoding stays on the CPU workers (see benchmarks/extract.py). `--video`
takes another clip; `--no-face-crop` feeds whole frames (same shapes, so the same cost) where no face detector is
installed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from extract import make_12s_clip  # noqa: E402  (benchmarks/extract.py)
from hf_models import save_clip, save_roberta, save_vit, save_wavlm  # noqa: E402

from viper.extraction import ExtractConfig, Extraction  # noqa: E402
from viper.extractors.base import create_extractor  # noqa: E402


def build_models(folder: Path) -> dict[str, Path]:
    torch.manual_seed(0)
    return {
        "vit": save_vit(folder / "vit", classifier=False, size="paper"),
        "clip": save_clip(folder / "clip", size="paper"),
        "roberta": save_roberta(folder / "roberta", size="paper"),
        "wavlm": save_wavlm(folder / "wavlm", size="paper"),
    }


def encoders(models: dict[str, Path], device: str, batch_size: int) -> dict[str, object]:
    options = {
        "face_image:vit": {"model": str(models["vit"]), "batch_size": batch_size},
        "caption:clip": {"clip_model": str(models["clip"]), "text_model": str(models["roberta"]),
                         "batch_size": batch_size},
        "audio:wavlm": {"model": str(models["wavlm"]), "batch_size": batch_size},
    }
    built = {spec: create_extractor(spec, option, device=device) for spec, option in options.items()}
    for extractor in built.values():
        extractor.ensure_loaded()
    return built


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--clips", type=int, default=None, help="default: 64 on CUDA, 4 on CPU")
    parser.add_argument("--batch-videos", default=None, help="comma-separated; default 1,4,16 on CUDA, 1,2 on CPU")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--models", type=Path, default=None)
    parser.add_argument("--video", type=Path, default=None, help="default: the 12-second reference clip")
    parser.add_argument("--no-face-crop", action="store_true", help="whole frames: no face detector needed")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    count = args.clips or (64 if cuda else 4)
    sizes = [int(b) for b in (args.batch_videos or ("1,4,16" if cuda else "1,2")).split(",")]

    video = args.video or make_12s_clip()  # its source checked before any model loads
    started = time.perf_counter()
    extraction = Extraction(ExtractConfig(frames=args.frames, extractors=[], face_crop=not args.no_face_crop))
    extraction.load()
    clip = extraction.clip(video)
    clips = [clip] * count
    print(f"{count} clips of {clip.duration:.1f} s, N={args.frames}, faces {int(clip.face_mask.sum())}/{clip.n}; "
          f"device {args.device}{' (fp16)' if cuda else ' (fp32)'}; decode+faces {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as folder:
        models = args.models or Path(folder)
        if args.models is None:
            began = time.perf_counter()
            build_models(models)
            print(f"random-weight paper encoders built in {time.perf_counter() - began:.0f} s")
        built = encoders({name: models / name for name in ("vit", "clip", "roberta", "wavlm")}, args.device, 128)
        for extractor in built.values():  # warm-up: kernels, template embeddings
            extractor.extract_batch(clips[:1])
        synchronise(args.device)
        print(f"{'batch-videos':>12s} " + " ".join(f"{spec:>16s}" for spec in built) + f" {'all three':>10s}")
        for size in sizes:
            rates = []
            for extractor in built.values():
                began = time.perf_counter()
                for start in range(0, count, size):
                    extractor.extract_batch(clips[start : start + size])
                synchronise(args.device)
                rates.append(count / (time.perf_counter() - began))
            together = 1 / sum(1 / rate for rate in rates)
            print(f"{size:12d} " + " ".join(f"{rate:12.2f} c/s" for rate in rates) + f" {together:6.2f} c/s")
    if cuda:
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    print("c/s: clips per second (each clip: N face crops for ViT and CLIP, N captions for RoBERTa, N audio fragments)")


if __name__ == "__main__":
    main()
