"""`viper.serve.Client`: a running `viper serve` driven from a script (httpx): submit a file or a path under its
--data, wait for the job, fetch its records (those `viper predict` prints) and its per-frame table (a DataFrame).
A refused request or a failed job is a ServeError with the server's own message and the job (or file) it concerns,
so a script's log says what went wrong without a traceback into HTTP."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import IO, Any

from ..errors import ViperError
from .store import FAILED, FINISHED
from .worker import read_frames


class ServeError(ViperError):
    """A request the server refused, or a job that failed: `status` (HTTP; None for a failed job or no answer),
    `detail` (the server's message) and `retry_after` (seconds, when a full queue says when to come back)."""

    def __init__(self, message: str, status: int | None = None, detail: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.detail, self.retry_after = status, detail, retry_after


class Client:
    """The server at `url`, with its --token if it has one. A job is named by its id or by the job as the server
    shows it (what `job` and `wait` return). Close it, or use it in a `with` block."""

    def __init__(self, url: str = "http://127.0.0.1:8000", token: str | None = None, timeout: float = 120.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def submit(self, video: str | Path | IO[bytes], window: float | None = None) -> str:
        """Upload a video or photo (a path on this machine, or a file opened in binary mode), streamed; the new job's
        id. `window` (s): one record per consecutive window, as `viper predict --window`."""
        form = {} if window is None else {"window": str(window)}
        if isinstance(video, (str, Path)):
            with Path(video).open("rb") as file:
                return self.submit(file, window)
        name = Path(str(getattr(video, "name", "upload"))).name
        return self._call("POST", "/api/jobs", name, f"submitting {name}", files={"file": (name, video)},
                          data=form).json()["id"]

    def submit_path(self, path: str | Path, window: float | None = None) -> str:
        """Score a file the server reads itself: `path` under its --data folder (relative to it, or absolute
        inside it); the new job's id."""
        body: dict[str, Any] = {"path": str(path)} | ({} if window is None else {"window": window})
        return self._call("POST", "/api/jobs", str(path), f"submitting {path}", json=body).json()["id"]

    def job(self, job: str | dict) -> dict:
        """The job as the server shows it now: status, stage, progress (0..1), its records once done."""
        job_id = _id(job)
        return self._call("GET", f"/api/jobs/{job_id}", job_id, f"job {job_id}").json()

    def wait(self, job: str | dict, timeout: float = 600.0, poll: float = 0.25) -> dict:
        """The job once it has finished, polled every `poll` s: ServeError when it failed (with the CLI's message,
        e.g. an unreadable video), TimeoutError when it has not finished after `timeout` s."""
        job_id, deadline = _id(job), time.monotonic() + timeout
        while (view := self.job(job_id))["status"] not in FINISHED:
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} ({view['name']}) is still {view['stage']} after {timeout:g} s")
            time.sleep(poll)
        if view["status"] == FAILED:
            raise ServeError(f"job {job_id} ({view['name']}) failed: {view['error']}", detail=view["error"])
        return view

    def result(self, job: str | dict) -> list[dict]:
        """The job's records, as `viper predict --format json` prints them (one per person, or per window)."""
        job_id = _id(job)
        text = self._call("GET", f"/api/jobs/{job_id}/records.jsonl", job_id, f"job {job_id}").text
        return [json.loads(line) for line in text.splitlines() if line]

    def frames(self, job: str | dict):
        """The job's per-frame table as a pandas DataFrame (`viper predict --per-frame`'s columns), read from its
        CSV (floats exactly as written)."""
        job_id = _id(job)
        answer = self._call("GET", f"/api/jobs/{job_id}/frames.csv", job_id, f"job {job_id}")
        return read_frames(io.BytesIO(answer.content))

    def _call(self, method: str, route: str, subject: str, what: str, **request):
        """The server's answer, or a ServeError saying `what` was asked and the server's reason (prefixed with
        `what` unless the reason names `subject` already)."""
        import httpx

        try:
            answer = self._http.request(method, route, **request)
        except httpx.TransportError as error:
            raise ServeError(f"{what}: no answer from {self.url} ({error or type(error).__name__})") from None
        if not answer.is_error:
            return answer
        detail = _detail(answer)
        retry = answer.headers.get("retry-after", "")
        message = detail if subject in detail else f"{what}: {detail}"
        raise ServeError(f"{message} (HTTP {answer.status_code})", status=answer.status_code, detail=detail,
                         retry_after=float(retry) if retry.isdigit() else None)


def _id(job: str | dict) -> str:
    return job["id"] if isinstance(job, dict) else str(job)


def _detail(answer) -> str:
    """The server's reason: FastAPI's `detail` (a text, or a list of validation errors), else the body's start."""
    try:
        detail = answer.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return answer.text[:300] or answer.reason_phrase
    return detail if isinstance(detail, str) else json.dumps(detail)
