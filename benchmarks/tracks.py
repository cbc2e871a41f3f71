"""Which person (viper.tracks): what a face descriptor costs, and how well descriptors tell people apart.

    python benchmarks/tracks.py [--faces 60]

- Descriptor milliseconds per face on 1 thread: `describe_faces` on frames of the bundled actor-05 takes (one face
  each, cut by face-api.js's rule), after a warm-up; and what a `Tracker.update` adds per frame.
- On ../shared/data/faces-cc-by/london (102 people, each neutral and smiling): each smile matched against the 102
  neutral faces: rank-1, the same-person match rate and the other-person false match rate at 0.5, 0.55 and 0.6.
- The gallery: a Tracker at each threshold fed the 102 neutral photos, then the 102 smiling ones, as frames of one
  recording (boxes never overlapping): how many tracks, how many people share a track with someone else, how many
  smiles join their own person. This is what tracks.THRESHOLD was chosen on.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
from shared_data import shared

REPO = Path(__file__).resolve().parents[1]
LONDON = shared("data/faces-cc-by/london")
THRESHOLDS = (0.5, 0.55, 0.6)


def descriptor_cost(faces: int) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from faces_media import take_frames

    from viper.faces import create_face_detector
    from viper.jobs.demo import demo_clips
    from viper.tracks import Tracker, describe_faces

    frames = [frame for take in sorted(demo_clips().glob("*.mp4"))[: (faces + 2) // 3]
              for frame in take_frames(take.name)[2::5]][:faces]
    detector = create_face_detector()
    found = detector.detect_all(frames)
    describe_faces(frames[:4], found[:4])  # load and warm up
    start = time.perf_counter()
    descriptors = describe_faces(frames, found)
    elapsed = time.perf_counter() - start
    count = sum(len(faces) for faces in found)
    Tracker().update([0.0, 0.1], found[:2], descriptors[:2])  # scipy's import
    start = time.perf_counter()
    Tracker().update([0.1 * i for i in range(len(frames))], found, descriptors)
    tracking = time.perf_counter() - start
    print(f"descriptor, 1 thread: {1000 * elapsed / count:.1f} ms per face ({count} faces in one call); "
          f"Tracker.update: {1000 * tracking / len(frames):.2f} ms per frame")


def london_descriptors() -> tuple[np.ndarray, np.ndarray]:
    """(102, 128) descriptors of the neutral and of the smiling photos, rows in the same people's order."""
    from PIL import Image

    from viper.faces import create_face_detector
    from viper.tracks import describe_faces

    photos = {(row["person"], row["emotion"]): LONDON / row["file"]
              for row in csv.DictReader(open(LONDON / "labels.csv"))}
    people = sorted({person for person, _ in photos})
    detector = create_face_detector()
    out = []
    for emotion in ("neutral", "happy"):
        frames = [np.asarray(Image.open(photos[person, emotion]).convert("RGB")) for person in people]
        faces = [found[:1] for found in detector.detect_all(frames)]
        if not all(faces):
            sys.exit(f"no face found on {sum(not found for found in faces)} {emotion} photos")
        out.append(np.concatenate(describe_faces(frames, faces)))
    return out[0], out[1]


def matching(neutral: np.ndarray, smiling: np.ndarray) -> None:
    from viper.tracks import pairwise

    distances = pairwise(smiling, neutral)
    same, other = np.diag(distances), distances[~np.eye(len(neutral), dtype=bool)]
    print(f"London, {len(neutral)} people, smile against every neutral face: rank-1 "
          f"{(distances.argmin(1) == np.arange(len(neutral))).mean():.3f}; same-person distance median "
          f"{np.median(same):.3f} max {same.max():.3f}, other-person min {other.min():.3f} "
          f"median {np.median(other):.3f}")
    for threshold in THRESHOLDS:
        print(f"  at {threshold}: same-person match {(same < threshold).mean():.3f}, other-person false match "
              f"{(other < threshold).mean():.4f} ({(other < threshold).sum()}/{other.size} pairs)")


def gallery(neutral: np.ndarray, smiling: np.ndarray) -> None:
    from viper.faces import Face
    from viper.tracks import Tracker

    people = len(neutral)
    faces = [[Face(box=(200.0 * (i % 2), 0.0, 200.0 * (i % 2) + 100, 100.0))] for i in range(2 * people)]
    descriptors = [row[None] for row in np.concatenate([neutral, smiling])]
    for threshold in THRESHOLDS:
        tracker = Tracker(threshold=threshold)
        tracked = tracker.update([float(i) for i in range(2 * people)], faces, descriptors)
        tracks = np.array([frame[0].track for frame in tracked])
        owners: dict[int, set[int]] = {}
        for person, track in zip([*range(people)] * 2, tracks, strict=True):
            owners.setdefault(int(track), set()).add(person)
        shared = [members for members in owners.values() if len(members) > 1]
        print(f"  gallery at {threshold}: {len(tracker.tracks)} tracks for {people} people, "
              f"{sum(map(len, shared))} people in {len(shared)} shared tracks, "
              f"smiles on their own person's track {(tracks[:people] == tracks[people:]).mean():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=60, help="faces timed for the descriptor cost")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    descriptor_cost(args.faces)
    if not LONDON.is_dir():
        print(f"{LONDON} is absent: no identity figures")
        return
    neutral, smiling = london_descriptors()
    matching(neutral, smiling)
    gallery(neutral, smiling)


if __name__ == "__main__":
    main()
