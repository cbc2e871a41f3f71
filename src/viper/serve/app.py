"""The HTTP API and the page (FastAPI). `create_app(config, predictor)` builds the application around one loaded
Predictor; `viper serve` runs it with uvicorn. Every /api route needs `Authorization: Bearer TOKEN` when the
server has a token; the page itself holds no data and is served to anyone who can reach the server."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ..errors import ViperError
from .config import ServeConfig
from .live import Live
from .store import DONE, FINISHED, Job, JobStore
from .uploads import MULTIPART_SLACK, MultipartReceiver, Refusal, data_path, probe
from .worker import QueueFull, Scorer, Worker, read_frames, read_records

STATIC = Path(__file__).with_name("static")
LIVE_MAX_BYTES = 5 * 2**20
SUBMIT_BODY = {  # the request body of POST /api/jobs, which the handler parses itself (streamed, size-limited)
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"},
            "window": {"type": "number", "description": "score windows of this many seconds (a trace)"}}}},
        "application/json": {"schema": {"type": "object", "required": ["path"], "properties": {
            "path": {"type": "string", "description": "a file under the server's --data folder"},
            "window": {"type": "number"}}}},
    },
}


@dataclass
class FrameRow:
    """One sampled frame of one person, as the page draws it: time (s), whose scores (`person`, 0 with --faces
    largest), their face box in decoded-frame pixels (None without a face) and the general model's probabilities."""

    time: float
    person: int
    box: list[float] | None
    values: dict[str, float | None]


def create_app(config: ServeConfig, predictor: Scorer) -> FastAPI:
    """The application: the job store in `config.state`, one worker scoring with `predictor` (a
    `viper.jobs.predict.Predictor` built with `also=PER_FRAME`, loaded once by the caller)."""
    config.check()
    store = JobStore(config.state)
    config.save()
    worker = Worker(store, predictor, config.max_waiting, config.keep_upload_bytes)
    live = Live(predictor, worker.lock, Path(config.state) / "live")

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        worker.start()
        yield
        await run_in_threadpool(worker.stop)
        store.close()

    app = FastAPI(title="viper", version=_version(), lifespan=lifespan,
                  description="Emotions from videos of people: submit a video, follow its progress, fetch the "
                              "records `viper predict` prints and the per-frame table.")
    app.state.store, app.state.worker, app.state.config = store, worker, config

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if config.token and request.url.path.startswith("/api/"):
            sent = request.headers.get("authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {config.token}".encode()):
                return JSONResponse({"detail": "this server needs `Authorization: Bearer TOKEN` (its --token)"},
                                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    @app.exception_handler(Refusal)
    async def refused(_: Request, refusal: Refusal):
        return JSONResponse({"detail": refusal.message}, status_code=refusal.status, headers=refusal.headers)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        """The model the server scores with and how many jobs wait."""
        return {"status": "ok", "model": str(config.checkpoint) if config.checkpoint else "general",
                "emotions": list(predictor.bundle.emotions), "faces": config.faces,
                "waiting": worker.waiting(), "max_waiting": config.max_waiting}

    @app.post("/api/jobs", status_code=201, openapi_extra={"requestBody": SUBMIT_BODY})
    async def submit(request: Request) -> JSONResponse:
        """Submit a video: multipart `file` (an upload) or JSON {"path": ...} (a file under --data); optional
        `window` (s) scores consecutive windows. 201 with the job; 413 too large; 422 unreadable (the CLI's
        message); 403 a path outside --data; 503 with Retry-After (s) when the queue is full."""
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            try:
                body = json.loads(await request.body())
                given = body["path"]
            except (ValueError, KeyError, TypeError):
                raise Refusal(400, 'send JSON {"path": "a file under --data"}') from None
            path = data_path(config.data, str(given))
            job = store.new(name=str(given), source="path", window=_window(body.get("window")))
            job.video = str(path)
        else:
            job = await _receive(request, store, config)
        try:
            await run_in_threadpool(probe, Path(job.video), job.name, config.max_seconds)
            worker.admit(job)
        except BaseException as error:  # refused, or the client gone: nothing of the job is kept
            shutil.rmtree(store.folder(job.id), ignore_errors=True)
            if isinstance(error, QueueFull):
                raise Refusal(503, str(error), {"Retry-After": str(error.retry_after)}) from None
            raise
        return JSONResponse(_view(job, store), status_code=201, headers={"Location": f"/api/jobs/{job.id}"})

    @app.get("/api/jobs")
    async def jobs() -> dict[str, Any]:
        """The latest jobs first (200 at most), and how many wait."""
        return {"jobs": [job.summary() for job in store.all()], "waiting": worker.waiting()}

    @app.get("/api/jobs/{job_id}")
    async def job(job_id: str) -> dict[str, Any]:
        """A job's status and progress; when done, its records (those `viper predict --format json` prints)."""
        return _view(_job(store, job_id), store)

    @app.get("/api/jobs/{job_id}/events")
    async def events(job_id: str) -> StreamingResponse:
        """Server-sent events: `progress` each time the job's status or progress changes, then `done` with the
        job (its records included) once it has finished or failed."""
        _job(store, job_id)
        return StreamingResponse(_events(store, job_id), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.get("/api/jobs/{job_id}/frames.csv")
    async def frames(job_id: str) -> FileResponse:
        """The per-frame table (`viper predict --per-frame`'s columns)."""
        return FileResponse(_result(store, job_id, "frames.csv"), media_type="text/csv",
                            filename=f"{Path(_job(store, job_id).name).stem}-frames.csv")

    @app.get("/api/jobs/{job_id}/frames.parquet", responses={406: {"description": "the server has no pyarrow"}})
    async def frames_parquet(job_id: str) -> FileResponse:
        """The per-frame table as Parquet: the CSV's columns and values, typed (written on first request; needs
        pyarrow on the server, else 406 pointing at the CSV)."""
        path = await run_in_threadpool(parquet_table, _result(store, job_id, "frames.csv"))
        return FileResponse(path, media_type="application/vnd.apache.parquet",
                            filename=f"{Path(_job(store, job_id).name).stem}-frames.parquet")

    @app.get("/api/jobs/{job_id}/records.jsonl")
    async def records(job_id: str) -> FileResponse:
        """The records, one JSON object per line, as `viper predict --format json` prints them."""
        return FileResponse(_result(store, job_id, "records.jsonl"), media_type="application/x-ndjson",
                            filename=f"{Path(_job(store, job_id).name).stem}-records.jsonl")

    @app.get("/api/jobs/{job_id}/trace")
    async def trace(job_id: str) -> dict[str, Any]:
        """The per-frame rows the page draws: time, person, face box and the emotion probabilities."""
        path = _result(store, job_id, "frames.csv")
        return await run_in_threadpool(_trace, path)

    @app.get("/api/jobs/{job_id}/video")
    async def video(job_id: str) -> FileResponse:
        """The job's video as it was scored (the page plays it); 410 once an upload was deleted to keep the
        uploads under --keep-uploads-mb, or a file under --data is gone (the results stay)."""
        job = _job(store, job_id)
        if not Path(job.video).is_file():
            why = (f"is no longer kept (uploads beyond --keep-uploads-mb {config.keep_uploads_mb:g} are deleted, "
                   "oldest first)") if job.source == "upload" else f"{job.name} is no longer under --data"
            raise Refusal(410, f"job {job_id}: its video {why}; its results remain")
        return FileResponse(job.video)

    @app.post("/api/live", openapi_extra={"requestBody": {"required": True, "content": {
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}})
    async def live_frame(request: Request, session: str = "default") -> dict[str, Any]:
        """One camera frame (a JPEG or PNG body, at most 5 MB): its scores, their mean over the session's last
        5 frames, the face box. The frame is not kept. While a job runs, the frame waits for it."""
        image = await request.body()
        if len(image) > LIVE_MAX_BYTES:
            raise Refusal(413, f"a live frame may be at most {LIVE_MAX_BYTES // 2**20} MB")
        try:
            return await run_in_threadpool(live.answer, session[:64], image)
        except ViperError as error:
            raise Refusal(422, str(error).split(": ", 1)[-1]) from None

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return RedirectResponse("/static/favicon.svg")

    return app


async def _receive(request: Request, store: JobStore, config: ServeConfig) -> Job:
    """An upload streamed into a new job's folder, refused (413) as soon as it passes the limit; a declared length
    over the limit is refused before a byte is read."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > config.max_upload_bytes + MULTIPART_SLACK:
        raise Refusal(413, f"the upload ({int(declared) / 2**20:.0f} MB) is larger than this server's limit of "
                           f"{config.max_upload_mb:g} MB (--max-upload-mb)")
    job, receiver = store.new(name="upload", source="upload"), None
    try:  # a refused form, a bad field or a client gone mid-upload leaves no folder behind
        receiver = MultipartReceiver(request.headers.get("content-type", ""), store.folder(job.id),
                                     config.max_upload_bytes)
        async for chunk in request.stream():
            receiver.feed(chunk)
        receiver.close()
        if receiver.upload is None:
            raise Refusal(400, "the form has no `file` field")
        job.name, job.video = receiver.upload.name, str(receiver.upload.path)
        job.window = _window(receiver.fields.get("window") or None)
    except BaseException:
        if receiver is not None:
            receiver.close()
        shutil.rmtree(store.folder(job.id), ignore_errors=True)
        raise
    return job


def _window(value) -> float | None:
    """A job's window (s), checked as `viper predict --window` checks it (a Refusal 422 otherwise)."""
    if value is None:
        return None
    from ..errors import SettingError
    from ..windows import check_window

    try:
        return check_window(float(value))
    except (SettingError, ValueError) as error:
        raise Refusal(422, f"window {getattr(error, 'problem', error)}") from None


def _job(store: JobStore, job_id: str) -> Job:
    job = store.get(job_id)
    if job is None:
        raise Refusal(404, f"no job {job_id}")
    return job


def _result(store: JobStore, job_id: str, name: str) -> Path:
    job = _job(store, job_id)
    if job.status != DONE:
        raise Refusal(409, f"job {job_id} is {job.status}; its results come when it is done")
    return store.folder(job_id) / name


def _view(job: Job, store: JobStore) -> dict[str, Any]:
    """A job as the API shows it: its summary, its records when done, and where its results are."""
    view = job.summary() | {"records": read_records(store.folder(job.id)) if job.status == DONE else [],
                            "video_kept": Path(job.video).is_file()}
    base = f"/api/jobs/{job.id}"
    return view | {"links": {"self": base, "events": f"{base}/events", "frames_csv": f"{base}/frames.csv",
                             "frames_parquet": f"{base}/frames.parquet", "records_jsonl": f"{base}/records.jsonl",
                             "video": f"{base}/video"}}


async def _events(store: JobStore, job_id: str):
    """The job's changes as server-sent events, polled from the store (a few rows a second), with a comment line
    every 15 s so proxies keep the stream open."""
    last, quiet = None, 0.0
    while True:
        job = store.get(job_id)
        now = (job.status, job.stage, round(job.progress, 3))
        if now != last:
            last, quiet = now, 0.0
            yield f"event: progress\ndata: {json.dumps(job.summary())}\n\n"
        if job.status in FINISHED:
            yield f"event: done\ndata: {json.dumps(_view(job, store))}\n\n"
            return
        if quiet > 15:
            quiet = 0.0
            yield ": waiting\n\n"
        await asyncio.sleep(0.2)
        quiet += 0.2


def parquet_table(csv: Path) -> Path:
    """frames.parquet beside a job's frames.csv, made from it once (floats read back exactly), or a Refusal(406)
    when pyarrow is missing: the CSV is always there."""
    target = csv.with_suffix(".parquet")
    if target.exists():
        return target
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise Refusal(406, "this server cannot write Parquet: pyarrow is not installed where it runs (pip install "
                           f"pyarrow); the same table is at /api/jobs/{csv.parent.name}/frames.csv") from None
    import io

    from ..atomic import atomic_write_bytes

    buffer = io.BytesIO()
    read_frames(csv).to_parquet(buffer, index=False, engine="pyarrow")
    atomic_write_bytes(target, buffer.getvalue())
    return target


def _trace(path: Path) -> dict[str, Any]:
    import pandas as pd

    table = pd.read_csv(path)
    emotions = [column.split(".", 1)[1] for column in table.columns if column.startswith("expression.")]
    rows = []
    for values in table.to_dict("records"):
        box = [float(values[f"face_{corner}"]) for corner in ("x0", "y0", "x1", "y1")]
        found = bool(values["face"]) and not any(pd.isna(box))
        probabilities = {emotion: None if pd.isna(values[f"expression.{emotion}"]) else
                         float(values[f"expression.{emotion}"]) for emotion in emotions}
        rows.append(asdict(FrameRow(time=float(values["time"]), person=int(values.get("person", 0) or 0),
                                    box=box if found else None, values=probabilities)))
    return {"emotions": emotions, "frames": rows}


def _version() -> str:
    from .. import __version__

    return __version__
