"""Wall time of `viper extract` on the same clips: in process, the local process pool, and Ray actors.

    python benchmarks/ray_extract.py [--clips 4,16] [--frames 32] [--workers 2]

For each clip count, takes the first CLIPS bundled RAVDESS demo clips and extracts them three ways, each a whole
`viper extract` process (this checkout's) writing into an empty store, so each time includes its own start-up
(imports, model loading; for Ray also starting a local instance and its actors, the summary's "ready in", shown
apart). With the default settings the table is recorded as the figure `ray-extract` (docs/figures/ray-extract.json,
rendered into docs/ray.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import figures

from viper.jobs.demo import demo_clips

SRC = Path(__file__).resolve().parents[1] / "src"
# what the three runs execute: the job, its Ray backend, and the extraction each worker holds
MEASURES = ["src/viper/jobs/extract.py", "src/viper/jobs/extract_ray.py", "src/viper/extraction.py",
            "src/viper/extractors"]
READY = re.compile(r"ready in ([\d.]+) s")
DONE = re.compile(r"videos done (\d+)")


@dataclasses.dataclass
class Row:
    """One clip count: each way's wall time, and how long Ray took from its start to every actor up."""

    clips: int
    in_process: float
    pool: float
    ray: float
    ray_ready: float | None


def measure(clips: int, args: argparse.Namespace, work: Path) -> Row:
    """The first `clips` bundled clips, extracted each way by its own process into its own empty store."""
    folder = work / f"clips-{clips}"
    folder.mkdir()
    for path in sorted(demo_clips().glob("*.mp4"))[:clips]:
        shutil.copy(path, folder / path.name)
    workers = ["--workers", str(args.workers)]
    runs = {
        "in process (--workers 1)": ("in_process", ["--workers", "1"]),
        f"local pool (--workers {args.workers})": ("pool", workers),
        f"ray, local instance (--workers {args.workers})": ("ray", [*workers, "--backend", "ray"]),
    }
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    seconds, ready = {}, None
    for name, (key, flags) in runs.items():
        command = [sys.executable, "-m", "viper", "extract", str(folder), "--out", str(work / f"{key}-{clips}"),
                   "--frames", str(args.frames), *flags]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        seconds[key] = time.perf_counter() - started
        output = done.stdout + done.stderr
        extracted = DONE.search(output)
        if done.returncode or not extracted or int(extracted[1]) != clips:  # a timing of fewer clips is no timing
            sys.exit(f"{name}: not all {clips} clips extracted (exit {done.returncode}):\n{output[-2000:]}")
        if found := READY.search(output):
            ready = float(found[1])
        note = f"  [Ray ready in {found[1]} s]" if found else ""
        print(f"{name:40s} {clips} clips in {seconds[key]:5.1f} s = {clips / seconds[key]:.2f} clips/s{note}",
              flush=True)
    return Row(clips, seconds["in_process"], seconds["pool"], seconds["ray"], ready)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", default="4,16", help="comma-separated clip counts, each a row")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args, defaults = parser.parse_args(), parser.parse_args([])
    began = figures.begin()
    with tempfile.TemporaryDirectory() as work:
        rows = [measure(int(clips), args, Path(work)) for clips in args.clips.split(",")]
    if vars(args) != vars(defaults):
        print("not recorded as a figure: a variant of the default settings")
        return
    workers = f"`--workers {args.workers}`"
    figures.record("ray-extract", [dataclasses.asdict(row) for row in rows], began=began, measures=MEASURES,
                   columns=[("clips", "clips"), ("in_process", "in process (`--workers 1`)", "{:.1f} s"),
                            ("pool", f"local pool ({workers})", "{:.1f} s"),
                            ("ray", f"Ray, local instance ({workers})", "{:.1f} s"),
                            ("ray_ready", "of which Ray ready in", "{:.1f} s")],
                   notes=f"bundled RAVDESS clips, N = {args.frames}; each run a whole `viper extract` process "
                         "into an empty store, start-up included; Ray ready in: from starting the local instance "
                         "to every actor up with viper imported")


if __name__ == "__main__":
    main()
