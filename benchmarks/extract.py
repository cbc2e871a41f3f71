"""Seconds per clip of `viper extract`, split by stage (decode, face, each extractor), and peak memory.

    python benchmarks/extract.py [CLIP_OR_FOLDER ...] [--frames 32] [--repeats 3] [--scaling 12]

Defaults to the clips in ../shared/data/pyfeat-samples plus a 12-second 30 fps 640x360 h264/aac clip made from
the first 12 s of WolfgangLanger_Pexels.mp4 (benchmarks/out/clip12s_30fps_640x360.mp4); on a clone without
../shared it says so and exits with code 2: name clips instead (e.g. the bundled takes,
src/viper/demo_data/ravdess-actor05). Model loading is timed
once, apart from per-clip work. The decode stage alone (the N frames plus the audio read) is the lower bound.
`--scaling K` then runs `viper.extract` on K copies of the 12-second clip with 1 and 2 workers (and with batches
of 8 clips across videos): clips/s, speed-up, and the peak memory of each worker process.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

from shared_data import needs

from viper.extraction import DEFAULT_EXTRACTORS, ExtractConfig, Extraction
from viper.sampled_video import sample_video
from viper.video import VIDEO_SUFFIXES, read_audio, read_frames

PYFEAT = "data/pyfeat-samples"  # in ../shared
OUT = Path(__file__).resolve().parent / "out"


def make_12s_clip(source: Path | None = None, seconds: float = 12.0, fps: int = 30) -> Path:
    """The issue's reference clip: 12 s, 30 fps, 640x360, h264 + aac, re-encoded from real footage (by default
    ../shared's WolfgangLanger_Pexels.mp4), once."""
    import av
    import numpy as np

    target = OUT / f"clip12s_{fps}fps_640x360.mp4"
    if target.exists():
        return target
    source = source or needs(f"{PYFEAT}/WolfgangLanger_Pexels.mp4", "the 12-second reference clip is re-encoded from "
                             "it (nothing bundled is as long or as large); give a clip of your own instead (--help)")
    OUT.mkdir(parents=True, exist_ok=True)
    with av.open(str(source)) as reader:
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in reader.decode(video=0) if f.time < seconds + 0.1]
    with av.open(str(source)) as reader:
        audio = np.concatenate([f.to_ndarray() for f in reader.decode(audio=0) if f.time < seconds], axis=1)
        rate = reader.streams.audio[0].rate
    times = np.array([t for t, _ in frames])
    tmp = target.with_suffix(".tmp.mp4")
    with av.open(str(tmp), "w") as writer:
        video = writer.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
        sound = writer.add_stream("aac", rate=rate)
        sound.layout = "mono"
        for index in range(int(seconds * fps)):
            image = frames[int(np.abs(times - index / fps).argmin())][1]
            writer.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        writer.mux(video.encode())
        mono = audio[:, : int(seconds * rate)].mean(0, keepdims=True).astype(np.float32)
        for start in range(0, mono.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(mono[:, start : start + 1024]), "flt", "mono")
            frame.sample_rate = rate
            writer.mux(sound.encode(frame))
        writer.mux(sound.encode())
    tmp.rename(target)
    return target


def clips_from(paths: list[str]) -> list[Path]:
    if not paths:  # the default clips, checked before any model loads
        why = "the default clips are its videos and the 12-second reference clip made from one; name clips instead"
        paths = [str(needs(PYFEAT, why)), str(make_12s_clip())]
    found: list[Path] = []
    for item in map(Path, paths):
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
    parser.add_argument("--scaling", type=int, default=0, help="copies of the 12-second clip for the workers run")
    args = parser.parse_args()
    clips = clips_from(args.clips)
    if args.scaling:
        make_12s_clip()  # its source checked before any model loads
    extraction = Extraction(ExtractConfig(frames=args.frames, extractors=args.extractors.split(",")))
    _, load_seconds = timed(extraction.load)
    print(f"model loading (once per process): {load_seconds:.2f} s")
    stages = ["decode", "face", *[extractor.name for extractor in extraction.extractors]]
    print(f"{'clip':32s} " + " ".join(f"{stage:>18s}" for stage in stages) + f" {'total':>8s} {'faces':>6s}")
    for path in clips:
        runs: dict[str, list[float]] = {stage: [] for stage in stages}
        for _ in range(args.repeats):
            _, decode = timed(decode_only, path, args.frames)
            runs["decode"].append(decode)
            clip, whole = timed(sample_video, path, args.frames, extraction.detector)
            runs["face"].append(max(0.0, whole - decode))  # sample_video = decode + detection + cropping
            for extractor in extraction.extractors:
                _, seconds = timed(extractor.extract, clip)
                runs[extractor.name].append(seconds)
        medians = [statistics.median(runs[stage]) for stage in stages]
        faces = f"{int(clip.face_mask.sum())}/{clip.n}"
        print(f"{path.name[:32]:32s} " + " ".join(f"{m:18.3f}" for m in medians) + f" {sum(medians):8.3f} {faces:>6s}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS): {peak:.0f} MB; medians of {args.repeats} runs, seconds per clip")
    if args.scaling:
        scaling(args.scaling, args.frames, args.extractors.split(","))


def scaling(copies: int, frames: int, extractors: list[str]) -> None:
    """Throughput of whole `viper.extract` runs (process start and model loading included) on copies of the
    12-second clip, and the steady state without start-up: the extra seconds per extra clip between a run of a
    third as many copies and the full run."""
    clip = make_12s_clip()
    small = max(1, copies // 3)
    print(f"\n{copies} copies of {clip.name}, whole `viper.extract` runs (model loading included):")
    print(f"{'workers':>7s} {'batch':>5s} {'seconds':>8s} {'clips/s':>8s} {'speed-up':>8s} {'peak RSS/worker':>16s} "
          f"{'steady s/clip':>14s}")
    base = None
    for workers, batch in ((1, 1), (2, 1), (1, 8)):
        seconds, peak = whole_run(clip, copies, frames, extractors, workers, batch)
        fewer, _ = whole_run(clip, small, frames, extractors, workers, batch)
        base = base or seconds
        steady = (seconds - fewer) / (copies - small) if copies > small else float("nan")
        print(f"{workers:7d} {batch:5d} {seconds:8.1f} {copies / seconds:8.2f} {base / seconds:8.2f} {peak:13.0f} MB "
              f"{steady:14.2f}")


def whole_run(clip: Path, copies: int, frames: int, extractors: list[str], workers: int, batch: int):
    """Seconds and peak RSS (MB, the largest process) of one `viper.extract` of `copies` copies, in a fresh process
    (its own VmHWM: ru_maxrss would carry this benchmark's peak across fork + exec; workers: ru_maxrss of children)."""
    import shutil
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "clips"
        data.mkdir()
        for index in range(copies):
            shutil.copy(clip, data / f"copy{index:03d}.mp4")
        code = (
            "import resource, sys, time; from viper.jobs.extract import extract; t = time.perf_counter(); "
            f"extract(sys.argv[1], sys.argv[2], frames={frames}, extractors={extractors!r}, workers={workers}, "
            f"batch_videos={batch}); "
            "own = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')); "
            "kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss; "
            "print(time.perf_counter() - t, max(own, kids) / 1024)"
        )
        output = subprocess.run([sys.executable, "-c", code, str(data), str(Path(folder) / "store")],
                                check=True, capture_output=True, text=True).stdout.split()
    return float(output[-2]), float(output[-1])

if __name__ == "__main__":
    main()
