"""A trained fusion model exported to ONNX beside its checkpoint (RUN/best.onnx), so that scoring on the CPU runs
ONNX Runtime instead of torch's forward, and needs no torch at all (`checkpoint.load_checkpoint`).

The .onnx records the sha256 of the best.pt it was exported from and the checkpoint's other fields (emotions,
features, N, settings) as JSON: a run from before viper wrote them, or a best.pt written since (a run going on, or
continued), has no twin and is scored by torch as before. Exported as the
default networks are (scripts/export_onnx.py): TorchScript exporter, opset 17, float32, a dynamic batch axis; the
frame axis is the checkpoint's N. Tokens (b, N, Σd) float32 and per-modality masks (b, N, M) bool -> scores (b, E).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_write_bytes

if TYPE_CHECKING:
    from .model import Perceiver

log = logging.getLogger(__name__)

OPSET = 17
EXAMPLE_BATCH = 16  # traced at the paper's batch: where the two cross-attention paths differ, the one cheaper there
DIGEST_KEY = "viper_checkpoint_sha256"
FIELDS_KEY = "viper_checkpoint"  # the checkpoint's fields but its weights, as JSON
PROTOBUF_LIMIT = 2**31  # bytes: one .onnx file holds at most this much (larger needs external data files)


def onnx_file(checkpoint: Path) -> Path:
    """Where a checkpoint's twin lives: RUN/best.pt -> RUN/best.onnx."""
    return Path(checkpoint).with_suffix(".onnx")


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def export_fusion(model: Perceiver, n_frames: int, checkpoint: Path, fields: dict[str, Any]) -> Path | None:
    """Write `checkpoint`'s twin .onnx atomically from `model` (the weights checkpoint holds), labelled with the
    checkpoint's sha256 and its `fields` (JSON: what scoring needs beside the weights); None, with a log line, for
    a model too large for one .onnx file (torch scores it)."""
    import torch

    size = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    if size >= PROTOBUF_LIMIT:
        log.info("%s: %.1f GB of weights do not fit one .onnx file; predict runs it with torch", checkpoint,
                 size / 1e9)
        return None
    model = model.cpu().eval()
    tokens = torch.zeros(EXAMPLE_BATCH, n_frames, sum(model.token_dims))
    masks = torch.ones(EXAMPLE_BATCH, n_frames, len(model.token_dims), dtype=torch.bool)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # the exporter's notice that dynamo=True is the future
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shapes read as numbers: N and widths are fixed
        torch.onnx.export(model, (tokens, masks), buffer, dynamo=False, opset_version=OPSET,
                          input_names=["tokens", "masks"], output_names=["scores"],
                          dynamic_axes={name: {0: "batch"} for name in ("tokens", "masks", "scores")},
                          do_constant_folding=True)
    path = onnx_file(checkpoint)
    labels = metadata_entry(DIGEST_KEY, file_sha256(checkpoint)) + metadata_entry(FIELDS_KEY, json.dumps(fields))
    atomic_write_bytes(path, buffer.getvalue() + labels)
    return path


def metadata_entry(key: str, value: str) -> bytes:
    """A ModelProto `metadata_props` entry (field 14: a StringStringEntryProto of key, field 1, and value, field
    2), serialised. Protobuf merges a message's bytes with a field appended to them, repeated fields appending,
    so this labels an exported model without the onnx package."""
    return _field(14, _field(1, key.encode()) + _field(2, value.encode()))


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload  # wire type 2: length-delimited


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def load_twin(checkpoint: Path) -> tuple[FusionOnnx, dict[str, Any]] | None:
    """`checkpoint`'s twin as a model and the checkpoint fields it carries, or None when there is none, it cannot
    be read (cut short, damaged), it was exported from other weights than the checkpoint's (its recorded sha256
    differs), or it carries no fields (a viper before they were written)."""
    path = onnx_file(checkpoint)
    if not path.is_file():
        return None
    try:
        runner = session(path)
    except Exception as error:  # noqa: BLE001 - ONNX Runtime's errors derive from Exception alone
        log.warning("%s cannot be read (%s); scoring with %s", path, str(error).splitlines()[0], checkpoint.name)
        return None
    labels = runner.get_modelmeta().custom_metadata_map
    if labels.get(DIGEST_KEY) != file_sha256(checkpoint):
        log.info("%s was exported from other weights than %s; scoring with torch", path, checkpoint.name)
        return None
    try:
        fields = json.loads(labels[FIELDS_KEY])
        return FusionOnnx(runner, tuple(fields["token_dims"]), len(fields["emotions"])), fields
    except (KeyError, TypeError, ValueError):  # no fields (an older viper) or not a checkpoint's: best.pt decides
        return None


@dataclass(frozen=True)
class FusionOnnx:
    """A trained fusion model in ONNX Runtime, called as the general model is: tokens (V, N, Σd) and per-modality
    masks (V, N, M) -> scores (V, E)."""

    runner: Any
    token_dims: tuple[int, ...]
    num_outputs: int

    def __call__(self, tokens: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return predict_onnx(self.runner, tokens, masks)


def session(path: Path) -> Any:
    """An ONNX Runtime session of a .onnx file outside viper/assets, with the options viper.runtime gives the
    shipped networks (its thread count, sequential, CPU)."""
    import onnxruntime

    from .runtime import threads

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads(), 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def predict_onnx(runner: Any, tokens: np.ndarray, masks: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    """Scores (V, E) for tokens (V, N, Σd) and per-modality masks (V, N, M), as `checkpoint.predict_model` gives
    them from torch."""
    outputs = [runner.run(None, {"tokens": np.ascontiguousarray(tokens[start : start + batch_size], np.float32),
                                 "masks": np.ascontiguousarray(masks[start : start + batch_size], bool)})[0]
               for start in range(0, len(tokens), batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0, runner.get_outputs()[0].shape[-1]), np.float32)
