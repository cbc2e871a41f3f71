"""`viper serve`'s figures, in one run with the load average before and after: the latency of one 3.6-second bundled
take through the API (upload, score, records back) with a warm server against a cold `viper predict` process
(Python start, model loading, the same scoring); and the live rate, camera frames scored per second when they are
sent back to back (one in flight, as the page sends them; the page itself sends 5 a second at most), for the take's
224-pixel frames (what Chromium's fake camera sends in the tests) and for 640x480 webcam frames.
`--before SRC` runs a second server from another viper source folder (e.g. `git archive` of an older commit) and
alternates the live rounds between the two, so both see the same load.
Recorded as the figures `serve-latency` (api) and `serve-live` (live, without --before), docs/figures/*.json,
shown in docs/guide/serve.md.
`python benchmarks/serve.py [--what all|api|live] [--repeats 3] [--live-frames 60] [--before /tmp/old/src]`."""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import figures
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from serve_helpers import SRC, free_port, server_process  # noqa: E402

from viper.jobs.demo import demo_clips  # noqa: E402

TAKE = demo_clips() / "01-01-03-02-02-01-05.mp4"
# the server, its live scoring, and what a job and `viper predict` run: the general model through ONNX Runtime
MEASURES = ["src/viper/serve", "src/viper/jobs/predict.py", "src/viper/general_model.py", "src/viper/runtime.py"]


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


def camera_frames() -> dict[str, list[bytes]]:
    """The take's frames as the page sends them (JPEG, quality 0.85): as they are (224 px, the tests' fake camera)
    and pasted at 448 px into a 640x480 frame (a webcam's, at the page's largest size)."""
    import av
    from PIL import Image

    def jpeg(image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        return buffer.getvalue()

    sets: dict[str, list[bytes]] = {"224x224": [], "640x480": []}
    with av.open(str(TAKE)) as source:
        for frame in source.decode(video=0):
            image = frame.to_image()
            webcam = Image.new("RGB", (640, 480), (96, 96, 96))
            webcam.paste(image.resize((448, 448)), (96, 16))
            sets["224x224"].append(jpeg(image))
            sets["640x480"].append(jpeg(webcam))
    return sets


def live_rate(client: httpx.Client, frames: list[bytes], count: int) -> float:
    """Frames scored per second, `count` frames sent one after another to /api/live (a session of its own)."""
    session = f"bench{time.monotonic_ns()}"
    start = time.perf_counter()
    for index in range(count):
        answer = client.post(f"/api/live?session={session}", content=frames[index % len(frames)],
                             headers={"Content-Type": "image/jpeg"})
        assert answer.status_code == 200 and answer.json()["box"], answer.text
    return count / (time.perf_counter() - start)


def measure_live(servers: dict[str, str], count: int, rounds: int) -> dict[tuple[str, str], list[float]]:
    """Frames per second per (server, frame size), the servers taking turns round after round."""
    sets, rates = camera_frames(), {}
    clients = {name: httpx.Client(base_url=url, timeout=120) for name, url in servers.items()}
    for client in clients.values():
        live_rate(client, sets["224x224"], 5)  # warm: first calls allocate
    for _ in range(rounds):
        for size, frames in sets.items():
            for name, client in clients.items():
                rates.setdefault((name, size), []).append(live_rate(client, frames, count))
    for client in clients.values():
        client.close()
    return rates


def commit() -> str:
    root = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=root, capture_output=True, text=True)
    return head.stdout.strip() + (" + uncommitted changes in src" if dirty.stdout.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--what", choices=("all", "api", "live"), default="all")
    parser.add_argument("--repeats", type=int, default=3, help="API jobs and cold predicts; live rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of both (1: fair on a shared machine)")
    parser.add_argument("--live-frames", type=int, default=60, help="frames per live measurement")
    parser.add_argument("--before", type=Path, help="another viper src folder, served beside this one (live only)")
    args = parser.parse_args()
    load_before, began = os.getloadavg(), figures.begin()
    cold = [cold_predict(args.threads) for _ in range(args.repeats)] if args.what in ("all", "api") else []
    sources = {"this": SRC} | ({"before": args.before} if args.before else {})
    processes, urls = {}, {}
    with tempfile.TemporaryDirectory() as state:
        try:
            started = time.perf_counter()
            for name, src in sources.items():
                port = free_port()
                processes[name] = server_process(Path(state) / name, port, "--max-waiting", "2", src=src)
                urls[name] = f"http://127.0.0.1:{port}"
            startup = (time.perf_counter() - started) / len(sources)
            if args.what in ("all", "api"):
                with httpx.Client(base_url=urls["this"], timeout=300) as client:
                    first = through_api(client)
                    warm = [through_api(client) for _ in range(args.repeats)]
            rates = measure_live(urls, args.live_frames, args.repeats) if args.what in ("all", "live") else {}
        finally:
            for process in processes.values():
                process.kill()
                process.wait()
    load_after = os.getloadavg()
    print(f"{time.strftime('%Y-%m-%d')}, commit {commit()}, {os.cpu_count()} CPUs, load (1/5/15 min) before "
          f"{'/'.join(f'{x:.1f}' for x in load_before)}, after {'/'.join(f'{x:.1f}' for x in load_after)}; "
          f"{TAKE.name}, {args.threads} torch thread(s), {args.repeats} runs each")
    if cold:
        print(f"cold `viper predict`:        median {statistics.median(cold):.2f} s  (runs: "
              f"{', '.join(f'{x:.2f}' for x in cold)})")
        print(f"server start to ready:       {startup:.2f} s (once)")
        print(f"warm API, first job:         {first:.2f} s")
        print(f"warm API, upload to records: median {statistics.median(warm):.2f} s  (runs: "
              f"{', '.join(f'{x:.2f}' for x in warm)})")
    for (name, size), values in rates.items():
        label = f"live, {size} frames" + (f" ({name}: {sources[name]})" if args.before else "")
        print(f"{label}: median {statistics.median(values):.1f} frames/s  (rounds of {args.live_frames}: "
              f"{', '.join(f'{x:.1f}' for x in values)})")
    settings = f"{TAKE.name}, {args.threads} torch thread(s)"
    if cold:
        rows = [{"what": "a cold `viper predict` process (Python, models, the take)", "seconds": cold},
                {"what": "server start to ready (once)", "seconds": [startup]},
                {"what": "warm server, first job: upload to records", "seconds": [first]},
                {"what": "warm server, later jobs: upload to records", "seconds": warm}]
        figures.record("serve-latency", [{**row, "median": statistics.median(row["seconds"]),
                                          "runs": ", ".join(f"{x:.2f}" for x in row["seconds"])} for row in rows],
                       began=began, measures=MEASURES, notes=f"{settings}, {args.repeats} runs each",
                       columns=[("what", "one 3.6-second take"), ("median", "median", "{:.2f} s"),
                                ("runs", "runs (s)")])
    if rates and not args.before:
        figures.record("serve-live", [{"frames": f"{size} JPEG", "rate": statistics.median(values),
                                       "runs": ", ".join(f"{x:.1f}" for x in values)}
                                      for (_, size), values in rates.items()],
                       began=began, measures=MEASURES,
                       notes=f"{settings}, frames sent back to back, one in flight, "
                             f"{args.repeats} rounds of {args.live_frames}",
                       columns=[("frames", "camera frames"), ("rate", "scored per second (median)", "{:.1f}"),
                                ("runs", "rounds")])


if __name__ == "__main__":
    main()
