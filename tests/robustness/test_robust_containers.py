"""Containers without a reliable seek (MPEG-TS, MPEG-PS), cover art, several video streams: each test makes the
file with PyAV and checks which frames come back, by the number drawn in each frame."""

from __future__ import annotations

import av
import numpy as np
import pytest
from media import add_numbered_stream, frame_number, make_numbered_clip, make_with_cover_art, write_numbered_frames
from typer.testing import CliRunner

from viper.cli import app
from viper.errors import VideoReadError
from viper.manifest import load_inputs
from viper.sampled_video import sample_video
from viper.store import FeatureStore
from viper.video import read_frames

N = 8
CONTAINERS = [  # file, codec, container: what it does that broke the sampled frames before
    ("h264_ts.ts", "libx264", "mpegts"),  # a seek gives no frame at all
    ("mpeg2_ts.ts", "mpeg2video", "mpegts"),  # a seek lands seconds after its target
    ("mpeg2_m2ts.m2ts", "mpeg2video", "mpegts"),
    ("mpeg2_ps.mpg", "mpeg2video", "mpeg"),  # a seek lands at the start every time
    ("h264_ps.mpg", "libx264", "mpeg"),  # most packets carry no time at all
]


def expected_numbers(frames: int, n: int = N) -> list[int]:
    return np.round(np.linspace(0, frames - 1, n)).astype(int).tolist()


@pytest.mark.parametrize(("frames", "fps"), [(20, 10), (80, 5)], ids=["2s", "16s"])
@pytest.mark.parametrize(("name", "codec", "container"), CONTAINERS, ids=[name for name, *_ in CONTAINERS])
def test_mpeg_ts_and_ps_give_the_sampled_frames_at_their_times(tmp_path, name, codec, container, frames, fps):
    """A 2-second clip (one pass, after the seek back to the start) and a 16-second one (N = 8: seeks across
    gaps of 2.3 s) in MPEG-TS and MPEG-PS: the N frames nearest the evenly spaced times, each at its own time.
    Where a seek misses, the clip is decoded in order instead."""
    path = make_numbered_clip(tmp_path / name, frames, fps, codec, container_format=container)
    video = read_frames(path, N)
    numbers = expected_numbers(frames)
    assert [frame_number(frame) for frame in video.frames] == numbers
    assert video.frame_times - video.frame_times[0] == pytest.approx(np.array(numbers) / fps)
    assert video.repeated == 0 and video.duration == pytest.approx((frames - 1) / fps)
    assert video.fps == pytest.approx(fps) and video.stream is None


def test_cover_art_is_not_video(tmp_path):
    """An m4a whose only picture is cover art (an attached_pic stream) reads as audio-only: faces masked, audio
    kept, instead of failing; beside a real video stream, the cover is skipped and the video read."""
    song = make_with_cover_art(tmp_path / "song.m4a", audio_seconds=2.0)
    with pytest.raises(VideoReadError, match="no video stream"):
        read_frames(song, N)
    clip = sample_video(song, N, None, face_crop=False)
    assert clip.frames is None and not clip.face_mask.any()
    assert clip.audio is not None and clip.audio_mask.all()
    video = read_frames(make_with_cover_art(tmp_path / "with_video.mp4", video_frames=20, audio_seconds=2.0), N)
    assert [frame_number(frame) for frame in video.frames] == expected_numbers(20)
    assert video.stream is None  # one real video stream: nothing to choose


def make_two_stream_clip(path, lengths=(20, 20), sizes=((64, 48), (64, 48)), default: int | None = None):
    """Two numbered video streams (the second numbered from 100), `default` flagged as the default one."""
    container = av.open(str(path), "w")
    streams = [add_numbered_stream(container, "libx264", 10, size) for size in sizes]
    if default is not None:
        for index, stream in enumerate(streams):
            stream.disposition = av.stream.Disposition.default if index == default else av.stream.Disposition(0)
    for index, (stream, frames) in enumerate(zip(streams, lengths, strict=True)):
        write_numbered_frames(container, stream, frames, first=100 * index)
    container.close()
    return path


@pytest.mark.parametrize(("name", "settings", "chosen", "frames"), [
    ("default.mp4", {"default": 1}, "stream #1, the default of 2 video streams", 20),
    ("longest.mkv", {"lengths": (20, 30)}, "stream #1, the longest of 2 video streams", 30),
    ("largest.mkv", {"sizes": ((32, 24), (64, 48))}, "stream #1, the largest of 2 video streams", 20),
    ("first.mkv", {}, "stream #0, the first of 2 video streams", 20),
])
def test_of_two_video_streams_the_default_then_longest_then_largest_is_read(tmp_path, name, settings, chosen,
                                                                            frames):
    """With two video streams the one flagged default is read, else the longest, else the largest (else the
    first); which one, and why, is said in `stream` (the clip metadata's `video_stream`)."""
    video = read_frames(make_two_stream_clip(tmp_path / name, **settings), N)
    first = 0 if chosen.startswith("stream #0") else 100
    assert [frame_number(frame) for frame in video.frames] == [first + i for i in expected_numbers(frames)]
    assert video.stream == chosen


@pytest.mark.slow
def test_containers_through_the_cli(tmp_path):
    """`viper extract` over .ts, .m2ts and .mpg clips (a folder scan finds them by suffix), a two-stream mkv and a
    cover-art m4a: every clip is extracted; the metadata says which stream was read."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for name, codec, container in CONTAINERS:
        make_numbered_clip(folder / name, 20, 10, codec, container_format=container)
    make_two_stream_clip(folder / "two.mkv", lengths=(20, 30))
    make_with_cover_art(folder / "song.m4a", audio_seconds=2.0)
    ids = {path.stem: path.name for path in folder.iterdir()}
    assert sorted(load_inputs(folder)["video_id"]) == sorted(set(ids) - {"song"})
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("video_id,path\n" + "".join(f"{stem},clips/{name}\n" for stem, name in ids.items()))
    result = CliRunner().invoke(app, ["extract", str(manifest), "--out", str(tmp_path / "store"), "-n", str(N),
                                      "-e", "audio", "--no-face-crop"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert f"videos done {len(ids)}" in result.stdout
    store = FeatureStore.open(tmp_path / "store")
    for stem in ids:
        meta = store.clip_meta(stem)
        assert meta["has_video"] is (stem != "song") and len(meta["frame_times"]) == N
    assert store.clip_meta("two")["video_stream"] == "stream #1, the longest of 2 video streams"
    assert store.clip_meta("h264_ps")["video_stream"] is None
