"""`viper predict --window S`: a recording read as consecutive windows of N frames (the right frames, in one pass,
in any container), scored window by window into a trace that follows what happens, with its table and plot."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import numpy as np
import pytest
from faces_media import SMILING, SURPRISED, on_scene, scene, take_frames, take_speech, write_clip
from media import frame_number, make_audio_only, make_numbered_clip, make_variable_rate_clip
from typer.testing import CliRunner

from viper.cli import app
from viper.video import read_frames
from viper.windows import read_windows, window_spans


def test_window_spans_tile_the_recording():
    spans = list(window_spans(0.0, 10.0, 2.5))
    assert [(w.index, w.start, w.end, w.count) for w in spans] == [(k, 2.5 * k, 2.5 * k + 2.5, 4) for k in range(4)]
    tail = list(window_spans(0.0, 11.5, 2.5))  # the last window holds what is left
    assert len(tail) == 5 and (tail[-1].start, tail[-1].end) == (10.0, 11.5)
    short = list(window_spans(1.0, 11.1, 2.5))  # ... and less than half a window joins the one before
    assert len(short) == 4 and (short[-1].start, short[-1].end) == (8.5, 11.1)
    assert [(w.start, w.end) for w in window_spans(3.0, 3.0, 10.0)] == [(3.0, 3.0)]  # one frame: one window
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            window_spans(0.0, 10.0, bad)


@pytest.mark.parametrize("suffix, container, seconds, n", [
    (".mp4", None, 2.5, 5), (".ts", None, 2.5, 5), (".mpg", "mpeg", 2.5, 5), (".mp4", None, 20.0, 3)])
def test_each_window_gets_its_own_frames_spread_over_it(tmp_path, suffix, container, seconds, n):
    """Frame k of the numbered clip shows k: every window's frames lie inside it, spread from its first frame to its
    last, and are the frames they claim (MPEG-TS; H.264 in MPEG-PS, whose packets mostly carry no time, decodes in
    order timed by count; 20 s windows of 3 frames seek across gaps)."""
    fps, frames = (10, 100) if seconds < 10 else (5, 250)  # numbers up to 255
    clip = make_numbered_clip(tmp_path / f"numbers{suffix}", frames=frames, fps=fps, size=(128, 48),
                              container_format=container)
    windows = list(read_windows(clip, n, seconds))
    assert len(windows) == len(list(window_spans(0.0, (frames - 1) / fps, seconds))) > 1
    first = windows[0][0].start  # MPEG-TS starts its clock at 1.4 s
    for window, times, video in windows:
        assert len(video.frames) == n and np.array_equal(video.times, times)
        numbers = [frame_number(image) for image in video.frames]
        assert numbers == [round((t - first) * fps) for t in video.frame_times]
        last = window.index == len(windows) - 1
        inside = [k for k in range(frames)
                  if window.start - 1e-6 <= first + k / fps and (first + k / fps < window.end - 1e-6 or last)]
        assert numbers[0] == inside[0] and numbers[-1] == inside[-1]
        assert numbers == sorted(numbers) and video.repeated == n - len(set(numbers))


def test_a_window_longer_than_the_clip_reads_what_a_clip_reads(tmp_path):
    clip = make_numbered_clip(tmp_path / "short.mp4", frames=37, fps=10, size=(128, 48))
    whole = read_frames(clip, 8)
    ((window, _, video),) = read_windows(clip, 8, 60.0)
    assert (window.start, window.end) == (0.0, pytest.approx(3.6))
    assert np.array_equal(video.frame_times, whole.frame_times)
    assert all(np.array_equal(a, b) for a, b in zip(video.frames, whole.frames, strict=True))


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """7.2 s of a real face smiling, 7.2 s of him surprised, then 7.2 s of an empty room, speech all along: with
    windows of 7.2 s each window holds one of them (15 frames each at 25/6 fps, the takes looped twice)."""
    smiling, surprised = ([on_scene(face) for face in take_frames(name)] * 2 for name in (SMILING, SURPRISED))
    speech = np.concatenate([take_speech(SMILING)] * 2 + [take_speech(SURPRISED)] * 4)
    path = tmp_path_factory.mktemp("recording") / "interview.mp4"
    return write_clip(path, smiling + surprised + [scene()] * 30, speech=speech)


def test_the_trace_follows_the_face_over_time(recording, tmp_path):
    import viper

    results, failures = viper.predict(recording, window=7.2)
    assert failures == [] and [r["window"] for r in results] == [0, 1, 2]
    assert [r["start"] for r in results] == pytest.approx([0.0, 7.2, 14.4])
    assert results[-1]["end"] == pytest.approx(21.36)  # the last frame's time
    tops = [max(r["scores"], key=r["scores"].get) for r in results[:2]]
    assert tops == ["happy", "surprised"]
    assert [r["coverage"]["face"] for r in results] == [32, 32, 0]
    assert results[2]["warnings"][0].startswith("no face found")
    audio = [r["coverage"]["audio"] for r in results]  # the looped takes' silences hold no sound: 22, 21, 20 with
    assert all(16 <= count < 32 for count in audio)  # PyAV 18's AAC encoder here, 22 each with PyAV 19's

    table = viper.trace_table(results)
    assert list(table.columns[:5]) == ["video", "media", "window", "start", "end"] and len(table) == 3
    assert set(table["media"]) == {"video"}
    assert table.loc[0, "happy"] == pytest.approx(results[0]["scores"]["happy"])
    path = viper.plot_trace(table, tmp_path / "trace.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    frames, records, _ = viper.predict_frames(recording, window=7.2)
    assert records == results and len(frames) == 3 * 32
    spans = frames.groupby("window")["time"].agg(["min", "max"]).to_numpy().ravel()
    assert spans.tolist() == pytest.approx([0.0, 6.96, 7.2, 14.16, 14.4, 21.36])
    assert frames.loc[frames.window == 1, "score.surprised"].eq(results[1]["scores"]["surprised"]).all()


def test_a_trained_run_scores_windows_with_its_own_frames_and_features(recording, tiny_demo_run):
    import viper

    results, failures = viper.predict(recording, checkpoint=tiny_demo_run / "run", window=7.2)
    assert failures == [] and [r["coverage"]["frames"] for r in results] == [8, 8, 8]  # the run's N
    assert [r["coverage"]["face"] for r in results] == [8, 8, 0]
    assert results[2]["warnings"][0] == "no face found: scores come from audio only"  # it reads audio too


def test_an_audio_only_file_gets_windows_of_its_audio(tmp_path):
    import viper

    results, failures = viper.predict(make_audio_only(tmp_path / "voice.m4a", seconds=2.0), window=1.0)
    assert failures == [] and [r["window"] for r in results] == [0, 1]  # AAC's 46 ms of priming join window 1
    assert results[1]["end"] == pytest.approx(2.0, abs=0.1)
    assert all(r["coverage"]["face"] == 0 and r["coverage"]["audio"] > 0 for r in results)


def test_cli_prints_a_record_per_window_and_plots_it(recording, tmp_path):
    plot = tmp_path / "trace.svg"
    result = CliRunner().invoke(app, ["predict", str(recording), "--window", "7.2", "--format", "csv",
                                      "--plot", str(plot)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith(("video,", str(recording)))]
    assert len(lines) == 4 and lines[0].startswith(
        "video,media,window,start,end,person,person_frames,person_first,person_last,person_box,neutral,happy,")
    assert plot.read_text().lstrip().startswith("<?xml") and f"plot: {plot}" in result.stderr
    json_out = CliRunner().invoke(app, ["predict", str(recording), "--window", "10"], catch_exceptions=False)
    records = [json.loads(line) for line in json_out.stdout.splitlines() if line.startswith("{")]
    assert [(r["window"], r["start"], r["end"]) for r in records] == [(0, 0.0, 10.0), (1, 10.0, 21.36)]


FLOOR = "(seconds: a window holds at least 3 frames of a 30 fps video)"


@pytest.mark.parametrize("arguments, message", [
    (["--window", "0"], f"--window must be a number at least 0.1, got 0 {FLOOR}"),
    (["--window", "nan"], f"--window must be a number at least 0.1, got nan {FLOOR}"),
    (["--window", "1e-9"], f"--window must be a number at least 0.1, got 1e-09 {FLOOR}"),
    (["--window", "1e-3"], f"--window must be a number at least 0.1, got 0.001 {FLOOR}"),
    (["--plot", "t.png"], "--plot draws the trace of --window S"),
    (["--window", "5", "--plot", "t.txt"], "t.txt: exists and is not a folder"),
])
def test_bad_window_options_are_refused_before_any_model_loads(recording, tmp_path, monkeypatch, arguments, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text("notes")
    result = CliRunner().invoke(app, ["predict", str(recording), *arguments])
    assert result.exit_code == 2 and message in result.stderr, result.output


def test_several_videos_need_a_plot_folder(recording, tmp_path):
    result = CliRunner().invoke(app, ["predict", str(recording), str(recording), "--window", "5", "--plot",
                                      str(tmp_path / "t.png")])
    assert result.exit_code == 2 and "2 videos need --plot to be a folder" in result.stderr


def test_a_folder_of_recordings_gets_a_plot_each(recording, tmp_path):
    folder = tmp_path / "interviews"
    folder.mkdir()
    for name in ("monday.mp4", "tuesday.mp4"):
        (folder / name).write_bytes(recording.read_bytes())
    result = CliRunner().invoke(app, ["predict", str(folder), "--window", "10", "--plot", str(tmp_path / "plots")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (tmp_path / "plots").iterdir()) == ["monday.png", "tuesday.png"]
    assert len([line for line in result.stdout.splitlines() if line.startswith("{")]) == 4


def test_windows_are_planned_as_they_are_read(tmp_path):
    """0.2 s windows of a 1-hour recording are 17,950 windows: they are planned one at a time as they are read, so
    the first windows come with memory that does not follow the window count (planned up front with N = 32, as
    before, they took 30 MB before the first record; 2 hours of 0.1 s windows 122 MB, --window 1e-3 gigabytes)."""
    import itertools
    import tracemalloc

    clip = make_variable_rate_clip(tmp_path / "one-hour.mp4", ticks=range(0, 36_000, 100), fps=10,
                                   codec="libx264", size=(64, 48))  # a frame every 10 s
    spans = window_spans(0.0, 3_590.0, 0.2)
    assert isinstance(spans, Iterator) and next(spans).count == 17_950
    tracemalloc.start()
    try:
        first = list(itertools.islice(read_windows(clip, 32, 0.2), 3))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [window.index for window, _, _ in first] == [0, 1, 2] and first[0][0].count == 17_950
    assert peak < 3e6, f"{peak / 1e6:.1f} MB to read the first windows"


def test_one_damaged_timestamp_does_not_stretch_the_recording(tmp_path):
    """One bit of the last frame's packet time flipped in an MPEG-TS file (a 2.5 s clip then seems to last 2,985 s,
    which made 2,985 windows of that last frame): the frames' own span is read, the outlying frame left out."""
    clip = make_numbered_clip(tmp_path / "numbers.ts", frames=25, fps=10, size=(128, 48))
    data = bytearray(clip.read_bytes())
    packets = [at for at in range(0, len(data), 188)
               if data[at + 1] & 0x40 and ((data[at + 1] & 0x1F) << 8 | data[at + 2]) == 0x100]  # video PES starts
    last = packets[-1]
    header = 4 + (1 + data[last + 4] if data[last + 3] & 0x20 else 0)  # past the adaptation field
    assert data[last + header : last + header + 3] == b"\x00\x00\x01"
    data[last + header + 10] ^= 0x40  # bit 28 of the PTS: +2,982 s
    damaged = tmp_path / "damaged.ts"
    damaged.write_bytes(bytes(data))
    windows = list(read_windows(damaged, 4, 1.0))
    assert len(windows) == 2 and windows[-1][0].end - windows[0][0].start < 3.0
    assert read_frames(damaged, 8).duration < 3.0
    assert all(frame_number(image) <= 24 for _, _, video in windows for image in video.frames)
