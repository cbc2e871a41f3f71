"""Seconds per clip of `viper extract`, split by stage (decode, face, each extractor), and peak memory.

    python benchmarks/extract.py [CLIP_OR_FOLDER ...] [--frames 32] [--repeats 3]

Defaults to the clips in ../shared/data/pyfeat-samples. Model loading is timed once, apart from per-clip work.
The decode stage alone (seek/sequential decode of the N frames plus the audio read) is the lower bound.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

from viper.clip import load_clip
from viper.pipeline import DEFAULT_EXTRACTORS, ExtractConfig, Extraction
from viper.video import VIDEO_SUFFIXES, read_audio, read_frames

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "pyfeat-samples"


def clips_from(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for item in map(Path, paths or [str(SHARED)]):
        found += sorted(p for p in item.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES) if item.is_dir() else [item]
    return found


def decode_only(path: Path, frames: int) -> None:
    """The lower bound: the N sampled frames and the audio, decoded."""
    read_frames(path, frames)
    read_audio(path)


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="*")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--extractors", default=",".join(DEFAULT_EXTRACTORS))
    args = parser.parse_args()

    extraction = Extraction(ExtractConfig(frames=args.frames, extractors=args.extractors.split(",")))
    _, load_seconds = timed(extraction.load)
    print(f"model loading (once per process): {load_seconds:.2f} s")
    stages = ["decode", "face", *[extractor.name for extractor in extraction.extractors]]
    print(f"{'clip':32s} " + " ".join(f"{stage:>18s}" for stage in stages) + f" {'total':>8s} {'faces':>6s}")
    for path in clips_from(args.clips):
        runs: dict[str, list[float]] = {stage: [] for stage in stages}
        for _ in range(args.repeats):
            _, decode = timed(decode_only, path, args.frames)
            runs["decode"].append(decode)
            clip, whole = timed(load_clip, path, args.frames, extraction.detector)
            runs["face"].append(max(0.0, whole - decode))  # load_clip = decode + detection + cropping
            for extractor in extraction.extractors:
                _, seconds = timed(extractor.extract, clip)
                runs[extractor.name].append(seconds)
        medians = [statistics.median(runs[stage]) for stage in stages]
        faces = f"{int(clip.face_mask.sum())}/{clip.n}"
        print(f"{path.name[:32]:32s} " + " ".join(f"{m:18.3f}" for m in medians) + f" {sum(medians):8.3f} {faces:>6s}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS): {peak:.0f} MB; medians of {args.repeats} runs, seconds per clip")


if __name__ == "__main__":
    main()
