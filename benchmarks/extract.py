"""Seconds per clip of `viper extract` stage by stage (decode, face, each extractor), and of whole runs with workers.

    python benchmarks/extract.py [CLIP_OR_FOLDER ...] [--frames 32] [--repeats 3] [--extractors LIST]
    python benchmarks/extract.py --scaling 24

The stage run defaults to the clips in ../shared/data/pyfeat-samples plus a 12-second 30 fps 640x360 h264/aac clip
made from the first 12 s of WolfgangLanger_Pexels.mp4 (benchmarks/out/clip12s_30fps_640x360.mp4); on a clone without
../shared it says so and exits with code 2: name clips instead (e.g. the bundled takes,
src/viper/demo_data/ravdess-actor05). Medians of `--repeats` per stage; the decode stage alone (the N frames plus
the audio read) is the lower bound. Model loading, with the sessions' first use, is timed once, apart from per-clip
work (an untimed first pass over the first clip).
`--scaling K` instead runs `viper.extract` as whole processes on K copies of the 12-second clip with 1 and 2
workers and with batches of 8 clips across videos: seconds, clips/s, speed-up, the peak memory of each worker
process, and the steady state without start-up (from a second run on a third as many copies).

With the documented settings (no clips named, --frames 32, --repeats 3, the default extractors; --scaling 24) the
tables are recorded as the figures `extract-stages` and `extract-workers` (docs/figures/*.json, shown in
docs/speed.md); any other run only prints.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import figures
from shared_data import needs

from viper.extraction import DEFAULT_EXTRACTORS, ExtractConfig, Extraction
from viper.sampled_video import sample_video
from viper.video import VIDEO_SUFFIXES, read_audio, read_frames

PYFEAT = "data/pyfeat-samples"  # in ../shared
OUT = Path(__file__).resolve().parent / "out"
FRAMES, REPEATS, SCALING = 32, 3, 24  # the documented settings: only these are recorded
# what the stage run measures: decoding, face detection and crops, the extractors, their networks and runtimes
STAGES_MEASURE = ["src/viper/extraction.py", "src/viper/video.py", "src/viper/sampled_video.py",
                  "src/viper/audio_track.py", "src/viper/faces.py", "src/viper/face_detectors", "src/viper/extractors",
                  "src/viper/backbones", "src/viper/assets", "src/viper/runtime.py"]
WORKERS_MEASURE = [*STAGES_MEASURE, "src/viper/jobs/extract.py", "src/viper/settings.py", "src/viper/store.py"]


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


def one_pass(extraction: Extraction, path: Path, frames: int):
    """Seconds of each stage on one clip, and the clip: `face` is `sample_video` (decode + detection + crops)
    less the decode alone."""
    seconds = {}
    _, seconds["decode"] = timed(decode_only, path, frames)
    clip, whole = timed(sample_video, path, frames, extraction.detector)
    seconds["face"] = max(0.0, whole - seconds["decode"])
    for extractor in extraction.extractors:
        _, seconds[extractor.name] = timed(extractor.extract, clip)
    return seconds, clip


def describe(path: Path, clip) -> str:
    """Length, frame rate, size and codec: what the decode bound depends on."""
    import av

    with av.open(str(path)) as reader:
        codec = reader.streams.video[0].codec_context.name
    height, width = clip.frames[0].shape[:2]
    return f"{clip.duration:.1f} s, {clip.fps:.0f} fps, {width}×{height} {codec}"


def stages(args: argparse.Namespace, extractors: list[str]) -> None:
    """The median seconds of each stage per clip, model loading apart; recorded with the documented settings."""
    clips = clips_from(args.clips)
    began = figures.begin()
    extraction = Extraction(ExtractConfig(frames=args.frames, extractors=extractors))
    _, load_seconds = timed(extraction.load)
    _, first_pass = timed(one_pass, extraction, clips[0], args.frames)  # sessions are made on first use
    names = ["decode", "face", *[extractor.name for extractor in extraction.extractors]]
    print(f"{'clip':32s} " + " ".join(f"{stage:>18s}" for stage in names) + f" {'total':>8s} {'faces':>6s}")
    rows = []
    for path in clips:
        runs = [one_pass(extraction, path, args.frames) for _ in range(args.repeats)]
        medians = {stage: statistics.median(seconds[stage] for seconds, _ in runs) for stage in names}
        clip, total = runs[-1][1], sum(medians.values())
        faces = f"{int(clip.face_mask.sum())}/{clip.n}"
        rows.append({"clip": path.name, "video": describe(path, clip), **medians, "total": total,
                     "ratio": total / medians["decode"], "faces": faces})
        print(f"{path.name[:32]:32s} " + " ".join(f"{medians[s]:18.3f}" for s in names) + f" {total:8.3f} {faces:>6s}")
    loading = load_seconds + first_pass - rows[0]["total"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    summary = (f"model loading and first use {loading:.2f} s once per process; peak memory (max RSS) {peak:.2f} GB; "
               f"medians of {args.repeats} runs, seconds per clip")
    print(summary)
    if args.clips or args.frames != FRAMES or args.repeats != REPEATS or extractors != list(DEFAULT_EXTRACTORS):
        print("not recorded as a figure: not the documented settings")
        return
    from viper.runtime import choose

    figures.record("extract-stages", rows, began=began, measures=STAGES_MEASURE,
                   columns=[("clip", "clip"), ("video", "video"),
                            *[(stage, stage, "{:.3f}") for stage in names], ("total", "total", "{:.3f}"),
                            ("ratio", "× decode", "{:.1f}"), ("faces", "faces")],
                   notes=f"N = {args.frames}, the default extractors, runtime {choose('cpu')}; {summary}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="*")
    parser.add_argument("--frames", type=int, default=FRAMES)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--extractors", default=",".join(DEFAULT_EXTRACTORS))
    parser.add_argument("--scaling", type=int, default=0, help="copies of the 12-second clip for the workers run")
    args = parser.parse_args()
    extractors = args.extractors.split(",")
    if args.scaling:
        scaling(args.scaling, args.frames, extractors)
    else:
        stages(args, extractors)


@dataclass
class WholeRun:
    """One `viper.extract` process: its wall time and the peak RSS of its largest process."""

    seconds: float
    peak_mb: float


def scaling(copies: int, frames: int, extractors: list[str]) -> None:
    """Throughput of whole `viper.extract` runs (process start and model loading included) on copies of the
    12-second clip, and the steady state without start-up: the extra seconds per extra clip between a run of a
    third as many copies and the full run."""
    import os

    clip = make_12s_clip()
    small = max(1, copies // 3)
    began = figures.begin()
    print(f"{copies} copies of {clip.name}, whole `viper.extract` runs (model loading included):")
    print(f"{'workers':>7s} {'batch':>5s} {'seconds':>8s} {'clips/s':>8s} {'speed-up':>8s} {'peak RSS/worker':>16s} "
          f"{'steady s/clip':>14s}")
    rows, base = [], None
    for workers, batch in ((1, 1), (2, 1), (1, 8)):
        full = whole_run(clip, copies, frames, extractors, workers, batch)
        fewer = whole_run(clip, small, frames, extractors, workers, batch)
        base = base or full.seconds
        steady = (full.seconds - fewer.seconds) / (copies - small) if copies > small else None
        rows.append({"workers": workers, "batch": batch, "seconds": full.seconds, "rate": copies / full.seconds,
                     "speed-up": base / full.seconds, "peak": full.peak_mb / 1024, "steady": steady})
        print(f"{workers:7d} {batch:5d} {full.seconds:8.1f} {copies / full.seconds:8.2f} {base / full.seconds:8.2f} "
              f"{full.peak_mb:13.0f} MB " + ("" if steady is None else f"{steady:14.2f}"))
    if copies != SCALING or frames != FRAMES or extractors != list(DEFAULT_EXTRACTORS):
        print("not recorded as a figure: not the documented settings")
        return
    cores = os.cpu_count() or 1
    figures.record("extract-workers", rows, began=began, measures=WORKERS_MEASURE,
                   columns=[("workers", "workers"), ("batch", "batch-videos"), ("seconds", "seconds", "{:.1f}"),
                            ("rate", "clips/s", "{:.2f}"), ("speed-up", "speed-up", "{:.2f}×"),
                            ("peak", "peak RSS per worker", "{:.2f} GB"),
                            ("steady", "steady state, s per clip", "{:.2f}")],
                   notes=f"{copies} copies of {clip.name}, N = {frames}, the default extractors; whole processes, "
                         f"start-up and model loading included, one run each; steady state: the extra seconds per "
                         f"extra clip over a run of {small} copies; {cores} cores shared by the workers' threads")


def whole_run(clip: Path, copies: int, frames: int, extractors: list[str], workers: int, batch: int) -> WholeRun:
    """One `viper.extract` of `copies` copies in a fresh process: its seconds and the peak RSS (MB) of its largest
    process (its own VmHWM: ru_maxrss would carry this benchmark's peak across fork + exec; workers: ru_maxrss of
    children)."""
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
    return WholeRun(float(output[-2]), float(output[-1]))


if __name__ == "__main__":
    main()
