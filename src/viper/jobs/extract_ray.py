"""`viper extract --backend ray`: the local path's work (`Extraction.run_batch`) in Ray actors over a cluster.

Each actor holds one `Extraction` (its models load once, on its first clip) and writes straight into the store,
so the store must be on a filesystem every node mounts; per-clip files are renamed into place and packing takes a
file lock, so many writers are safe. Ray is imported only here, when this backend runs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from ..errors import SettingError, ViperError
from ..extraction import ExtractConfig, Extraction

LOCAL_OBJECT_STORE_BYTES = 200 * 1024**2  # the actors pass only small records around
QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_USAGE_STATS_PROMPT_ENABLED": "0"}  # no usage reports or prompts
ACTOR_RESTARTS = 3  # a worker that crashes (or loses its node) comes back; the clip it held is reported failed
CPUS_PER_WORKER = 1  # what each actor reserves, and its torch threads: decoding and face detection are CPU work

Job = tuple[str, str]


def require_ray():
    """The `ray` module, or one message saying how to install it."""
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    try:
        import ray
    except ImportError as error:
        raise SettingError(
            "backend", f'ray needs Ray, which is not installed ({error}); pip install -e ".[ray]" (or "ray>=2.9")'
        ) from None
    return ray


def check_settings(gpus_per_worker: float) -> None:
    """Refuse what Ray would refuse only after starting: a GPU share that is not (0, 1] or a whole number."""
    if not gpus_per_worker > 0 or (gpus_per_worker > 1 and not float(gpus_per_worker).is_integer()):
        raise SettingError("gpus_per_worker", f"must be a fraction in (0, 1] or a whole number, got {gpus_per_worker}")
    require_ray()


class ExtractionWorker:
    """One actor: a run's loaded models on one node, extracting the clips it is handed."""

    def __init__(self, config: ExtractConfig) -> None:
        import torch

        torch.set_num_threads(CPUS_PER_WORKER)
        self.extraction = Extraction(config)

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def run_batch(self, store_root: str, jobs: list[Job]) -> list[dict[str, Any]]:
        return self.extraction.run_batch(store_root, jobs)


@contextlib.contextmanager
def ray_workers(config: ExtractConfig, workers: int | None, address: str | None, gpus_per_worker: float, jobs: int):
    """Ray actors holding an `Extraction` each, for `jobs` clips: yields (where they run, a function of
    (root, jobs) giving (job, record) pairs as the actors finish them); Ray is shut down after, if started here."""
    ray = require_ray()
    start = time.perf_counter()
    connected_here, where = _connect(ray, address, workers)
    actors: list = []
    try:
        count, resources = _plan(ray, config, workers, gpus_per_worker, jobs)
        remote = ray.remote(max_restarts=ACTOR_RESTARTS, **resources)(ExtractionWorker)
        actors = [remote.remote(config) for _ in range(count)]
        nodes = _nodes(ray, actors)
        ready = time.perf_counter() - start
        where = f"ray: {_plural(count, 'worker')} on {_plural(len(nodes), 'node')} of {where}, ready in {ready:.1f} s"
        yield where, functools.partial(_dispatch, ray, actors, size=config.batch_videos)
    finally:
        for actor in actors:
            ray.kill(actor)
        if connected_here:
            ray.shutdown()  # stops a local instance; only leaves a cluster


def _connect(ray, address: str | None, workers: int | None) -> tuple[bool, str]:
    """Join the cluster at `address` ("auto", "HOST:6379", "ray://HOST:10001") or start a local instance.

    Returns whether this call connected (and so must disconnect) and where the work runs; a program that called
    ray.init() itself keeps its connection, whatever `address` says."""
    if ray.is_initialized():
        return False, "the connected Ray cluster"
    if address and address != "auto":
        _check_reachable(address)
    quiet = {"log_to_driver": False, "logging_level": logging.INFO if os.environ.get("VIPER_DEBUG") else logging.ERROR}
    where = f"the Ray cluster at {address}" if address else "a local Ray instance"
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES, **quiet)
    except Exception as error:  # any failure here is the setup's (no cluster, wrong token, ...), not viper's
        if os.environ.get("VIPER_DEBUG"):
            raise
        raise SettingError("backend", f"ray: cannot reach {where}: {_reason(error)}") from None
    return True, where


def _check_reachable(address: str, seconds: float = 10.0) -> None:
    """Fail in seconds, not after Ray's minutes of retries, when nothing listens at HOST:PORT."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise SettingError("ray_address", f"{address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except OSError as error:
        raise SettingError(
            "ray_address", f"{address}: nothing answers there ({error.strerror or error}); "
            "is `ray start --head` running on that machine, and is the port open?"
        ) from None


def _plan(ray, config: ExtractConfig, workers: int | None, gpus_per_worker: float, clips: int):
    """How many actors, and what each asks of the scheduler: CPUs, plus a GPU share when the device is CUDA."""
    cluster = ray.cluster_resources()
    cpus, gpus = cluster.get("CPU", 0), cluster.get("GPU", 0)
    resources: dict[str, float] = {"num_cpus": CPUS_PER_WORKER}
    fits = int(cpus // CPUS_PER_WORKER)
    have = f"{cpus:g} CPUs"
    if config.device.startswith("cuda"):
        if not gpus:
            raise SettingError("device", "cuda: the Ray cluster has no GPU; add GPU nodes, or use the cpu device")
        resources["num_gpus"] = gpus_per_worker
        fits = min(fits, int(gpus // gpus_per_worker))
        have += f" and {gpus:g} GPUs ({gpus_per_worker:g} per worker)"
    count = min(workers or fits, clips)
    if count > fits:
        raise SettingError("workers", f"{count}: the Ray cluster has {have}, room for {fits} workers; ask for fewer")
    return count, resources


def _nodes(ray, actors: list) -> set[str]:
    """The nodes the actors run on, once all have started; an actor that cannot start stops the run."""
    from ray.exceptions import RayActorError

    try:
        return set(ray.get([actor.node.remote() for actor in actors]))
    except RayActorError as error:
        raise SettingError(
            "backend", f"ray: the workers could not start ({_reason(error)}); every node needs the same viper "
            "install (with this version), its Python packages and the model files"
        ) from None


def _reason(error: Exception) -> str:
    """The last line of a Ray error (the original exception), without Ray's colour codes."""
    import re

    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", str(error)).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _dispatch(ray, actors: list, root: str, jobs: list[Job], size: int) -> Iterator[tuple[Job, dict[str, Any]]]:
    """Keep every actor busy with one batch of `size` clips at a time (long and short clips balance themselves)."""
    from ray.exceptions import RayActorError, RayTaskError

    queue = iter([jobs[start : start + size] for start in range(0, len(jobs), size)])
    running: dict[Any, tuple[Any, list[Job]]] = {}

    def hand(actor) -> None:
        batch = next(queue, None)
        if batch is not None:
            running[actor.run_batch.remote(root, batch)] = (actor, batch)

    for actor in actors:
        hand(actor)
    while running:
        (ref,), _ = ray.wait(list(running), num_returns=1)
        actor, batch = running.pop(ref)
        try:
            records = ray.get(ref)
        except RayTaskError as error:  # a missing model, a store that cannot be written: the run stops, as locally
            if isinstance(error.cause, (ViperError, OSError)) and not os.environ.get("VIPER_DEBUG"):
                raise error.cause from None
            raise
        except RayActorError as error:
            records = [{"status": "failed", "reason": f"the Ray worker extracting it died ({_reason(error)})"}] * len(
                batch
            )
        yield from zip(batch, records, strict=True)
        hand(actor)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
