"""What `--faces main` costs over `--faces largest` in `viper predict` (the general model, 1 torch thread).

    python benchmarks/face_choice.py [--takes 60] [--rounds 2] [--extract]

- The bundled actor-05 takes (one face each): seconds per clip with each choice, rounds alternated (the best round
  kept), and the largest score difference between the two (0: one person gives the same scores).
- A two-person clip (tests/test_which_person.py's: actor 05 on 40 frames, Grace Hopper on 24) with main, all and
  largest: seconds per clip, and the descriptors computed (of 32 + 19 faces on the 32 sampled frames).
- With --extract: `viper extract` of the takes with the demo's extractors into a store per choice (main, the
  default, and largest): seconds each and the largest difference between their features (0: bit for bit).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(predictor, clips: list[Path]) -> tuple[float, list]:
    start = time.perf_counter()
    out = [prediction for clip in clips for prediction in predictor.score_people(clip, predictor.decode(clip))]
    return (time.perf_counter() - start) / len(clips), out


def two_people(folder: Path) -> Path:
    """The tests' two-person clip, written as mp4."""
    sys.path.insert(0, str(REPO / "tests"))
    from people_media import two_people_clip

    return two_people_clip(folder / "two_people.mp4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--takes", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--extract", action="store_true")
    args = parser.parse_args()
    import torch

    from viper.backbones import face_api_recognition
    from viper.jobs.demo import demo_clips
    from viper.jobs.predict import Predictor

    torch.set_num_threads(1)
    counted = []
    describe = face_api_recognition.describe

    def counting(faces, *rest, **options):
        counted.append(len(faces))
        return describe(faces, *rest, **options)

    face_api_recognition.describe = counting
    takes = sorted(demo_clips().glob("*.mp4"))[: args.takes]
    predictors = {faces: Predictor(faces=faces) for faces in ("largest", "main", "all")}
    for predictor in predictors.values():
        predictor.score_people(takes[0], predictor.decode(takes[0]))  # load and warm up
    best, scores = {}, {}
    for _ in range(args.rounds):
        for faces in ("largest", "main"):
            seconds, out = timed(predictors[faces], takes)
            best[faces] = min(best.get(faces, seconds), seconds)
            scores[faces] = out
    gap = max(abs(a.scores[k] - b.scores[k]) for a, b in zip(scores["largest"], scores["main"], strict=True)
              for k in a.scores)
    print(f"{len(takes)} takes, one face each: largest {best['largest']:.3f} s/clip, main {best['main']:.3f} s/clip "
          f"(+{100 * (best['main'] / best['largest'] - 1):.0f} %); largest score difference {gap:g}")
    with tempfile.TemporaryDirectory() as folder:
        clip = two_people(Path(folder))
        for faces in ("largest", "main", "all"):
            counted.clear()
            seconds = min(timed(predictors[faces], [clip])[0] for _ in range(args.rounds))
            print(f"two people: {faces} {seconds:.3f} s/clip, "
                  f"{sum(counted) // args.rounds} descriptors")
    if args.extract:
        stores(takes)


def stores(takes: list[Path]) -> None:
    """Extract the takes with each choice into its own store; print the time and the features' largest gap."""
    import numpy as np

    from viper.jobs.extract import extract
    from viper.store import FeatureStore

    with tempfile.TemporaryDirectory() as folder:
        videos = Path(folder) / "takes"
        videos.mkdir()
        for take in takes:
            (videos / take.name).symlink_to(take)
        made = {}
        for faces in ("largest", "main"):
            start = time.perf_counter()
            extract(videos, Path(folder) / faces, faces=faces)
            made[faces] = FeatureStore.open(Path(folder) / faces), time.perf_counter() - start
        (largest, largest_s), (main, main_s) = made["largest"], made["main"]
        gap = 0.0
        for key_l, key_m in zip(largest.extractor_keys(), main.extractor_keys(), strict=True):
            for video_id in largest.video_ids(key_l):
                (a, mask_a), (b, mask_b) = largest.read(key_l, video_id), main.read(key_m, video_id)
                gap = max(gap, float(np.abs(a - b).max(initial=0)), float((mask_a != mask_b).sum()))
        print(f"extract {len(takes)} takes: largest {largest_s:.1f} s, main {main_s:.1f} s "
              f"(+{100 * (main_s / largest_s - 1):.0f} %); largest feature difference {gap:g}")


if __name__ == "__main__":
    main()
