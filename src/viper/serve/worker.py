"""One worker thread that scores the queued jobs in turn with a Predictor loaded once (one process holds one copy
of the models: a second worker would double the memory and share the same cores). The queue is bounded: a job
is refused when `max_waiting` wait already, before its upload is kept, with a guess of when to retry. After each
job, the oldest finished jobs' uploads beyond `keep_uploads` bytes are deleted (their results stay)."""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from ..errors import ViperError
from .store import DONE, FAILED, RUNNING, Job, JobStore

log = logging.getLogger("viper.serve")
STOP = ""  # the queue item that ends the worker


class Scorer(Protocol):
    """What the worker needs of `viper.jobs.predict.Predictor` (built with `also=PER_FRAME`, so its predictions'
    frame tables hold the expression probabilities the page draws). The entry point (`viper serve`, a test, a
    benchmark) loads it: the server sits on the jobs layer and does not build one itself."""

    bundle: Any

    def decode(self, video: Path, faces: str | None = None) -> list: ...

    def score_people(self, video: Path, decoded: list) -> list: ...

    def score(self, video: Path, decoded: list) -> Any: ...

    def windows(self, video: Path, seconds: float) -> Iterator: ...


class QueueFull(ViperError):
    """More jobs wait than the server takes; the client should retry in about `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Worker:
    """Takes job ids from the queue, scores each video (per window when the job has one), writes records.jsonl
    (the records `viper predict` prints) and frames.csv (its `--per-frame` table) into the job's folder."""

    def __init__(self, store: JobStore, predictor: Scorer, max_waiting: int, keep_uploads: int | None = None) -> None:
        self.store, self.predictor, self.max_waiting, self.keep_uploads = store, predictor, max_waiting, keep_uploads
        self.last_seconds = 5.0  # how long the last job took: when a slot in the queue is likely to free
        self.jobs: queue.Queue[str] = queue.Queue()
        self._admit = threading.Lock()
        self.lock = threading.Lock()  # the predictor's: held by a job while it runs, and by each live frame
        self._thread = threading.Thread(target=self._run, name="viper-serve-worker", daemon=True)

    def start(self) -> None:
        """Queue the jobs a previous server left (interrupted ones first marked), then start scoring."""
        for job in self.store.recover():
            self.jobs.put(job.id)
        self._prune()
        self._thread.start()

    def stop(self) -> None:
        self.jobs.put(STOP)
        self._thread.join(timeout=60)

    def admit(self, job: Job) -> None:
        """Record the job and queue it, or raise QueueFull (the caller then removes its files)."""
        with self._admit:
            if self.jobs.qsize() >= self.max_waiting:
                raise QueueFull(f"{self.jobs.qsize()} jobs are waiting, the most this server queues "
                                f"(--max-waiting {self.max_waiting}); try again when one has finished",
                                retry_after=max(1, math.ceil(self.last_seconds)))
            self.store.add(job)
            self.jobs.put(job.id)

    def waiting(self) -> int:
        return self.jobs.qsize()

    def _run(self) -> None:
        while (job_id := self.jobs.get()) != STOP:
            job = self.store.get(job_id)
            if job is None or job.status != "queued":
                continue
            started = time.time()
            self.store.update(job.id, status=RUNNING, stage="decoding", progress=0.02, started=started,
                              attempts=job.attempts + 1)
            try:
                with self.lock:
                    self._score(job)
            except ViperError as error:  # an unreadable video: the CLI's message, naming what the user sent
                self.store.update(job.id, status=FAILED, stage="failed", error=str(error).replace(job.video, job.name),
                                  finished=time.time())
            except Exception as error:  # the server must outlive one bad job; logged in full
                log.exception("job %s failed", job.id)
                self.store.update(job.id, status=FAILED, stage="failed", error=f"internal error: {error}",
                                  finished=time.time())
            self.last_seconds = time.time() - started
            self._prune()

    def _prune(self) -> None:
        """Delete the oldest finished jobs' uploads beyond `keep_uploads` bytes in all (a kept upload is what lets
        an interrupted job resume and the page play its video; a finished job's results no longer need it)."""
        if self.keep_uploads is None:
            return
        try:
            for job in self.store.drop_uploads(self.keep_uploads):
                log.info("job %s: upload deleted to keep the uploads under %d bytes", job.id, self.keep_uploads)
        except Exception:  # a file that will not go must not stop the worker; logged in full
            log.exception("deleting old uploads failed")

    def _score(self, job: Job) -> None:
        import pandas as pd

        from ..atomic import atomic_write_text

        video = Path(job.video)
        if job.window is None:
            decoded = self.predictor.decode(video)
            self.store.update(job.id, stage="scoring", progress=0.5)
            predictions = self.predictor.score_people(video, decoded)
        else:
            predictions = []
            for prediction in self.predictor.windows(video, job.window):
                predictions.append(prediction)
                self.store.update(job.id, stage=f"window {prediction.window.index + 1}/{prediction.window.count}",
                                  progress=0.95 * (prediction.window.index + 1) / prediction.window.count)
        self.store.update(job.id, stage="writing", progress=0.97)
        records = [prediction.record() | {"video": job.name} for prediction in predictions]
        table = pd.concat([prediction.frame_table() for prediction in predictions], ignore_index=True)
        table["video"] = job.name
        folder = self.store.folder(job.id)
        atomic_write_text(folder / "frames.csv", table.to_csv(index=False))
        atomic_write_text(folder / "records.jsonl", "".join(json.dumps(record) + "\n" for record in records))
        self.store.update(job.id, status=DONE, stage="done", progress=1.0, finished=time.time())


def read_records(folder: Path) -> list[dict]:
    """A finished job's records, as `viper predict --format json` printed them."""
    path = folder / "records.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def read_frames(source):
    """A per-frame table's CSV (a path or a binary file) as a DataFrame, floats exactly as written: pandas 2 reads
    them so when asked (`round_trip`), pandas 3 by default (and deprecates the setting)."""
    import pandas as pd

    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    return pd.read_csv(source, **exact)
