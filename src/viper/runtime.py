"""Which engine runs viper's pretrained networks at inference, decided here and nowhere else.

`onnx`: ONNX Runtime on the .onnx files shipped in viper/assets (scripts/export_onnx.py exports them from viper's
own PyTorch modules, which stay the source of truth); the default on CPU where onnxruntime is installed, as it runs
these small networks faster than eager PyTorch and imports in a fraction of its time. `torch`: the PyTorch modules
themselves, for CUDA, training, and where onnxruntime is absent. Both give the same features (within 1e-4,
tests/test_onnx_runtime.py), so the runtime is no part of a store key.

A backbone asks `network(...)` for its forward pass on each call and gets numpy arrays back either way.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import numpy as np

from .errors import SettingError

RUNTIMES = ("onnx", "torch")

_forced: str | None = None
_sessions: dict[tuple[str, int], Any] = {}
_lock = threading.Lock()


def installed(package: str) -> bool:
    """Whether `package` can be found (an import hook that refuses it counts as absent)."""
    try:
        return importlib.util.find_spec(package) is not None
    except ImportError:
        return False


def onnxruntime_installed() -> bool:
    """Whether onnxruntime is installed. An install that is there but fails to import raises here rather than
    falling back to torch unnoticed."""
    if not installed("onnxruntime"):
        return False
    import onnxruntime  # noqa: F401  (a broken install fails loudly)

    return True


def force(runtime: str | None) -> None:
    """Run every network of this process with `runtime` (`onnx` or `torch`); None: back to the default choice.
    Whoever builds a run's models (an extraction, a prediction) calls it with the run's setting."""
    global _forced
    _forced = check_runtime(runtime) if runtime is not None else None


def forced() -> str | None:
    """The runtime `force` set for this process, if any."""
    return _forced


def check_setting(runtime: str | None, device: str) -> str | None:
    """A run's runtime setting (None: automatic), refused before any model loads where it cannot run on `device`."""
    if runtime is not None:
        choose(str(device), runtime)
    return runtime


def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise SettingError("runtime", f"must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    return runtime


def choose(device: str = "cpu", runtime: str | None = None) -> str:
    """The runtime for networks on `device`: `runtime` when given, else the process's forced one, else onnx on
    CPU where onnxruntime is installed and torch otherwise (CUDA, or no onnxruntime)."""
    wanted = runtime or _forced
    on_cpu = str(device) == "cpu"
    if wanted is None:
        return "onnx" if on_cpu and onnxruntime_installed() else "torch"
    if check_runtime(wanted) == "onnx":
        if not on_cpu:
            raise SettingError("runtime", f"onnx runs on the CPU only, not on {device}: use torch there (the default "
                               "off the CPU)")
        if not onnxruntime_installed():
            raise SettingError("runtime", "onnx needs onnxruntime: pip install onnxruntime")
    elif not installed("torch"):
        raise SettingError("runtime", 'torch needs PyTorch, which this install lacks: pip install '
                           '"viper-emotion[train]"')
    return wanted


def threads() -> int:
    """Intra-op threads for a session: as many as torch uses in this process (viper --threads, a worker's share,
    a test's one thread), else VIPER_THREADS, else every core."""
    if "torch" in sys.modules:
        return sys.modules["torch"].get_num_threads()
    return int(os.environ.get("VIPER_THREADS", 0)) or os.cpu_count() or 1


def session(asset: str):
    """The ONNX Runtime session of a network shipped in viper/assets (`face_landmarker/face_detector.onnx`),
    created once per process and thread count."""
    key = (asset, threads())
    with _lock:
        if key not in _sessions:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = key[1], 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            path = files("viper.assets")
            for part in asset.split("/"):  # one step at a time: viper.assets is a namespace package
                path = path / part
            _sessions[key] = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return _sessions[key]


def open_sessions() -> set[str]:
    """The networks this process runs in ONNX Runtime so far (their assets): what a run's setting reached."""
    with _lock:
        return {asset for asset, _ in _sessions}


def close_sessions() -> None:
    """Drop this process's sessions (their memory goes back; the next call makes them again)."""
    with _lock:
        _sessions.clear()


ROWS_A_CALL = 64  # ONNX Runtime's arena keeps what its largest call needed: a batch is run this many rows at a time


@dataclass(frozen=True)
class OnnxNetwork:
    """A shipped .onnx network: inputs in the torch module's argument order, outputs in its (flattened) order. A
    batch whose inputs all have more than ROWS_A_CALL rows (many clips' faces with --batch-videos) runs in pieces
    of that many rows, so memory stays that of one piece; inputs without a common first axis (the speaker
    encoder's LSTM state) run whole."""

    asset: str

    def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
        runner = session(self.asset)
        names = [spec.name for spec in runner.get_inputs()]
        rows = {np.shape(value)[0] if np.ndim(value) else None for value in inputs}
        if len(rows) != 1 or None in rows or (total := rows.pop()) <= ROWS_A_CALL:
            return run(runner, names, inputs)
        pieces = [run(runner, names, [value[start:start + ROWS_A_CALL] for value in inputs])
                  for start in range(0, total, ROWS_A_CALL)]
        return [np.concatenate(parts) for parts in zip(*pieces, strict=True)]


def run(runner, names: list[str], inputs) -> list[np.ndarray]:
    return runner.run(None, {name: np.ascontiguousarray(value) for name, value in zip(names, inputs, strict=True)})


@dataclass(frozen=True)
class TorchNetwork:
    """A PyTorch module behind the same numpy interface: float inputs go to `device` (4-D ones channels-last when
    the module is), integer ones (sequence lengths) stay on the CPU as packing wants them."""

    module: Any
    device: str
    channels_last: bool = False

    def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
        import torch

        tensors = []
        for value in inputs:
            tensor = torch.from_numpy(np.asarray(value))
            if tensor.is_floating_point():
                layout = torch.channels_last if self.channels_last and tensor.ndim == 4 else torch.preserve_format
                tensor = tensor.to(self.device, memory_format=layout)
            tensors.append(tensor)
        with torch.inference_mode():
            outputs = self.module(*tensors)
        return [output.cpu().numpy() for output in flatten(outputs)]


def flatten(outputs) -> list:
    """A module's outputs as the ONNX export lists them: a tensor, a tuple's items, a dict's values, in order."""
    if isinstance(outputs, dict):
        return [tensor for value in outputs.values() for tensor in flatten(value)]
    if isinstance(outputs, (tuple, list)):
        return [tensor for value in outputs for tensor in flatten(value)]
    return [outputs]


def network(asset: str, device: str, module: Callable[[], Any], channels_last: bool = False,
            runtime: str | None = None) -> OnnxNetwork | TorchNetwork:
    """The forward pass to call for a network on `device`: its ONNX session or its torch module (built by `module`
    only then), as `choose` decides."""
    if choose(str(device), runtime) == "onnx":
        return OnnxNetwork(asset)
    return TorchNetwork(module(), str(device), channels_last)
