"""Convert face-api.js's expression and recognition networks (TensorFlow.js weights) into viper/assets, once.

Dev-time only; TensorFlow.js is never needed. Each network's `*-weights_manifest.json` lists its tensors in the
order they lie in the `.bin` file, with shape and, for most, uint8 quantisation: a tensor is read and
dequantised as TensorFlow.js's io.decodeWeights does (q * scale + min in float64, stored as float32), moved from
TensorFlow's layouts to PyTorch's (conv filters HWIO -> OIHW, depthwise HWC1 -> C1HW, dense (in, out) -> (out,
in)) and written under the state_dict names of viper.backbones.face_api_expression_net.FaceExpressionNet and
face_api_recognition_net.FaceRecognitionNet. Storage is float32: dequantised weights sit on a grid float16 cannot
hold, which would move the outputs by ~1e-4. The check loads both files into the modules strictly.

Parity with TensorFlow.js running the original files: tests/test_face_api_js.py, benchmarks/face_api_parity.py.

    python scripts/convert_face_api_js.py [path/to/weights]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "models" / "face-api-js"
ASSETS = REPO / "src" / "viper" / "assets"
NETS = {"face_expression_model": ASSETS / "face_api_expression.npz",
        "face_recognition_model": ASSETS / "face_api_recognition.npz"}
LICENSE_OUT = ASSETS / "FACE_API_JS_LICENSE.txt"
DTYPES = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8, "uint16": np.uint16}

HEADER = """\
face_api_expression.npz and face_api_recognition.npz: the weights of face-api.js's FaceExpressionNet (7 facial
expressions) and FaceRecognitionNet (128-d face descriptors).

face-api.js by Vincent Mühler (https://github.com/justadudewhohacks/face-api.js, MIT), taken from its maintained
fork @vladmandic/face-api 1.7.15 on npm (https://github.com/vladmandic/face-api, folder model/; its licence
follows). The face recognition network and its weights are Davis King's for dlib
(https://github.com/davisking/dlib, examples/dnn_face_recognition_ex.cpp), released by their author for free use
and ported to TensorFlow.js by face-api.js.

Converted from:
{sources}
Modification: viper's scripts/convert_face_api_js.py dequantised the uint8 tensors (q * scale + min, as
TensorFlow.js loads them), stored all {count} tensors as float32 in PyTorch's layouts under PyTorch state_dict
names. Nothing was retrained.

-------------------------------------------------------------------------------
"""


def read_weights(folder: Path, name: str) -> dict[str, np.ndarray]:
    """A TensorFlow.js weights manifest's tensors, in its names and layouts, float32 as TensorFlow.js loads them."""
    manifest = json.loads((folder / f"{name}-weights_manifest.json").read_text())
    tensors = {}
    for group in manifest:
        blob = b"".join((folder / path).read_bytes() for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            quantization = spec.get("quantization")
            dtype = np.dtype(DTYPES[quantization["dtype"] if quantization else spec["dtype"]])
            count = int(np.prod(spec["shape"], dtype=np.int64))
            values = np.frombuffer(blob, dtype, count, offset)
            offset += count * dtype.itemsize
            if quantization:
                values = values * np.float64(quantization["scale"]) + np.float64(quantization["min"])
            tensors[spec["name"]] = values.astype(np.float32).reshape(spec["shape"])
        if offset != len(blob):
            raise ValueError(f"{name}: {len(blob) - offset} bytes left over after the manifest's tensors")
    return tensors


RENAMES = (("_filter", "/weight"), ("/filters", "/weight"), ("/weights", "/weight"), ("/biases", "/bias"))


def torch_name(net: str, name: str) -> str:
    """A face-api.js tensor name -> the state_dict name in viper's module, which keeps face-api.js's names."""
    if net == "face_recognition_model" and name == "fc":
        return "fc.weight"
    if net == "face_recognition_model" and not name.startswith("conv32_down/"):
        name = f"blocks/{name}"
    separable = net == "face_expression_model" and not name.startswith(("dense0/conv0/", "fc/"))
    if separable and name.endswith("/bias"):  # tf.separableConv2d's bias is added after the pointwise conv
        name = name.replace("/bias", "/pointwise/bias")
    for old, new in RENAMES:
        name = name.replace(old, new)
    return name.replace("/", ".")


def torch_layout(name: str, value: np.ndarray) -> np.ndarray:
    """TensorFlow layout -> PyTorch's: conv HWIO -> OIHW, depthwise HWC1 -> C1HW, dense (in, out) -> (out, in)."""
    if value.ndim == 4:
        value = value.transpose(2, 3, 0, 1) if "depthwise" in name else value.transpose(3, 2, 0, 1)
    elif value.ndim == 2:
        value = value.T
    return np.ascontiguousarray(value, dtype=np.float32)


def state_dict(folder: Path, net: str) -> dict[str, np.ndarray]:
    return {torch_name(net, name): torch_layout(name, value) for name, value in read_weights(folder, net).items()}


def check(outputs: dict[str, Path]) -> None:
    """Each file fills its module exactly (viper's loader rejects a missing or extra array)."""
    from viper.backbones import load_weights
    from viper.backbones.face_api_expression_net import FaceExpressionNet
    from viper.backbones.face_api_recognition_net import FaceRecognitionNet

    models = {"face_expression_model": FaceExpressionNet(), "face_recognition_model": FaceRecognitionNet()}
    for net, model in models.items():
        load_weights(model, outputs[net])
        print(f"{outputs[net].name} loads into {type(model).__name__}: "
              f"{sum(p.numel() for p in model.parameters()):,} parameters")


def convert(folder: Path, outputs: dict[str, Path] = NETS, license_out: Path = LICENSE_OUT,
            licence: Path = SOURCE / "LICENSE") -> None:
    sources, count = [], 0
    for net, out in outputs.items():
        state = state_dict(folder, net)
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, **state)
        count += len(state)
        size = sum(array.size for array in state.values())
        print(f"wrote {out}: {len(state)} arrays, {size:,} weights, {out.stat().st_size / 1e6:.2f} MB")
        sha = hashlib.sha256((folder / f"{net}.bin").read_bytes()).hexdigest()
        sources.append(f"  {net}.bin sha256 {sha} (and {net}-weights_manifest.json)")
    license_out.write_text(HEADER.format(sources="\n".join(sources), count=count) + licence.read_text())
    print(f"wrote {license_out} (MIT)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, nargs="?", default=SOURCE / "weights",
                        help="folder of the manifests and .bin files (@vladmandic/face-api's model/)")
    parser.add_argument("--license", type=Path, default=SOURCE / "LICENSE", help="@vladmandic/face-api's LICENSE")
    args = parser.parse_args(argv)
    convert(args.weights, licence=args.license)
    check(NETS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
