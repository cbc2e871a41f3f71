"""viper's PyTorch ports of face-api.js's expression and recognition nets against the real library on TensorFlow.js
(node, pure-JS CPU backend): how closely they agree on real faces, and how long each takes per face.

    python benchmarks/face_api_parity.py [--frames 1] [--threads 1] [--batch 32]

Faces: the detector's box of `--frames` frames of every bundled actor-05 take (60 takes), as the parity test cuts
them. Needs node and npm (the reference installs once from tests/tfjs_reference's lockfile, see the test). Prints
face-api.js's preprocessing against `prepare` (max abs diff of the pixel values), then per net the max abs diff of
the outputs (probabilities, descriptors), argmax agreement (expression) or the largest change of a pairwise
descriptor distance (recognition), and ms per face: PyTorch's classify/describe on `--batch` faces at once (the
share of `prepare` in it too), and TensorFlow.js's net (one batched forward of all faces, prepared).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from viper.backbones import face_api_expression as expression
from viper.backbones import face_api_recognition as recognition
from viper.jobs.demo import demo_clips

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from shared_data import stop  # noqa: E402
from test_face_api_js import (  # noqa: E402
    SIZES,
    MissingReference,
    reference_modules,
    run_tfjs,
    take_faces,
    torch_outputs,
)

RUN = {"expression": expression.classify, "recognition": recognition.describe}


def best_ms(run, count: int, repeats: int = 3) -> float:
    """Best of `repeats` runs after a warm-up, in ms per item."""
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return 1000 * best / count


def pairwise(descriptors: np.ndarray) -> np.ndarray:
    return np.linalg.norm(descriptors[:, None] - descriptors[None], axis=-1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1, help="frames sampled per take")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--batch", type=int, default=32, help="faces per PyTorch forward in the timing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        reference_modules()  # node, npm and the reference's packages (installed once), before any face is cut
    except MissingReference as missing:
        stop(f"needs face-api.js on TensorFlow.js in node, the reference it compares against: {missing}")
    names = [path.name for path in sorted(demo_clips().glob("*.mp4"))]
    faces = [face for clip in take_faces(names, args.frames).values() for face in clip]
    print(f"{len(faces)} faces from {len(names)} takes, torch threads {args.threads}")
    with tempfile.TemporaryDirectory() as folder:
        reference = run_tfjs(faces, Path(folder))
    run = reference["run"]
    print(f"reference: @vladmandic/face-api {run['faceapi']}, TensorFlow.js {run['tfjs']}, backend {run['backend']}")
    ours = torch_outputs(faces)
    batch = (faces * (args.batch // len(faces) + 1))[: args.batch]
    for net, size in SIZES.items():
        prepared = expression.prepare(faces, size).transpose(0, 2, 3, 1)
        diff = np.abs(ours[net] - reference[f"{net}_out"]).max()
        if net == "expression":
            agreement = f"same class {np.mean(ours[net].argmax(1) == reference[f'{net}_out'].argmax(1)):.1%}"
        else:
            change = np.abs(pairwise(ours[net]) - pairwise(reference[f"{net}_out"])).max()
            agreement = f"pairwise distances change by at most {change:.1e}"
        run_net = RUN[net]
        total_ms = best_ms(lambda: run_net(batch, batch_size=len(batch)), len(batch))  # noqa: B023 (called here)
        prepare_ms = best_ms(lambda: expression.prepare(batch, size), len(batch))  # noqa: B023
        print(f"{net}: preprocessing max |diff| {np.abs(prepared - reference[f'{net}_batch']).max():.1e}; "
              f"outputs max |diff| {diff:.1e}, {agreement}; ms per face: PyTorch {total_ms:.2f} (of which "
              f"{prepare_ms:.2f} prepare; batch {len(batch)}), TensorFlow.js {run[f'{net}_ms_per_face']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
