"""Resemblyzer's GE2E speaker encoder as one PyTorch module (3-layer LSTM 40->256, then linear 256->256 and ReLU),
with the weights shipped in assets/resemblyzer_ge2e.npz: what viper.runtime's torch runtime runs for
`audio:resemblyzer` (speaker_encoder.py), and the one scripts/export_onnx.py exports. It takes the LSTM's state in
and gives it back, so a long fragment goes through in slices; lengths are packed, so padding to a batch's longest
fragment changes no fragment's state.
"""

from __future__ import annotations

import threading

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


class SpeakerEncoder(nn.Module):
    """mels (B, T, 40), lengths (B,) int64 on the CPU, LSTM state (3, B, 256) twice -> the state after each
    fragment's last frame, and the ReLU of the linear map of the top layer's hidden state (B, 256), not normed."""

    def __init__(self, mels: int = 40, hidden: int = 256, layers: int = 3) -> None:
        super().__init__()
        self.lstm = nn.LSTM(mels, hidden, layers, batch_first=True)
        self.linear = nn.Linear(hidden, hidden)

    def forward(self, mels: torch.Tensor, lengths: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor):
        packed = pack_padded_sequence(mels, lengths, batch_first=True, enforce_sorted=False)
        _, (hidden, cell) = self.lstm(packed, (hidden, cell))
        return hidden, cell, torch.relu(self.linear(hidden[-1]))


_models: dict[str, SpeakerEncoder] = {}
_lock = threading.Lock()


def load_speaker_encoder(weights: dict, device: str = "cpu") -> SpeakerEncoder:
    """The encoder with Resemblyzer's weights (`audio_resemblyzer.load_weights`: the extractor owns its asset), in
    eval mode; built once per process and device, its sizes read from the weights."""
    with _lock:
        if device not in _models:
            layers = sum(name.startswith("lstm.weight_ih_l") for name in weights)
            mels, hidden = weights["lstm.weight_ih_l0"].shape[1], weights["lstm.weight_hh_l0"].shape[1]
            model = SpeakerEncoder(mels, hidden, layers)
            model.load_state_dict({name: torch.from_numpy(array) for name, array in weights.items()})
            _models[device] = model.to(device).eval()
        return _models[device]
