"""`viper serve`: the HTTP API on a real uvicorn server with the general model (a bundled take scored as `viper
predict` scores it, paths held inside --data, bad and oversize uploads, the token, a bounded queue under 50
simultaneous submissions, a server killed mid-job and restarted), and the page in headless Chromium driven by
Playwright (skipped only when no chromium binary or no Playwright is installed)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from serve_helpers import free_port, server_process, serving, still_from, wait_for, y4m_from
from typer.testing import CliRunner

import viper
from viper.cli import app as cli
from viper.jobs.demo import demo_clips
from viper.jobs.predict import PER_FRAME, Predictor
from viper.serve.app import create_app
from viper.serve.config import ServeConfig

TAKE = demo_clips() / "01-01-03-02-02-01-05.mp4"  # actor 05, happy, strong: 3.6 s
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_WAITING = 3


@pytest.fixture(scope="module")
def predictor(one_torch_thread):
    return Predictor(None, also=PER_FRAME, faces="all")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """--data with a take and a link out of it; a file beside it that no path may reach."""
    root = tmp_path_factory.mktemp("serve")
    (root / "data" / "sub").mkdir(parents=True)
    shutil.copy(TAKE, root / "data" / "sub" / "take.mp4")
    shutil.copy(TAKE, root / "secret.mp4")
    (root / "data" / "escape.mp4").symlink_to(root / "secret.mp4")
    return root / "data"


@pytest.fixture(scope="module")
def server(predictor, data, tmp_path_factory):
    config = ServeConfig(data=data, token=TOKEN, state=tmp_path_factory.mktemp("state"), max_waiting=MAX_WAITING,
                         max_upload_mb=1.0)
    with serving(create_app(config, predictor)) as url:
        yield url, config


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server[0], headers=AUTH, timeout=120) as session:
        yield session


def upload(client: httpx.Client, path: Path = TAKE, name: str | None = None, **form) -> httpx.Response:
    return client.post("/api/jobs", files={"file": (name or path.name, path.read_bytes(), "video/mp4")}, data=form)


def test_an_uploaded_take_is_scored_as_viper_predict_scores_it(client):
    response = upload(client)
    assert response.status_code == 201 and response.headers["location"] == f"/api/jobs/{response.json()['id']}"
    job_id = response.json()["id"]
    events = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as stream:  # server-sent events until done
        for line in stream.iter_lines():
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
            elif line.startswith("data: ") and events[-1] == "done":
                done = json.loads(line.removeprefix("data: "))
    assert events[-1] == "done" and events.count("progress") >= 2 and done["status"] == "done"
    [record] = done["records"]
    [expected], failures = viper.predict(TAKE)
    assert not failures and record["video"] == TAKE.name and record["coverage"] == expected["coverage"]
    assert max(record["scores"], key=record["scores"].get) == max(expected["scores"], key=expected["scores"].get)
    for emotion, value in expected["scores"].items():
        assert record["scores"][emotion] == pytest.approx(value, abs=1e-5)
    table = client.get(f"/api/jobs/{job_id}/frames.csv").text.splitlines()
    assert len(table) == 1 + record["coverage"]["frames"] and "expression.happy" in table[0]
    lines = client.get(f"/api/jobs/{job_id}/records.jsonl").text.splitlines()
    assert [json.loads(line) for line in lines] == done["records"]
    trace = client.get(f"/api/jobs/{job_id}/trace").json()
    assert trace["emotions"][1] == "happy" and len(trace["frames"]) == 32 and trace["frames"][0]["box"]
    assert job_id in [job["id"] for job in client.get("/api/jobs").json()["jobs"]]


def test_a_window_job_gives_a_record_per_window(client):
    job = wait_for(client, upload(client, window="1.0").json()["id"])
    assert job["status"] == "done" and [record["window"] for record in job["records"]] == [0, 1, 2]
    assert upload(client, window="0.001").status_code == 422


def test_paths_are_taken_only_inside_data(client, data):
    job = client.post("/api/jobs", json={"path": "sub/take.mp4"})
    assert job.status_code == 201
    assert wait_for(client, job.json()["id"])["records"][0]["video"] == "sub/take.mp4"
    for given, status in [("../secret.mp4", 403), ("sub/../../secret.mp4", 403), (str(data.parent / "secret.mp4"),
                          403), ("escape.mp4", 403), ("/etc/passwd", 403), ("gone.mp4", 404), ("sub", 400)]:
        response = client.post("/api/jobs", json={"path": given})
        assert response.status_code == status, (given, response.json())
    assert "outside --data" in client.post("/api/jobs", json={"path": "escape.mp4"}).json()["detail"]


def test_an_unreadable_upload_gets_the_clis_message(client, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    response = upload(client, text)
    _, [(_, reason)] = viper.predict(text)  # the reason `viper predict` prints after `error: `
    assert response.status_code == 422 and response.json()["detail"] == reason.replace(str(text), "notes.mp4")
    assert response.json()["detail"].startswith("notes.mp4: not a readable video")


def test_oversize_uploads_are_refused_with_413(server, client, tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(TAKE.read_bytes() * 12)  # 1.2 MB against a 1 MB limit, streamed: refused mid-way
    response = upload(client, big)
    assert response.status_code == 413 and "--max-upload-mb" in response.json()["detail"]
    host, port = server[0].removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)  # a declared 2 GB: refused unread
    connection.putrequest("POST", "/api/jobs")
    for name, value in {**AUTH, "Content-Type": "multipart/form-data; boundary=x",
                        "Content-Length": str(2 * 1024**3)}.items():
        connection.putheader(name, value)
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 413 and b"2048 MB" in answer.read()
    assert not [job for job in client.get("/api/jobs").json()["jobs"] if job["name"] == "big.mp4"]


def test_the_api_needs_the_token_and_a_public_host_needs_one(server):
    url, _ = server
    assert httpx.get(f"{url}/api/jobs").status_code == 401
    assert httpx.get(f"{url}/api/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(f"{url}/api/jobs", json={"path": "sub/take.mp4"}).status_code == 401
    assert httpx.get(f"{url}/").status_code == 200  # the page holds no data
    spec = httpx.get(f"{url}/openapi.json").json()
    assert {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/events", "/api/jobs/{job_id}/frames.csv"} <= set(
        spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/api/jobs"]["post"]["requestBody"]["content"]
    refused = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"])
    assert refused.exit_code == 2 and "--token is required to serve on 0.0.0.0" in refused.output


def test_fifty_simultaneous_submissions_are_bounded_and_all_finish(server, client, tmp_path):
    """50 clients at once against a queue of 3: each is answered 201 or 503 with Retry-After, and those refused
    that come back when told are all taken in the end; every job finishes, under its own name, and no refused
    upload is left on disk. A still image each, so the 50 jobs take seconds."""
    still = still_from(TAKE, tmp_path / "still.jpg")
    first: dict[int, int] = {}

    def until_taken(index: int) -> str:
        while True:
            response = upload(client, still, name=f"still-{index}.jpg")
            first.setdefault(index, response.status_code)
            if response.status_code == 201:
                return response.json()["id"]
            assert response.status_code == 503 and "--max-waiting 3" in response.json()["detail"], response.text
            time.sleep(int(response.headers["retry-after"]))

    with ThreadPoolExecutor(50) as pool:
        accepted = list(pool.map(until_taken, range(50)))
    assert set(first.values()) == {201, 503} and MAX_WAITING <= list(first.values()).count(201) < 50, first
    jobs = [wait_for(client, job_id) for job_id in accepted]
    assert len(set(accepted)) == 50 and all(job["status"] == "done" for job in jobs)
    assert [job["records"][0]["video"] for job in jobs] == [f"still-{index}.jpg" for index in range(50)]
    assert all(job["records"][0]["media"] == "image" for job in jobs)
    listed = {job["id"] for job in client.get("/api/jobs").json()["jobs"]}
    folders = {folder.name for folder in (Path(server[1].state) / "jobs").iterdir()}
    assert set(accepted) <= listed and folders == listed  # refused uploads left nothing behind


def test_a_server_killed_mid_job_finishes_it_after_a_restart(tmp_path):
    port, state = free_port(), tmp_path / "state"
    process = server_process(state, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            job_id = upload(client, window="0.25").json()["id"]  # 13 windows: a few seconds of work
            wait_for(client, job_id, until=("running",))
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            process = server_process(state, port)
            job = wait_for(client, job_id)
    finally:
        process.kill()
        process.wait()
    assert job["status"] == "done" and job["attempts"] == 2 and "interrupted" in job["note"]
    assert [record["window"] for record in job["records"]] == list(range(13))
    assert json.loads((state / "config.json").read_text())["max_waiting"] == 8


def chromium() -> str:
    """The system's chromium (Playwright drives it; it never downloads a browser here)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    pytest.skip("no chromium binary (apt-get install chromium); the page test needs a browser")


def test_the_page_plays_a_take_over_its_trace_in_chromium(server, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (uses the system chromium)")
    url, _ = server
    [expected], _ = viper.predict(TAKE)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1000, "height": 1100})
        problems = []
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{url}/#token={TOKEN}")
        page.set_input_files("#file", str(TAKE))
        page.wait_for_selector(".top-emotion", timeout=120_000)
        assert page.inner_text(".top-emotion") == max(expected["scores"], key=expected["scores"].get) == "happy"
        assert "faces on 32/32 frames" in page.inner_text("#coverage")
        page.wait_for_function("document.getElementById('video').readyState >= 1", timeout=30_000)
        assert int(page.get_attribute("#boxes", "data-boxes")) == 1  # the face box over the first frame
        page.screenshot(path=str(tmp_path / "page-start.png"))
        page.evaluate("document.getElementById('video').play()")
        page.wait_for_timeout(1500)
        played = float(page.get_attribute("#cursor", "data-time"))
        if played == 0:  # a chromium without h264 does not play the take: move the playhead instead
            page.evaluate("document.getElementById('video').currentTime = 2.0")
            page.wait_for_timeout(500)
        time_now = float(page.get_attribute("#cursor", "data-time"))
        left = float(page.eval_on_selector("#cursor", "cursor => parseFloat(cursor.style.left)"))
        assert time_now > 0.5 and left > 50, (time_now, left)
        page.screenshot(path=str(tmp_path / "page-playing.png"))
        assert page.locator("#jobs li").count() >= 1 and not problems, problems
        browser.close()
    print(f"video {'played' if played else 'did not play (cursor moved by currentTime)'}; screenshots in {tmp_path}")


def test_live_mode_scores_chromiums_fake_camera(server, tmp_path):
    """The page's live mode fed a bundled take as Chromium's fake camera: a face box and the take's top emotion
    within seconds; the frames scored per second are printed (-s)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (uses the system chromium)")
    camera = y4m_from(TAKE, tmp_path / "take.y4m")
    url, _ = server
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=[
            "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}"])
        page = browser.new_page()
        page.goto(f"{url}/#token={TOKEN}")
        page.click("#live-start")
        page.wait_for_function("document.getElementById('live-boxes').dataset.box === '1'", timeout=30_000)
        page.wait_for_timeout(3000)  # a few seconds of frames: the smoothed top emotion settles
        assert page.inner_text("#live-top") == "happy", page.inner_text("#live-probs")
        page.screenshot(path=str(tmp_path / "live.png"))
        print(page.inner_text("#live-rate"))
        browser.close()
    assert not list((Path(server[1].state) / "live").iterdir())  # no frame kept
