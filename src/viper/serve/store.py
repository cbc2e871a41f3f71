"""Job records in SQLite (jobs.db in the state folder) and each job's files in jobs/<id>/: the video, and once
scored records.jsonl and frames.csv, written atomically. A record outlives the process, so a restarted server
finds its jobs: those that were running are marked interrupted and queued again (`recover`)."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
FINISHED = (DONE, FAILED)


@dataclass
class Job:
    """One submitted video: `name` is what the user sent (the upload's file name, or the path under --data),
    `video` where it lies on disk; `progress` 0..1 with `stage` saying what runs; `error` the reason a failed job
    has no scores (the CLI's message); `attempts` counts starts (above 1 after a restart cut a run short)."""

    id: str
    name: str
    video: str
    source: str  # upload or path
    window: float | None = None
    status: str = QUEUED
    stage: str = "queued"
    progress: float = 0.0
    error: str | None = None
    note: str | None = None
    attempts: int = 0
    created: float = 0.0
    started: float | None = None
    finished: float | None = None

    def summary(self) -> dict:
        return dataclasses.asdict(self)


COLUMNS = [field.name for field in dataclasses.fields(Job)]
SCHEMA = f"CREATE TABLE IF NOT EXISTS jobs ({', '.join(COLUMNS)}, PRIMARY KEY (id))"


class JobStore:
    """The jobs of one state folder. One connection shared by the API's threads and the worker, under a lock
    (SQLite serialises writers anyway; a job's row is a few hundred bytes)."""

    def __init__(self, state: Path) -> None:
        self.state = Path(state)
        (self.state / "jobs").mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.state / "jobs.db", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")  # a crash mid-write leaves the last committed rows
        self._db.execute(SCHEMA)

    def folder(self, job_id: str) -> Path:
        return self.state / "jobs" / job_id

    def new(self, name: str, source: str, window: float | None = None) -> Job:
        """A job id and its folder; the job is recorded by `add` once its video is in place."""
        job = Job(id=uuid.uuid4().hex[:12], name=name, video="", source=source, window=window, created=time.time())
        self.folder(job.id).mkdir(parents=True)
        return job

    def add(self, job: Job) -> None:
        with self._lock:
            self._db.execute(f"INSERT INTO jobs VALUES ({', '.join('?' * len(COLUMNS))})",
                             [getattr(job, column) for column in COLUMNS])

    def update(self, job_id: str, **changes) -> None:
        assignments = ", ".join(f"{column} = ?" for column in changes)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", [*changes.values(), job_id])

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job(*row) if row else None

    def all(self, limit: int = 200) -> list[Job]:
        """The latest jobs first."""
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs ORDER BY created DESC LIMIT ?",
                                    (limit,)).fetchall()
        return [Job(*row) for row in rows]

    def waiting(self) -> list[Job]:
        """Queued jobs, oldest first."""
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE status = ? ORDER BY created",
                                    (QUEUED,)).fetchall()
        return [Job(*row) for row in rows]

    def recover(self) -> list[Job]:
        """Jobs a stopped server left running, marked interrupted and queued again; then every queued job, oldest
        first (what the worker takes at start)."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self._lock:
            self._db.execute("UPDATE jobs SET status = ?, stage = 'queued', progress = 0, "
                             "note = ? WHERE status = ?",
                             (QUEUED, f"interrupted by a server stop; queued again at {stamp}", RUNNING))
        return self.waiting()

    def drop_uploads(self, limit: int) -> list[Job]:
        """Delete the uploaded videos of the oldest finished jobs (by finish time) until the uploads kept for all
        jobs weigh at most `limit` bytes; the jobs whose upload went. Queued and running jobs keep theirs (a restart
        resumes them from it), and every job keeps its results."""
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE source = 'upload'").fetchall()
        jobs = [Job(*row) for row in rows]
        jobs = [job for job in jobs if job.video and Path(job.video).parent == self.folder(job.id)]  # its own file
        sizes = {job.id: _size(Path(job.video)) for job in jobs}
        total, dropped = sum(sizes.values()), []
        for job in sorted((job for job in jobs if job.status in FINISHED and sizes[job.id]),
                          key=lambda job: job.finished or 0.0):
            if total <= limit:
                break
            Path(job.video).unlink(missing_ok=True)
            total -= sizes[job.id]
            dropped.append(job)
        return dropped

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _size(path: Path) -> int:
    """A file's size in bytes; 0 once it is gone."""
    try:
        return path.stat().st_size
    except OSError:
        return 0
