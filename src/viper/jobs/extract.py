"""`viper extract`: raw videos to cached per-frame features, resumable, one clip decoded once for all extractors."""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import save_config
from ..errors import Interrupted, SettingError, ViperError
from ..extraction import DEFAULT_EXTRACTORS, ExtractConfig, Extraction
from ..face_choice import check_faces
from ..filenames import printable
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
    kept_store: bool = True  # False: the store was new and no clip was extracted into it, so it was removed again

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
        lines += [printable(f"FAILED {path}: {reason}") for path, reason in self.failed]
        lines += [] if self.kept_store else ["no clip was extracted, so no store was left behind"]
        return lines


def _serve(connection, config: ExtractConfig, threads: int) -> None:
    """A worker process: extract each batch of clips it is sent and answer with their records, or with the error
    that stopped it (a missing model, a store that cannot be written); its models load with the first batch."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent stops us
    torch.set_num_threads(threads)
    extraction = None
    while True:
        try:
            root, batch = connection.recv()
        except EOFError:
            return  # the parent is gone
        try:
            extraction = extraction or Extraction(config)
            connection.send(("records", extraction.run_batch(root, batch)))
        except Exception as error:  # noqa: BLE001 - the parent decides; it stops the run as in one process
            connection.send(("error", _picklable(error), traceback.format_exc()))


def _picklable(error: Exception) -> Exception:
    """The error itself if it survives the pipe, else one of the same kind (ViperError or not) with its text."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - any failure to round-trip
        return (ViperError if isinstance(error, ViperError) else RuntimeError)(str(error))


BACKENDS = ("local", "ray")


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM (`kill`, systemd, Kubernetes) raises in the main thread as Ctrl-C does, so the run stops its worker
    processes and says how far it got instead of vanishing and leaving them running."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set a handler
        yield
        return

    def interrupt(signum: int, frame) -> None:
        raise Interrupted(signum=signum)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@_sigterm_interrupts()
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
    faces: str = "main",
    runtime: str | None = None,
) -> ExtractSummary:
    """Extract per-frame features of every video in `data` (folder, manifest CSV or one file) into store `out`.

    Re-running skips what exists; a video that cannot be read is reported and the run goes on. `dataset` names a
    dataset layout to read `data` as (see `manifest.load_inputs`). `batch_videos` clips go through each model
    together (default: 16 on CUDA, where batches across videos keep the GPU busy; 1 on CPU). `backend="ray"`
    spreads the clips over Ray actors (a local instance, or the cluster at `ray_address`); `workers` defaults to 1
    locally and to as many as the Ray cluster fits. `faces`: whose face the features are of, main (the person seen
    on the most frames) or largest (each frame's largest face: the paper's, and stores made before viper followed
    people). `runtime`: onnx or torch runs the networks (default: viper.runtime's choice; the same features).
    `hook` hears the clips done (see viper.progress).
    """
    from ..extractors.base import parse_spec
    from ..manifest import load_inputs
    from ..runtime import check_setting
    from ..store import FeatureStore

    check_setting(runtime, device)  # before the device's own checks: onnx on cuda is wrong on any machine
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
    if check_faces(faces) == "all":
        raise SettingError("faces", "all is for predict (a record per person); a store holds one face per frame: "
                           "main or largest")
    config = ExtractConfig(frames=frames, extractors=specs, options=options, face_crop=face_crop, device=device,
                           batch_videos=batch_videos, faces=faces, runtime=runtime)
    table = load_inputs(Path(data), dataset)
    extraction = Extraction(config)  # an extractor option of the wrong kind is refused before the store is made
    made_folder, new_store = not Path(out).exists(), not (Path(out) / "store.json").exists()
    try:  # the store cannot be written (disk full, read-only, quota): one message; what was written stays
        store = FeatureStore.create(out, frames)
        _check_face_policy(store, extraction)
        store.write_labels(table)
        save_config(config, store.root / "extract.json")
        root = str(store.root.resolve())  # the same path for workers in other folders or on other machines
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
                    records = _records(extraction, root, todo, workers or 1, hook)
                for (_video_id, path), record in records:
                    tally(record, path)
        except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM; the workers are stopped by now
            raise Interrupted(f"{done} of {len(table)} clips done; run the same command again to resume",
                              getattr(stop, "signum", signal.SIGINT)) from None
        finally:
            summary.seconds = time.perf_counter() - started
            for key in extraction.keys():
                if store.video_ids(key):
                    store.pack(key)
        if new_store and not (summary.done or summary.skipped):
            summary.kept_store = not _remove_unused_store(store.root, made_folder)
        return summary
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        raise ViperError(
            f"{out}: extraction stopped, the store cannot be written: {error.strerror or error}{where}; "
            "clips written before are intact, free space and run the same command to resume"
        ) from error


FACE_POLICIES = {"main": "the person seen on the most frames", "largest": "the largest face of each frame"}


def _check_face_policy(store, extraction: Extraction) -> None:
    """A ViperError when the store holds this run's features of another person policy (a store made before viper
    followed people holds the largest face of each frame): resuming it would silently extract everything again
    under new keys, and training would then find two features of each modality."""
    faces, stored_keys = extraction.config.faces, store.extractor_keys()
    stored = [store.feature_spec(key) for key in stored_keys]
    for key, extractor in extraction.keys().items():
        mine = _without_faces(extraction.spec(extractor).identity())
        for spec in () if key in stored_keys else stored:
            theirs = spec.faces or "largest"
            if theirs != faces and _without_faces(spec.identity()) == mine:
                raise ViperError(
                    f"{store.root}: its {spec.name} features ({spec.key}) are of {FACE_POLICIES[theirs]}, this run's "
                    f"of {FACE_POLICIES[faces]} (--faces {faces}). Extract into a new store (--out) for "
                    f"{FACE_POLICIES[faces]}, or add --faces {theirs} to resume this one"
                )


def _without_faces(identity: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in identity.items() if name != "faces"}


def _remove_unused_store(root: Path, made_folder: bool) -> bool:
    """Remove a new store no clip was extracted into (every file failed): the files this run made, and the folder
    when it made that too. Anything else in it (another extraction's clips) keeps the store; True when removed."""
    made = ("store.json", "labels.csv", "extract.json", ".store.lock", ".labels.lock")
    if any(path.name not in made for path in root.iterdir()):
        return False
    for name in made:
        (root / name).unlink(missing_ok=True)
    if made_folder:
        root.rmdir()
    return True


def _records(extraction: Extraction, root: str, jobs: list[tuple[str, str]], workers: int, hook: Hook | None):
    """(job, record) pairs, in this process (with `extraction`'s models) or from worker processes each holding
    its own loaded models; jobs go in batches of `batch_videos` clips."""
    size = extraction.config.batch_videos
    batches = [jobs[start : start + size] for start in range(0, len(jobs), size)]
    if workers <= 1 or len(batches) <= 1:
        yield from _pipelined(extraction, root, batches)
    else:
        yield from _in_processes(extraction.config, root, batches, workers, hook)


class _Worker:
    """A worker process (spawned, so no parent state or locks come along) and the batch it holds."""

    def __init__(self, context, config: ExtractConfig, threads: int) -> None:
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, config, threads), name="viper-extract-worker")
        self.process.start()
        child.close()
        self.batch: list[tuple[str, str]] | None = None
        self.tries = 0

    def hand(self, root: str, batch: list[tuple[str, str]], tries: int) -> None:
        self.batch, self.tries = batch, tries
        with contextlib.suppress(OSError):  # a process that just died: its sentinel tells, as for any death
            self.connection.send((root, batch))

    def reply(self):
        """What the process answered, or None if it died first."""
        try:
            return self.connection.recv() if self.connection.poll() else None
        except (EOFError, OSError):
            return None

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()
        self.connection.close()


def _in_processes(config: ExtractConfig, root: str, batches: list[list[tuple[str, str]]], workers: int,
                  hook: Hook | None):
    """(job, record) pairs from `workers` processes, each given one batch at a time (long and short clips balance).

    A process that dies (killed, out of memory, a crash in a decoder) is replaced, as Ray restarts an actor: the
    clips it held are tried once more, each alone, and a clip whose process dies again is reported failed while
    the run goes on. However the run ends (done, an error, Ctrl-C, SIGTERM), no worker outlives it."""
    import multiprocessing
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")
    threads = int(os.environ.get("VIPER_THREADS", 0)) or max(1, (os.cpu_count() or 1) // workers)  # viper --threads
    queue = deque((batch, 1) for batch in batches)
    pool: list[_Worker] = []
    try:
        pool += [_Worker(context, config, threads) for _ in range(min(workers, len(batches)))]
        while True:
            for worker in pool:
                if worker.batch is None and queue:
                    worker.hand(root, *queue.popleft())
            busy = [worker for worker in pool if worker.batch is not None]
            if not busy:
                return
            wait([worker.connection for worker in busy] + [worker.process.sentinel for worker in busy])
            for index, worker in enumerate(pool):
                if worker.batch is None or not (worker.connection.poll() or worker.process.exitcode is not None):
                    continue
                batch, reply = worker.batch, worker.reply()
                worker.batch = None
                if reply is None:
                    how = _death(worker.process)
                    worker.stop()
                    pool[index] = _Worker(context, config, threads)
                    if worker.tries == 1:
                        notify(hook, "extract", message=f"a worker process died ({how}) extracting "
                               f"{', '.join(video_id for video_id, _ in batch)}; trying again in a new one")
                        queue.extend(([job], 2) for job in batch)  # alone: a clip that kills its worker is found
                    else:
                        failure = {"status": "failed", "reason": f"its worker process died twice ({how})"}
                        yield from ((job, failure) for job in batch)
                elif reply[0] == "error":
                    _, error, remote = reply
                    raise error from RuntimeError(f"in a worker process:\n{remote}")
                else:
                    yield from zip(batch, reply[1], strict=True)
    finally:
        for worker in pool:  # every worker told first: a second Ctrl-C while waiting for one leaves none running
            worker.process.terminate()
        for worker in pool:
            worker.stop()


def _death(process) -> str:
    """How a process ended, in words: "killed by SIGKILL", "exit code 1"."""
    process.join(1)
    code = process.exitcode
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


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
