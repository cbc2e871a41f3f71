"""`viper.serve.Client` against a real server (uvicorn in a thread, the general model): submit an upload, an open
file and a path under --data, wait, records and per-frame table as the API gives them; its errors name the job or
file with the server's message. The per-frame table as Parquet (or a clear 406 where pyarrow is absent), and the
cap on kept uploads: the oldest finished jobs lose their video, never their results."""

from __future__ import annotations

import importlib.util
import io
import shutil
from pathlib import Path

import httpx
import pandas as pd
import pytest
from serve_helpers import serving, still_from

from viper.jobs.demo import demo_clips
from viper.jobs.predict import PER_FRAME, Predictor
from viper.serve import Client, ServeError
from viper.serve.app import create_app
from viper.serve.config import ServeConfig
from viper.serve.worker import read_frames

TAKE = demo_clips() / "01-01-03-02-02-01-05.mp4"  # actor 05, happy, strong: 3.6 s
TOKEN = "client-token"


@pytest.fixture(scope="module")
def predictor(one_torch_thread):
    return Predictor(None, also=PER_FRAME, faces="all")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("client") / "data"
    root.mkdir()
    shutil.copy(TAKE, root / "take.mp4")
    return root


@pytest.fixture(scope="module")
def url(predictor, data, tmp_path_factory):
    config = ServeConfig(data=data, token=TOKEN, state=tmp_path_factory.mktemp("state"))
    with serving(create_app(config, predictor)) as base:
        yield base


@pytest.fixture
def client(url):
    with Client(url, token=TOKEN) as session:
        yield session


def test_the_client_submits_waits_and_fetches_records_and_frames(client, url):
    job = client.submit(TAKE)
    with TAKE.open("rb") as file:
        from_file = client.submit(file, window=1.0)
    from_path = client.submit_path("take.mp4")
    done = client.wait(job, timeout=240)
    records = client.result(job)
    assert done["status"] == "done" and records == done["records"] and records[0]["video"] == TAKE.name
    assert max(records[0]["scores"], key=records[0]["scores"].get) == "happy"
    frames = client.frames(done)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        csv = read_frames(io.BytesIO(http.get(f"/api/jobs/{job}/frames.csv").content))
    pd.testing.assert_frame_equal(frames, csv)
    assert len(frames) == records[0]["coverage"]["frames"] and frames["expression.happy"].notna().all()
    assert [record["window"] for record in client.result(client.wait(from_file))] == [0, 1, 2]
    assert client.result(client.wait(from_path))[0]["scores"] == records[0]["scores"]


def test_client_errors_name_the_job_or_file_and_the_servers_reason(client, url, data, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(ServeError, match=r"^notes.mp4: not a readable video.*\(HTTP 422\)$") as refused:
        client.submit(text)
    assert refused.value.status == 422
    with pytest.raises(ServeError, match=r"`\.\.` is not allowed.*\(HTTP 403\)"):
        client.submit_path("../secret.mp4")
    with pytest.raises(ServeError, match=r"^no job nosuchjob \(HTTP 404\)$"):
        client.frames("nosuchjob")
    with Client(url) as anonymous, pytest.raises(ServeError, match=r"^submitting take.mp4: .*Bearer.*\(HTTP 401\)"):
        anonymous.submit_path("take.mp4")
    busy = client.submit(TAKE)  # the worker is busy with it while the next job's file disappears
    shutil.copy(TAKE, data / "gone.mp4")
    gone = client.submit_path("gone.mp4")
    (data / "gone.mp4").unlink()
    with pytest.raises(ServeError, match=rf"^job {gone} is (queued|running); .*\(HTTP 409\)$"):
        client.result(gone)
    with pytest.raises(TimeoutError, match=rf"^job {gone} \(gone.mp4\) is still"):
        client.wait(gone, timeout=0.01)
    with pytest.raises(ServeError, match=rf"^job {gone} \(gone.mp4\) failed: gone.mp4") as failed:
        client.wait(gone, timeout=240)
    assert failed.value.status is None and "gone.mp4" in failed.value.detail
    assert client.wait(busy)["status"] == "done"
    with Client("http://127.0.0.1:9") as nobody, pytest.raises(ServeError, match=r"^job any: no answer from"):
        nobody.job("any")


def test_the_per_frame_table_comes_as_parquet_or_a_clear_406(client, url):
    job = client.wait(client.submit(TAKE))
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        answer = http.get(f"/api/jobs/{job['id']}/frames.parquet")
    assert job["links"]["frames_parquet"] == f"/api/jobs/{job['id']}/frames.parquet"
    if importlib.util.find_spec("pyarrow") is None:
        assert answer.status_code == 406, answer.text
        assert "pip install pyarrow" in answer.json()["detail"] and f"{job['id']}/frames.csv" in answer.json()["detail"]
        pytest.skip("pyarrow is not installed: the 406 was checked, the Parquet table cannot be")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/vnd.apache.parquet"
    table = pd.read_parquet(io.BytesIO(answer.content))
    pd.testing.assert_frame_equal(table, client.frames(job))  # the CSV's columns, values and types
    assert table["face"].dtype == bool and table["expression.happy"].dtype == "float64"


def test_uploads_beyond_the_cap_lose_their_video_oldest_first_and_keep_results(predictor, tmp_path):
    still = still_from(TAKE, tmp_path / "still.jpg")
    cap = 2.5 * still.stat().st_size  # room for two uploads
    config = ServeConfig(state=tmp_path / "state", keep_uploads_mb=cap / 2**20)
    with serving(create_app(config, predictor)) as base, Client(base) as client:
        jobs = [client.wait(client.submit(still))["id"] for _ in range(4)]
        views = [client.job(job) for job in jobs]
        assert [view["video_kept"] for view in views] == [False, False, True, True]
        assert all(client.result(job)[0]["scores"] == client.result(jobs[0])[0]["scores"] for job in jobs)
        assert len(client.frames(jobs[0])) == 1
        gone = httpx.get(f"{base}/api/jobs/{jobs[0]}/video")
        assert gone.status_code == 410 and "--keep-uploads-mb" in gone.json()["detail"]
        assert httpx.get(f"{base}/api/jobs/{jobs[3]}/video").content == still.read_bytes()
    kept = [path for path in (tmp_path / "state" / "jobs").rglob("upload*")]
    assert len(kept) == 2 and sum(path.stat().st_size for path in kept) <= cap
