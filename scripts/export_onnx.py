"""Export every default network from viper's own PyTorch modules to ONNX, beside its weights in viper/assets.

The PyTorch modules stay the source of truth: this script writes the .onnx files viper.runtime runs on the CPU,
and tests/test_onnx_runtime.py exports again and compares, so a changed module with a stale .onnx fails CI.
float32 as the weights, opset 17, a dynamic batch axis (and a dynamic frame axis for the speaker encoder).

Exporter: PyTorch's TorchScript-based one (`dynamo=False`): it exports all eight networks in about 3 s, and
it is the one that turns the speaker encoder's packed LSTM into ONNX's LSTM with sequence lengths; the
torch.export-based exporter fails on pack_padded_sequence.

    python scripts/export_onnx.py [--out DIR]
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

ASSETS = Path(__file__).resolve().parents[1] / "src" / "viper" / "assets"
OPSET = 17  # LayerNormalization (the blendshapes' mixer) is in ONNX from 17; ONNX Runtime runs 17 since 1.11
BATCH = 2  # the example batch: any batch size runs, the axis is dynamic


@dataclass(frozen=True)
class Export:
    """One network: where its .onnx goes under viper/assets, its module, example inputs and the names of its
    inputs and outputs (in the module's order, which viper.runtime relies on)."""

    asset: str
    module: Callable[[], torch.nn.Module]
    example: Callable[[], tuple[torch.Tensor, ...]]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """The batch axis of every input and output (the LSTM state's is its second); the mel frames' axis."""
        axes = {name: {1 if name in ("hidden", "cell", "hidden_out", "cell_out") else 0: "batch"}
                for name in self.inputs + self.outputs}
        if "mels" in axes:
            axes["mels"][1] = "frames"
        return axes


def _blazeface():
    from viper.backbones.blazeface_net import load_blazeface_net

    return load_blazeface_net()


def _face_mesh():
    from viper.backbones.face_mesh_v2_net import load_face_mesh_v2_net

    return load_face_mesh_v2_net()


def _blendshapes():
    from viper.backbones.face_blendshapes_net import load_face_blendshapes_net

    return load_face_blendshapes_net()


def _mini_xception():
    from viper.backbones.mini_xception_net import load_mini_xception

    return load_mini_xception()


def _affectnet():
    from viper.backbones.affectnet_emotions_net import load_affectnet_emotions

    return load_affectnet_emotions()


def _face_api_expression():
    from viper.backbones.face_api_expression_net import load_face_api_expression

    return load_face_api_expression()


def _face_api_recognition():
    from viper.backbones.face_api_recognition_net import load_face_api_recognition

    return load_face_api_recognition()


def _speaker_encoder():
    from viper.backbones.speaker_encoder_net import load_speaker_encoder
    from viper.extractors.audio_resemblyzer import load_weights

    return load_speaker_encoder(load_weights())


def _images(channels: int, size: int) -> Callable[[], tuple[torch.Tensor, ...]]:
    return lambda: (torch.rand(BATCH, channels, size, size),)


def _mels() -> tuple[torch.Tensor, ...]:
    state = torch.zeros(3, BATCH, 256)
    return torch.rand(BATCH, 12, 40), torch.tensor([12, 7]), state, state


EXPORTS = (
    Export("face_landmarker/face_detector.onnx", _blazeface, _images(3, 128), ("image",), ("regressors", "logits")),
    Export("face_landmarker/face_landmarks_detector.onnx", _face_mesh, _images(3, 256), ("image",),
           ("landmarks", "presence")),
    Export("face_landmarker/face_blendshapes.onnx", _blendshapes, lambda: (torch.rand(BATCH, 146, 2) * 100,),
           ("points",), ("scores",)),
    Export("fer_mini_xception.onnx", _mini_xception, _images(1, 64), ("image",),
           ("logits", "block1", "block2", "block3", "block4")),
    Export("affectnet_emotions.onnx", _affectnet, _images(3, 64), ("image",), ("logits",)),
    Export("face_api_expression.onnx", _face_api_expression, _images(3, 112), ("image",), ("logits",)),
    Export("face_api_recognition.onnx", _face_api_recognition, _images(3, 150), ("image",), ("descriptor",)),
    Export("resemblyzer_ge2e.onnx", _speaker_encoder, _mels, ("mels", "lengths", "hidden", "cell"),
           ("hidden_out", "cell_out", "embedding")),
)


def export(spec: Export, out: Path = ASSETS) -> Path:
    """Write one network's .onnx under `out` (same relative path as in viper/assets) and return its path."""
    path = out / spec.asset
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # the exporter's deprecation notice; the tracer's note that TensorFlow-style 'same' padding is computed
        # from the (fixed) image size; slices it does not fold; its LSTM batch-size note (the state is an input)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1")
        warnings.filterwarnings("ignore", "Exporting a model to ONNX with a batch_size other than 1")
        torch.onnx.export(spec.module().cpu().eval(), spec.example(), str(path), dynamo=False, opset_version=OPSET,
                          input_names=list(spec.inputs), output_names=list(spec.outputs),
                          dynamic_axes=spec.dynamic_axes(), do_constant_folding=True)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ASSETS, help="folder standing for viper/assets")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    total = 0
    for spec in EXPORTS:
        size = export(spec, args.out).stat().st_size
        total += size
        print(f"{spec.asset}: {size / 1e6:.2f} MB")
    print(f"total: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
