"""Peak memory of extracting long recordings (with audio), of packing feature stores of growing size, and of
loading a train split from them.

    python benchmarks/memory.py [--minutes 1 10 60] [--long] [--clips 1000 4000 16000] [--src SRC ...]

Each measurement is a fresh process (its own peak RSS, VmHWM): `viper.jobs.extract.extract` of one clip
with the default extractors (N = 32), `FeatureStore.pack` of one extractor's store of V clips x 32 x 768
float32 (the paper's 768-d features; Hume-Reaction is about 25,000 clips, 2.5 GB per modality), or
`tokens.load_split` (what `viper train` holds in memory) of V clips with two such modalities. The clips are
32x32 at 1 fps with 22.05 kHz mono AAC audio (a tone with noise), made once under benchmarks/out/, so the audio is
what grows; the stores too (their per-clip files hard-linked between sizes). `--long` adds a 180-minute clip and a
25,000-clip store. Each `--src` (a folder holding the `viper` package, e.g. another checkout's `src`) is measured
in the same run, before this checkout's. With `--long` and the default sizes, and no `--src`, the table is
recorded as the figure `memory` (docs/figures/memory.json, shown in docs/speed.md); other runs only print.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import figures
import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"
OUT = Path(__file__).resolve().parent / "out"
DIM, FRAMES = 768, 32
MINUTES, CLIPS = [1, 10, 60], [1000, 4000, 16000]  # the defaults; --long adds 180 minutes and 25,000 clips
# what the three processes run: extraction (decoding, audio track, extractors and their networks), the store, tokens
MEASURES = ["src/viper/jobs/extract.py", "src/viper/extraction.py", "src/viper/extractors", "src/viper/backbones",
            "src/viper/face_detectors", "src/viper/video.py", "src/viper/sampled_video.py",
            "src/viper/audio_track.py", "src/viper/resample.py", "src/viper/mel.py", "src/viper/faces.py",
            "src/viper/store.py", "src/viper/tokens.py"]

# The process's own peak (VmHWM, Linux): ru_maxrss would also count the parent's memory at fork, kept across exec.
PEAK = 'next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 2**20'
EXTRACT = textwrap.dedent(f"""
    import sys, time
    from viper.jobs.extract import extract
    started = time.perf_counter()
    summary = extract(sys.argv[1], sys.argv[2], frames=32)
    assert summary.done == 1, summary
    print({PEAK}, time.perf_counter() - started)
""")
SPLIT = textwrap.dedent(f"""
    import sys, time
    from viper.store import FeatureStore
    from viper.tokens import load_split
    started = time.perf_counter()
    data = load_split(FeatureStore(sys.argv[1]), ["face_image", "caption"], "train", labels=False)
    assert data.tokens.shape[0] == int(sys.argv[2]), data.tokens.shape
    print({PEAK}, time.perf_counter() - started)
""")
PACK = textwrap.dedent(f"""
    import sys, time
    from viper.store import FeatureStore
    started = time.perf_counter()
    FeatureStore(sys.argv[1]).pack(sys.argv[2])
    print({PEAK}, time.perf_counter() - started)
""")


def long_clip(minutes: int, rate: int = 22050) -> Path:
    """A clip of `minutes` minutes: 32x32 grey frames at 1 fps and mono AAC audio, encoded as a stream."""
    import av

    path = OUT / f"long_{minutes}min.mp4"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.mp4")
    rng = np.random.default_rng(0)
    with av.open(str(tmp), "w") as container:
        video = container.add_stream("libx264", rate=1)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        audio.layout = "mono"
        for second in range(minutes * 60):
            image = np.full((32, 32, 3), second % 200, np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            t = second + np.arange(rate) / rate
            tone = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(rate)
            frame = av.AudioFrame.from_ndarray(tone.astype(np.float32)[None], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, second * rate
            container.mux(audio.encode(frame))
        container.mux(video.encode())
        container.mux(audio.encode())
    tmp.rename(path)
    return path


def synthetic_store(sizes: list[int]) -> Path:
    """One store, one feature key per size (`k<V>`): V clips of (32, 768) float32 each, written once."""
    from viper.store import FeatureStore

    store = FeatureStore.create(OUT / "memory-store", FRAMES)
    rng = np.random.default_rng(0)
    largest = f"k{max(sizes)}"
    for index in range(max(sizes)):
        if not store.has(largest, f"v{index:05d}"):
            values = rng.normal(size=(FRAMES, DIM)).astype(np.float32)
            store.write(largest, f"v{index:05d}", values, np.ones(FRAMES, bool))
    for size in sizes:
        folder = store.feature_dir(f"k{size}") / "videos"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(size):
            name = f"v{index:05d}.npz"
            if not (folder / name).exists():
                os.link(store.video_path(largest, f"v{index:05d}"), folder / name)
    return store.root


def split_store(size: int) -> Path:
    """A store of `size` train clips with two 768-d modalities (face_image, caption), both the per-clip files of
    `synthetic_store`'s k<size> hard-linked, and labels.csv: what `viper train` loads for its train split."""
    from viper.feature_spec import FeatureSpec
    from viper.store import FeatureStore

    source = FeatureStore(synthetic_store([size]))
    store = FeatureStore.create(OUT / f"split-store-{size}", FRAMES)
    ids = [f"v{index:05d}" for index in range(size)]
    for modality in ("face_image", "caption"):
        key = f"{modality}-bench-{size}"
        store.register_feature(FeatureSpec(modality, "bench", "1", dim=DIM, key=key))
        folder = store.feature_dir(key) / "videos"
        folder.mkdir(parents=True, exist_ok=True)
        for video_id in ids:
            if not (folder / f"{video_id}.npz").exists():
                os.link(source.video_path(f"k{size}", video_id), folder / f"{video_id}.npz")
        store.pack(key)
    (store.root / "labels.csv").write_text("video_id,split,joy\n" + "".join(f"{i},train,0.5\n" for i in ids))
    return store.root


def measure(code: str, src: Path, *args: str) -> tuple[float, ...]:
    """The numbers a fresh process running `code` with `src` first on its path prints on its last line (here:
    peak RSS in GB, seconds)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"failed with {src}:\n{out.stderr[-3000:]}")
    return tuple(map(float, out.stdout.strip().splitlines()[-1].split()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, nargs="*", default=MINUTES)
    parser.add_argument("--clips", type=int, nargs="*", default=CLIPS)
    parser.add_argument("--long", action="store_true", help="add a 180-minute clip and a 25,000-clip store")
    parser.add_argument("--src", type=Path, action="append", default=[], help="another checkout's src, measured first")
    args = parser.parse_args(argv)
    minutes = args.minutes + ([180] if args.long else [])
    sizes = args.clips + ([25_000] if args.long else [])
    sources = [*args.src, SRC]
    began, rows = figures.begin(), []

    def row(what: str, src: Path, code: str, *code_args: str) -> None:
        peak, seconds = measure(code, src, *code_args)
        print(f"| {what} | {src} | {peak:.2f} GB | {seconds:.1f} s |", flush=True)
        if src == SRC:
            rows.append({"what": what, "peak": peak, "seconds": seconds})

    print(f"load {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores")
    print("| what | src | peak RSS | time |\n|---|---|---|---|")
    for length in minutes:
        clip = long_clip(length)
        for src in sources:
            store = OUT / "memory-extract"
            shutil.rmtree(store, ignore_errors=True)
            row(f"extract a {length}-minute clip", src, EXTRACT, str(clip), str(store))
    if sizes:
        root = synthetic_store(sizes)
        for size in sizes:
            for src in sources:
                row(f"pack {size:,} clips ({size * FRAMES * DIM * 4 / 1e9:.2f} GB)", src, PACK, str(root), f"k{size}")
        for size in sizes:
            root = split_store(size)
            for src in sources:
                row(f"`load_split`, {size:,} clips × 2 modalities (tokens {size * FRAMES * DIM * 2 * 4 / 1e9:.2f} GB)",
                    src, SPLIT, str(root), str(size))
    print(f"load {os.getloadavg()[0]:.1f} at the end ({time.strftime('%H:%M')})")
    if args.src or not args.long or args.minutes != MINUTES or args.clips != CLIPS:
        print("not recorded as a figure: only `--long` with the default sizes and no --src is")
        return
    figures.record("memory", rows, began=began, measures=MEASURES,
                   columns=[("what", "one fresh process"), ("peak", "peak RSS", "{:.2f} GB"),
                            ("seconds", "time", "{:.1f} s")],
                   notes="default extractors, N = 32; clips of 32×32 frames at 1 fps with 22.05 kHz mono AAC audio; "
                         "stores of 32 × 768 float32 a clip")


if __name__ == "__main__":
    main()
