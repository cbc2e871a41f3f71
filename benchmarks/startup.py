"""Start-up of `viper predict` on one 12-second clip as a whole process, against a process that only decodes it.

    python benchmarks/startup.py [--clip CLIP] [--checkpoint RUN] [--general] [--runtime onnx --runtime torch]
                                 [--repeats 5] [--src SRC ...] [--importtime]

Alternates, `--repeats` times each, (i) `python -m viper predict CLIP --checkpoint RUN` and (ii) a Python process
that only decodes the clip's N sampled frames and its audio with `viper.video` (numpy and PyAV; no torch), and prints
the median wall time of each, their ratio and the load average. Each `--src` (a folder holding the `viper` package,
e.g. another checkout's `src`) adds its own predict command to the same alternation, so before and after share one
run and one load; give one `--checkpoint` per `--src` when their extractors differ (with one checkpoint, their
scores are compared too). `--general` adds each source's `predict CLIP` with the general model (no checkpoint);
each `--runtime` (onnx, torch) adds `--runtime NAME` variants of every predict command instead of the automatic
choice, so both runtimes share one run and one load, and their scores are compared.

The clip defaults to the 12-second reference clip of benchmarks/extract.py; the checkpoint to a demo-style run (the
four default modalities, N = 32) trained for 2 epochs on 4 bundled clips, made once under benchmarks/out/.
`--importtime` prints, for the predict command, the top 20 entries of `python -X importtime` by cumulative time and
the import time by package (what viper's own modules pull in, apart): where start-up goes, and what to cut.
Without it, the table is recorded as the figure `startup` (docs/figures/startup.json, rendered into docs/speed.md).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import figures
from extract import OUT, make_12s_clip

WHAT = {"checkpoint": "`viper predict --checkpoint RUN`", "general": "`viper predict` (the general model)"}
SRC = Path(__file__).resolve().parents[1] / "src"
# what a `viper predict` process runs: its CLI, job, decoding, extractors, networks and their weights, runtimes
MEASURES = ["src/viper/cli", "src/viper/jobs/predict.py", "src/viper/jobs/clip_prediction.py",
            "src/viper/extraction.py", "src/viper/extractors", "src/viper/backbones", "src/viper/face_detectors",
            "src/viper/assets", "src/viper/video.py", "src/viper/sampled_video.py", "src/viper/audio_track.py",
            "src/viper/faces.py", "src/viper/face_choice.py", "src/viper/general_model.py", "src/viper/checkpoint.py",
            "src/viper/fusion_onnx.py", "src/viper/runtime.py"]
DECODE_ONLY = ("import sys; from viper.video import read_audio, read_frames; "
               "read_frames(sys.argv[1], int(sys.argv[2])); read_audio(sys.argv[1])")


def demo_style_run(frames: int = 32) -> Path:
    """A real checkpoint with every default extractor, cheap to make: what `viper predict` loads is what counts."""
    import shutil

    from viper.datasets.ravdess import write_ravdess_manifest
    from viper.jobs.demo import demo_clips
    from viper.jobs.extract import extract
    from viper.jobs.train import TrainConfig, train

    out = OUT / f"startup-run-n{frames}"
    if (out / "run" / "best.pt").exists():
        return out / "run"
    clips = out / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    for name in ("01-01-03-02-01-01-05.mp4", "01-01-04-02-01-01-05.mp4",  # happy, sad: statement 01 (train)
                 "01-01-03-02-02-01-05.mp4", "01-01-04-02-02-01-05.mp4"):  # statement 02 (test)
        shutil.copy(demo_clips() / name, clips / name)
    write_ravdess_manifest(clips, out / "manifest.csv")
    extract(out / "manifest.csv", out / "store", frames=frames)
    train(out / "store", out / "run", TrainConfig(epochs=2, lr=1e-3, batch_size=4, device="cpu",
                                                  allow_shared_people=True))  # one actor: start-up is measured
    return out / "run"


def run(command: list[str], src: Path, *flags: str) -> subprocess.CompletedProcess:
    """One whole process with `src` as its viper; it must succeed."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, *flags, *command], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def import_rows(stderr: str) -> list[tuple[int, str, int, int]]:
    """(depth, module, self us, cumulative us) of `-X importtime` output, parents after their children."""
    rows = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "[us]" not in line:
            own, cumulative, name = line.removeprefix("import time:").split("|")
            depth = (len(name) - len(name.lstrip()) - 1) // 2
            rows.append((depth, name.strip(), int(own), int(cumulative)))
    return rows


def by_package(rows: list[tuple[int, str, int, int]]) -> Counter:
    """Microseconds per top-level package: what viper imports, whole (cumulative), and viper's own modules' self
    time, so `torch` shows as torch rather than inside the viper module that imported it."""
    totals: Counter = Counter()
    ancestors: list[str] = []
    for depth, name, own, cumulative in reversed(rows):  # reversed: every parent before its children
        del ancestors[depth:]
        package = name.split(".")[0]
        if package == "viper":
            totals[package] += own
        elif all(parent.split(".")[0] == "viper" for parent in ancestors):
            totals[package] += cumulative
        ancestors.append(name)
    return totals


def print_import_times(command: list[str], src: Path) -> None:
    rows = import_rows(run(command, src, "-X", "importtime").stderr)
    print(f"python -X importtime -m viper predict ({src}): top 20 by cumulative ms (self ms)")
    for _, name, own, cumulative in sorted(rows, key=lambda row: -row[3])[:20]:
        print(f"{cumulative / 1000:9.1f} {own / 1000:8.1f}  {name}")
    totals = by_package(rows)
    print(f"by package, ms (total {sum(totals.values()) / 1000:.0f}): "
          + ", ".join(f"{name} {us / 1000:.0f}" for name, us in totals.most_common(12)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path)
    parser.add_argument("--checkpoint", type=Path, action="append", help="one, or one per --src")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--src", type=Path, action="append", help="viper source folder(s); default this checkout's")
    parser.add_argument("--general", action="store_true", help="also predict with the general model")
    parser.add_argument("--runtime", action="append", choices=("onnx", "torch"), help="one or both; default automatic")
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()

    clip = args.clip or make_12s_clip()
    sources = args.src or [SRC]
    checkpoints = args.checkpoint or [demo_style_run()]
    if len(checkpoints) == 1:
        checkpoints *= len(sources)
    if len(checkpoints) != len(sources):
        parser.error("give one --checkpoint, or one per --src")
    models = {src: [("checkpoint", ["--checkpoint", str(run_)])] + [("general", [])] * args.general
              for src, run_ in zip(sources, checkpoints, strict=True)}
    runtimes = [(f", {name}", ["--runtime", name]) for name in args.runtime or ()] or [("", [])]
    predicts = {(src, model, label): ["-m", "viper", "predict", str(clip), *flags, *runtime_flags]
                for src, options in models.items() for model, flags in options for label, runtime_flags in runtimes}
    if args.importtime:
        for (src, _, _), command in predicts.items():
            print_import_times(command, src)
        return

    from viper.checkpoint import load_checkpoint

    began = figures.begin()
    frames = load_checkpoint(checkpoints[0]).n_frames
    commands = {"decode only": (["-c", DECODE_ONLY, str(clip), str(frames)], SRC)}
    commands |= {f"{WHAT[model]}{label}" + (f" ({src})" if len(sources) > 1 else ""): (command, src)
                 for (src, model, label), command in predicts.items()}
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    outputs: dict[str, str] = {}
    for _ in range(args.repeats):
        for name, (command, src) in commands.items():
            started, used = time.perf_counter(), cpu_of_children()
            outputs[name] = run(command, src).stdout
            seconds[name].append(time.perf_counter() - started)
            cpu[name].append(cpu_of_children() - used)
    base = statistics.median(seconds["decode only"])
    print(f"{clip.name}, N = {frames}; whole processes, medians of {args.repeats}, alternated "
          "(CPU: user + system seconds, less sensitive to other processes than wall time):")
    rows = [{"process": name, "wall": statistics.median(values), "ratio": statistics.median(values) / base,
             "cpu": statistics.median(cpu[name]), "fastest": min(values), "slowest": max(values)}
            for name, values in seconds.items()]
    for row in rows:
        print(f"{row['process']:60s} {row['wall'] * 1000:7.0f} ms  {row['ratio']:5.2f}x  "
              f"(min {row['fastest'] * 1000:.0f}, max {row['slowest'] * 1000:.0f})  CPU {row['cpu']:.2f} s")
    for model, what in WHAT.items():
        same = [name for name in outputs if name.startswith(what)]
        if len(same) > 1 and len(set(checkpoints)) == 1:
            scores = {outputs[name].strip() for name in same}
            print(f"{model}: scores identical across {len(same)} commands" if len(scores) == 1
                  else f"{model}: scores DIFFER:\n" + "\n".join(scores))
    run_ = ", ".join(map(str, checkpoints)) if args.checkpoint else "a demo-style run of every default extractor"
    figures.record("startup", rows, began=began, measures=MEASURES,
                   columns=[("process", "whole process"), ("wall", "wall (median)", "{:.2f} s"),
                            ("ratio", "× decode only", "{:.2f}"), ("cpu", "CPU (median)", "{:.2f} s"),
                            ("fastest", "fastest", "{:.2f} s"), ("slowest", "slowest", "{:.2f} s")],
                   notes=f"{clip.name}, N = {frames}, RUN = {run_}; whole processes alternated, medians of "
                         f"{args.repeats}; CPU is user + system time")


if __name__ == "__main__":
    main()
