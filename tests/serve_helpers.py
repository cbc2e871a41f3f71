"""Helpers of tests/test_serve.py: a real uvicorn server in a thread, or in its own process (to be killed), on a
free port; waiting for a job."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(app):
    """The app served by uvicorn in a thread of this process; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def server_process(state: Path, port: int, *options: str, src: Path = SRC) -> subprocess.Popen:
    """`viper serve` in its own process, once it answers /api/health; `src`: the viper it imports (a benchmark
    compares two versions side by side)."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "viper", "--threads", "1", "serve", "--port", str(port),
                                "--state", str(state), *options], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    raise AssertionError("viper serve did not answer within 180 s")


def wait_for(client: httpx.Client, job_id: str, timeout: float = 240, until=("done", "failed")) -> dict:
    """The job once its status is one of `until`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in until:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


def y4m_from(video: Path, out: Path) -> Path:
    """The video's frames as a YUV4MPEG2 file (a text header, then each frame's Y, U and V planes), what Chromium's
    fake camera plays (--use-file-for-fake-video-capture)."""
    import av

    with av.open(str(video)) as source, open(out, "wb") as target:
        stream = source.streams.video[0]
        rate = stream.average_rate or 25
        width, height = stream.codec_context.width // 2 * 2, stream.codec_context.height // 2 * 2
        target.write(f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} Ip A1:1 C420jpeg\n".encode())
        for frame in source.decode(stream):
            planes = frame.reformat(width=width, height=height, format="yuv420p").to_ndarray()
            target.write(b"FRAME\n" + planes.tobytes())
    return out


def still_from(video: Path, out: Path, index: int = 8) -> Path:
    """One frame of the video as a JPEG: a job that costs the server a single frame (many of them stay quick)."""
    import av

    with av.open(str(video)) as source:
        for number, frame in enumerate(source.decode(video=0)):
            if number == index:
                frame.to_image().save(out, quality=90)
                return out
    raise AssertionError(f"{video} has no frame {index}")
