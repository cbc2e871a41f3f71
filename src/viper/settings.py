"""Checks of the values users give (numbers, devices, precisions) and what this machine can hold.

A bad value is a `SettingError` naming the setting and what it accepts, raised before any model loads, so it never
surfaces as a traceback from deep inside torch or as a run that starts thousands of processes.
"""

from __future__ import annotations

import logging
import math
import os
import re
from typing import TYPE_CHECKING

from .errors import SettingError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MAX_FRAMES = 1024  # frames per clip: the paper samples 32; each frame is decoded and runs through every model
MAX_BATCH_VIDEOS = 256  # clips per model batch: 16 already keeps a GPU busy
WORKER_MEMORY = 1 << 30  # per extract worker: its own models (~0.3 GB) plus the clips it decodes (peak ~0.7 GB)
FRAME_MEMORY = 1280 * 720 * 3  # one decoded frame (scaled to at most 1280 px) while its batch is worked on
DEVICES = "cpu, cuda, cuda:N or mps"


def whole_number(setting: str, value: object, minimum: int = 1, maximum: int | None = None) -> int:
    """`value` as an int in [minimum, maximum] (no maximum: None); anything else names the setting."""
    limits = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingError(setting, f"must be a whole number {limits}, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        raise SettingError(setting, f"must be {limits}, got {value}")
    return value


def real_number(setting: str, value: object, *, minimum: float = 0.0, maximum: float | None = None,
                above_minimum: bool = False) -> float:
    """`value` as a finite float in [minimum, maximum] ((minimum, maximum] with `above_minimum`)."""
    if maximum is None:
        wanted = f"a number {'above' if above_minimum else 'at least'} {minimum:g}"
    else:
        wanted = (f"a number above {minimum:g} and at most {maximum:g}" if above_minimum
                  else f"a number between {minimum:g} and {maximum:g}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingError(setting, f"must be {wanted}, got {value!r}")
    if value < minimum or (above_minimum and value == minimum) or (maximum is not None and value > maximum):
        raise SettingError(setting, f"must be {wanted}, got {value:g}")
    return float(value)


def check_device(name: str, *, auto: bool = False, here: bool = True) -> str:
    """A torch device name viper runs on (cpu, cuda, cuda:N, mps: Apple silicon's GPU; `auto` where allowed).
    With `here`, the GPU must exist on this machine (not for work sent to a Ray cluster, whose nodes have their
    own GPUs)."""
    accepted = f"auto, {DEVICES}" if auto else DEVICES
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?" + ("|auto" if auto else ""), name):
        raise SettingError("device", f"must be {accepted}, got {name!r}")
    if here and name == "mps":
        import torch

        if not torch.backends.mps.is_available():
            why = "this torch has no MPS backend" if not torch.backends.mps.is_built() else "it sees no Metal GPU"
            raise SettingError("device", f"mps needs Apple silicon (macOS 12.3 or newer), and {why}; use cpu")
    if here and name.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            build = " (this torch is a CPU build)" if torch.version.cuda is None else ""
            raise SettingError("device", f"{name} needs a CUDA GPU, and torch sees none{build}; use cpu")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise SettingError("device", f"{name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return name


def resolve_device(name: str) -> torch.device:
    """The torch device of a checked name; auto is cuda when there is one."""
    import torch

    check_device(name, auto=True)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """The autocast dtype: fp32 unless asked otherwise on CPU (bf16 autocast there is opt-in), mixed on CUDA, fp32
    on MPS (its autocast is not what the CUDA tests check)."""
    import torch

    if name not in ("auto", "fp32", "bf16", "fp16"):
        raise SettingError("precision", f"must be auto, fp32, bf16 or fp16, got {name!r}")
    if device.type == "mps":
        if name in ("bf16", "fp16"):
            raise SettingError("precision", f"{name} is not supported on mps; use fp32 (or auto)")
        return torch.float32
    if device.type != "cuda":
        if name == "fp16":
            raise SettingError("precision", "fp16 needs CUDA; on CPU use bf16 (mixed precision) or fp32")
        return torch.bfloat16 if name == "bf16" else torch.float32
    if name == "fp32":
        return torch.float32
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if name == "bf16" else torch.float16


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, which a container or `taskset` narrows)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes of memory available to new processes, None where this system does not say: Linux's /proc/meminfo
    (MemAvailable, which counts the page cache the kernel can drop), else the free pages of sysconf on Unixes that
    report them. macOS and Windows give the standard library neither (viper does not depend on psutil for this):
    there the caps follow the CPUs alone, and `memory_unknown` says so."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def cap_workers(setting: str, requested: int, per_worker: int) -> int:
    """`requested` processes, or fewer when this machine lacks the CPUs or the memory (`per_worker` bytes each)
    to run them at once, with a warning saying why: more would only queue for the same cores or swap."""
    cpus, memory = usable_cpus(), available_memory()
    if memory is None and requested > 1:
        memory_unknown(setting, requested)
    fit = cpus if memory is None else max(1, min(cpus, memory // per_worker))
    if requested > fit:
        held = "" if memory is None else f" and {memory / 2**30:.1f} GB free, ~{per_worker / 2**30:.1f} GB each"
        log.warning("--%s %d is more than this machine can run at once (%d CPU(s)%s): using %d",
                    setting.replace("_", "-"), requested, cpus, held, fit)
        return fit
    return requested


def memory_unknown(setting: str, value: int) -> None:
    """The warning where `available_memory` has no answer: `setting` is not checked against the memory."""
    log.warning("--%s %d: this system does not say how much memory is free (no /proc/meminfo), so it is not checked "
                "against it; lower it if the machine runs short of memory", setting.replace("_", "-"), value)


def cap_batch_videos(batch_videos: int, frames: int) -> int:
    """Clips per batch whose decoded frames fit in the free memory beside one worker's models; fewer, with a
    warning, when `batch_videos` clips of `frames` frames would not."""
    memory, clip = available_memory(), frames * FRAME_MEMORY
    if memory is None and batch_videos > 1:
        memory_unknown("batch_videos", batch_videos)
    if memory is None or WORKER_MEMORY + batch_videos * clip <= memory:
        return batch_videos
    fit = max(1, (memory - WORKER_MEMORY) // clip)
    log.warning("--batch-videos %d: the decoded frames of %d clips x %d frames (~%.0f GB) do not fit in the %.1f GB "
                "free: using %d", batch_videos, batch_videos, frames, batch_videos * clip / 2**30, memory / 2**30, fit)
    return fit


def extraction_settings(frames: int, batch_videos: int | None, workers: int | None, device: str, *,
                        here: bool = True) -> tuple[int, int | None]:
    """Checked extraction settings: (batch_videos, workers), the default batch filled in (16 clips on a GPU, 1 on
    the CPU) and, for work on this machine (`here`), both capped to what it holds. A Ray cluster places its actors
    where they fit, and its GPUs are on its nodes."""
    whole_number("frames", frames, 1, MAX_FRAMES)
    default = 16 if device.startswith(("cuda", "mps")) else 1
    batch_videos = whole_number("batch_videos", default if batch_videos is None else batch_videos, 1, MAX_BATCH_VIDEOS)
    if workers is not None:
        whole_number("workers", workers)
    check_device(device, here=here)
    if not here:
        return batch_videos, workers
    batch_videos = cap_batch_videos(batch_videos, frames)
    if workers is not None:
        workers = cap_workers("workers", workers, WORKER_MEMORY + batch_videos * frames * FRAME_MEMORY)
    return batch_videos, workers
