"""Wall time of `viper extract` on the same clips: in process, the local process pool, and Ray actors.

    python benchmarks/ray_extract.py [--clips 4] [--frames 32] [--workers 2]

Takes the first CLIPS bundled RAVDESS demo clips; every run starts from an empty store, so each includes its
own start-up (model loading; for Ray also starting a local instance, whose time is printed apart).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from viper.jobs.extract import extract

DEMO = Path(__file__).resolve().parents[1] / "src" / "viper" / "demo_data" / "ravdess-actor05"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "clips"
        folder.mkdir()
        for path in sorted(DEMO.glob("*.mp4"))[: args.clips]:
            shutil.copy(path, folder / path.name)
        runs = {
            "in process (--workers 1)": {"workers": 1},
            f"local pool (--workers {args.workers})": {"workers": args.workers},
            f"ray, local instance (--workers {args.workers})": {"workers": args.workers, "backend": "ray"},
        }
        for name, settings in runs.items():
            started = time.perf_counter()
            summary = extract(folder, Path(work) / name.split()[0], frames=args.frames, **settings)
            seconds = time.perf_counter() - started
            note = f"  [{summary.where}]" if summary.where else ""
            print(f"{name:40s} {summary.done} clips in {seconds:5.1f} s = {summary.done / seconds:.2f} clips/s{note}")


if __name__ == "__main__":
    main()
