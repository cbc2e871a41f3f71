"""Resemblyzer's GE2E speaker encoder, the network `audio:resemblyzer` runs, picked by viper.runtime without
importing torch: its PyTorch module (speaker_encoder_net.py) is built only where the runtime is torch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..runtime import OnnxNetwork, TorchNetwork, network

ONNX = "resemblyzer_ge2e.onnx"  # SpeakerEncoder exported by scripts/export_onnx.py, run by viper.runtime


def load(weights: Callable[[], dict[str, np.ndarray]], device: str = "cpu") -> OnnxNetwork | TorchNetwork:
    """The encoder's forward pass on `device`: mels (B, T, 40), lengths (B,) int64, LSTM state (3, B, 256) twice
    -> the state after each fragment's last frame and the embedding before its norm (B, 256), numpy in and out. The
    torch module is built from `weights()` (once per process) only where the runtime is torch."""

    def module():
        from .speaker_encoder_net import load_speaker_encoder

        return load_speaker_encoder(weights(), device)

    return network(ONNX, device, module)
