"""`viper extract`: raw videos to cached per-frame features, resumable, one clip decoded once for all extractors."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import save_config
from ..errors import SettingError, ViperError
from ..extraction import DEFAULT_EXTRACTORS, ExtractConfig, Extraction
from ..progress import Hook, notify
from ..settings import extraction_settings


@dataclass
class ExtractSummary:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    frames_total: int = 0
    frames_with_face: int = 0
    seconds: float = 0.0
    where: str = ""  # where the work ran, when not in this machine's process pool (e.g. "ray: 2 workers on ...")

    @property
    def face_share(self) -> float:
        return self.frames_with_face / self.frames_total if self.frames_total else 0.0

    def lines(self) -> list[str]:
        per_video = self.seconds / self.done if self.done else 0.0
        lines = [
            f"videos done {self.done}, skipped (already in store) {self.skipped}, failed {len(self.failed)}",
            f"frames with a face {self.face_share:.1%}; {per_video:.2f} s per extracted video",
        ]
        lines += [self.where] if self.where else []
        lines += [f"FAILED {path}: {reason}" for path, reason in self.failed]
        return lines


_worker: Extraction | None = None


def _init_worker(config: ExtractConfig, threads: int) -> None:
    import torch

    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    torch.set_num_threads(threads)
    _worker = Extraction(config)


def _work(store_root: str, jobs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    assert _worker is not None
    return _worker.run_batch(store_root, jobs)


BACKENDS = ("local", "ray")


def extract(
    data: Path | str,
    out: Path | str,
    frames: int = 32,
    extractors: list[str] | None = None,
    workers: int | None = None,
    face_crop: bool = True,
    options: dict[str, dict[str, Any]] | None = None,
    device: str = "cpu",
    hook: Hook | None = None,
    dataset: str | None = None,
    batch_videos: int | None = None,
    backend: str = "local",
    ray_address: str | None = None,
    gpus_per_worker: float = 1.0,
) -> ExtractSummary:
    """Extract per-frame features of every video in `data` (folder, manifest CSV or one file) into store `out`.

    Re-running skips what exists; a video that cannot be read is reported and the run goes on. `dataset` names a
    dataset layout to read `data` as (see `manifest.load_inputs`). `batch_videos` clips go through each model
    together (default: 16 on CUDA, where batches across videos keep the GPU busy; 1 on CPU). `backend="ray"`
    spreads the clips over Ray actors (a local instance, or the cluster at `ray_address`); `workers` defaults to 1
    locally and to as many as the Ray cluster fits. `hook` hears the clips done (see viper.progress).
    """
    from ..extractors.base import parse_spec
    from ..manifest import load_inputs
    from ..store import FeatureStore

    specs = [":".join(parse_spec(spec)) for spec in (extractors or DEFAULT_EXTRACTORS)]
    options = {":".join(parse_spec(spec)): value for spec, value in (options or {}).items()}
    if backend not in BACKENDS:
        raise SettingError("backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    batch_videos, workers = extraction_settings(frames, batch_videos, workers, device, here=backend == "local")
    if backend == "ray":
        from .extract_ray import check_settings

        check_settings(gpus_per_worker)
    elif ray_address:
        raise SettingError("ray_address", "is for the ray backend")
    config = ExtractConfig(frames=frames, extractors=specs, options=options, face_crop=face_crop, device=device,
                           batch_videos=batch_videos)
    table = load_inputs(Path(data), dataset)
    try:  # the store cannot be written (disk full, read-only, quota): one message; what was written stays
        store = FeatureStore.create(out, frames)
        store.write_labels(table)
        save_config(config, store.root / "extract.json")
        root = str(store.root.resolve())  # the same path for workers in other folders or on other machines
        extraction = Extraction(config)
        summary = ExtractSummary()
        started = time.perf_counter()
        done = 0

        def tally(record: dict[str, Any], path: str) -> None:
            nonlocal done
            _tally(summary, record, path)
            done += 1
            notify(hook, "extract", completed=done, total=len(table))

        notify(hook, "extract", completed=0, total=len(table))
        try:
            todo = []
            for video_id, path in zip(table["video_id"], table["path"], strict=False):
                record = extraction.check(root, video_id, path)  # finished clips never reach a worker
                if record is None:
                    todo.append((video_id, path))
                else:
                    tally(record, path)
            with contextlib.ExitStack() as stack:
                if backend == "ray" and todo:
                    from .extract_ray import ray_workers

                    summary.where, run = stack.enter_context(
                        ray_workers(config, workers, ray_address, gpus_per_worker, len(todo)))
                    notify(hook, "extract", message=summary.where)
                    records = run(root, todo)
                else:
                    records = _records(extraction, root, todo, workers or 1)
                for (_video_id, path), record in records:
                    tally(record, path)
        finally:
            summary.seconds = time.perf_counter() - started
            for key in extraction.keys():
                if store.video_ids(key):
                    store.pack(key)
        return summary
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        raise ViperError(
            f"{out}: extraction stopped, the store cannot be written: {error.strerror or error}{where}; "
            "clips written before are intact, free space and run the same command to resume"
        ) from error


def _records(extraction: Extraction, root: str, jobs: list[tuple[str, str]], workers: int):
    """(job, record) pairs, in this process (with `extraction`'s models) or from a pool of workers each holding
    its own loaded models; jobs go in batches of `batch_videos` clips."""
    config = extraction.config
    size = config.batch_videos
    batches = [jobs[start : start + size] for start in range(0, len(jobs), size)]
    if workers <= 1 or len(batches) <= 1:
        yield from _pipelined(extraction, root, batches)
        return
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(config, threads)) as pool:
        futures = {pool.submit(_work, root, batch): batch for batch in batches}
        try:
            for future in as_completed(futures):
                yield from zip(futures[future], future.result(), strict=True)
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _pipelined(extraction: Extraction, root: str, batches: list[list[tuple[str, str]]]):
    """(job, record) pairs of the batches in this process, the next batch decoding in a second thread while the
    models work on the current one: the decoder and the models overlap instead of taking turns."""
    from concurrent.futures import ThreadPoolExecutor

    if not batches:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="viper-decode") as reader:
        upcoming = reader.submit(extraction.prepare, root, batches[0])
        for index, batch in enumerate(batches):
            prepared = upcoming.result()
            if index + 1 < len(batches):
                upcoming = reader.submit(extraction.prepare, root, batches[index + 1])
            yield from zip(batch, extraction.finish(prepared), strict=True)


def _tally(summary: ExtractSummary, record: dict[str, Any], path: str) -> None:
    if record["status"] == "failed":
        summary.failed.append((path, record["reason"]))
        return
    if record["status"] == "done":
        summary.done += 1
    else:
        summary.skipped += 1
    summary.frames_total += record["frames"]
    summary.frames_with_face += record["faces"]
