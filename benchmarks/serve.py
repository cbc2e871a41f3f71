"""Latency of one 3.6-second bundled take through `viper serve`'s API (upload, score, records back) with a warm
server, against a cold `viper predict` process (Python start, model loading, the same scoring), in one run, with
the load average before and after. `python benchmarks/serve.py [--repeats 3] [--threads 1]`."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from serve_helpers import free_port, server_process  # noqa: E402

from viper.jobs.demo import demo_clips  # noqa: E402

TAKE = demo_clips() / "01-01-03-02-02-01-05.mp4"


def through_api(client: httpx.Client) -> float:
    """Seconds from sending the take to holding its records (server-sent events until done)."""
    start = time.perf_counter()
    job = client.post("/api/jobs", files={"file": (TAKE.name, TAKE.read_bytes(), "video/mp4")}).json()
    with client.stream("GET", f"/api/jobs/{job['id']}/events") as stream:
        for line in stream.iter_lines():
            if line == "event: done":
                break
    assert client.get(f"/api/jobs/{job['id']}").json()["records"]
    return time.perf_counter() - start


def cold_predict(threads: int) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "viper", "--threads", str(threads), "predict", str(TAKE)], check=True,
                   capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of both (1: fair on a shared machine)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    cold = [cold_predict(args.threads) for _ in range(args.repeats)]
    with tempfile.TemporaryDirectory() as state:
        port = free_port()
        started = time.perf_counter()
        server = server_process(Path(state), port, "--max-waiting", "2")
        startup = time.perf_counter() - started
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
                first = through_api(client)
                warm = [through_api(client) for _ in range(args.repeats)]
        finally:
            server.kill()
            server.wait()
    load_after = os.getloadavg()
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, load (1/5/15 min) before "
          f"{'/'.join(f'{x:.1f}' for x in load_before)}, after {'/'.join(f'{x:.1f}' for x in load_after)}; "
          f"{TAKE.name}, {args.threads} torch thread(s), {args.repeats} runs each")
    print(f"cold `viper predict`:        median {statistics.median(cold):.2f} s  (runs: "
          f"{', '.join(f'{x:.2f}' for x in cold)})")
    print(f"server start to ready:       {startup:.2f} s (once)")
    print(f"warm API, first job:         {first:.2f} s")
    print(f"warm API, upload to records: median {statistics.median(warm):.2f} s  (runs: "
          f"{', '.join(f'{x:.2f}' for x in warm)})")


if __name__ == "__main__":
    main()
