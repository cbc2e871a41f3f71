"""Convert Google's Face Landmarker bundle (face_landmarker.task) into the npz weights viper's PyTorch face stack loads.

Dev-time only: needs the pure-Python `tflite` flatbuffer package (`pip install tflite`), which viper itself never
imports. The .task is a zip of three TFLite models; for each, every floating-point constant tensor is written as
float32 (fp16 ones dequantised) under its TFLite tensor name, in TFLite's layout (conv kernels OHWI, depthwise
kernels 1HWC): the PyTorch modules transpose at load, so the npz stays a faithful copy of the flatbuffer. Integer
constants (paddings, reshape shapes) are graph structure, which the modules spell out, and are not written.

    python scripts/convert_face_landmarker.py [path/to/face_landmarker.task]
"""

from __future__ import annotations

import argparse
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import tflite

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TASK = REPO.parent / "shared" / "models" / "mediapipe-face-landmarker" / "face_landmarker.task"
OUT = REPO / "src" / "viper" / "assets" / "face_landmarker"
MODELS = ("face_detector", "face_landmarks_detector", "face_blendshapes")
FLOAT_TYPES = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16}

LICENSE = """\
The files in this folder are weights converted from Google's MediaPipe Face Landmarker model bundle
(face_landmarker.task: BlazeFace short-range face detector, Face Mesh v2 landmark model, face blendshapes model).

Copyright Google LLC. Licensed under the Apache License, Version 2.0 (the "License"); you may not use these files
except in compliance with the License. You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software distributed under the License is distributed
on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the License for
the specific language governing permissions and limitations under the License.

Origin: https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task
(model card: https://storage.googleapis.com/mediapipe-assets/MediaPipe%20BlazeFace%20Model%20Card%20(Short%20Range).pdf
and https://developers.google.com/mediapipe/solutions/vision/face_landmarker).
sha256 of the converted face_landmarker.task: {sha256}

Modification: the float16 constant tensors of each .tflite model were dequantised to float32 and stored, under
their TFLite tensor names, in {models}.npz by viper's scripts/convert_face_landmarker.py.
"""


def float_constants(flatbuffer: bytes) -> dict[str, np.ndarray]:
    """Every floating-point constant of the model's main graph, as float32, keyed by tensor name."""
    model = tflite.Model.GetRootAsModel(flatbuffer, 0)
    graph = model.Subgraphs(0)
    weights = {}
    for index in range(graph.TensorsLength()):
        tensor = graph.Tensors(index)
        data = model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int) or tensor.Type() not in FLOAT_TYPES:
            continue  # no data (an activation) or an integer constant
        shape = tuple(tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()
        array = np.frombuffer(data.tobytes(), FLOAT_TYPES[tensor.Type()]).reshape(shape)
        weights[tensor.Name().decode()] = array.astype(np.float32)
    return weights


def convert(task: Path, out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(task) as bundle:
        for name in MODELS:
            weights = float_constants(bundle.read(f"{name}.tflite"))
            path = out / f"{name}.npz"
            np.savez_compressed(path, **weights)
            count = sum(array.size for array in weights.values())
            print(f"wrote {path.relative_to(REPO)}: {len(weights)} tensors, {count:,} weights, "
                  f"{path.stat().st_size / 1e6:.2f} MB")
            written.append(path)
    sha256 = hashlib.sha256(task.read_bytes()).hexdigest()
    license_path = out / "LICENSE.txt"
    license_path.write_text(LICENSE.format(sha256=sha256, models=", ".join(MODELS)))
    print(f"wrote {license_path.relative_to(REPO)} (Apache-2.0, sha256 {sha256[:12]}...)")
    return [*written, license_path]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", type=Path, nargs="?", default=DEFAULT_TASK, help="the face_landmarker.task bundle")
    convert(parser.parse_args(argv).task)


if __name__ == "__main__":
    main()
