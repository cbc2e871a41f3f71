"""Odd media through the real `viper extract` CLI and the readers: each test states the documented behaviour."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from media import make_audio_only, make_clip
from typer.testing import CliRunner

from viper.cli import app
from viper.errors import VideoReadError
from viper.manifest import load_inputs
from viper.sampled_video import sample_video
from viper.store import FeatureStore
from viper.video import read_frames

FRAMES = 8
BROKEN = ["empty.mp4", "truncated.mp4", "text.mp4"]


def make_pix_fmt_clip(path: Path, codec: str, pix_fmt: str, frames: int = 6, size=(64, 48)) -> Path:
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=10)
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], pix_fmt
    for i in range(frames):
        image = np.full((size[1], size[0], 3), 20 * i, np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


@pytest.fixture(scope="module")
def odd_folder(face_videos, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("odd media")
    (folder / "empty.mp4").write_bytes(b"")
    real = face_videos["single_face.mp4"].read_bytes()  # a real face's mp4, its index (moov) at the end
    (folder / "truncated.mp4").write_bytes(real[: len(real) // 2])
    (folder / "text.mp4").write_text("this is not a video\n")
    make_audio_only(folder / "audio_only.m4v", seconds=2.0)
    make_clip(folder / "no_audio.mp4", frames=12)
    make_clip(folder / "short.mp4", frames=3, audio_seconds=0.5)
    make_clip(folder / "one_frame.mp4", frames=1)
    make_pix_fmt_clip(folder / "gray.mkv", "ffv1", "gray")
    make_pix_fmt_clip(folder / "yuv444.mp4", "libx264", "yuv444p")
    make_pix_fmt_clip(folder / "rgb24.mkv", "libx264rgb", "rgb24")
    make_clip(folder / "vidéo avec espace.mp4", frames=10, audio_seconds=1.0)
    return folder


@pytest.fixture(scope="module")
def cli_run(odd_folder, tmp_path_factory):
    """One real `viper extract` (in this process) over the whole folder of odd media (face_image and audio)."""
    root = tmp_path_factory.mktemp("store") / "störe dir"
    result = CliRunner().invoke(
        app, ["extract", str(odd_folder), "--out", str(root), "-n", str(FRAMES), "-e", "face_image,audio"],
        catch_exceptions=False,
    )
    return result, FeatureStore.open(root)


def test_unreadable_files_fail_by_name_and_the_run_goes_on(cli_run):
    """Zero-byte, truncated (first half of an mp4 whose index is at its end) and text-as-.mp4 files are each listed as
    `FAILED <path>: <reason>` on stderr; every other clip is extracted; exit code 1; never a traceback."""
    result, store = cli_run
    assert result.exit_code == 1, result.stderr
    assert "Traceback" not in result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("FAILED")]
    assert sorted(Path(line.split(": ")[0].removeprefix("FAILED ")).name for line in failed) == sorted(BROKEN)
    assert any("empty (0 bytes)" in line for line in failed if "empty.mp4" in line)
    assert "videos done 8" in result.stdout
    for key in store.extractor_keys():
        assert "empty" not in store.video_ids(key) and "truncated" not in store.video_ids(key)


def test_audio_only_file_masks_face_and_keeps_audio(cli_run):
    """An audio-only file: no frames, so face features are masked (zeros); audio features are valid."""
    _, store = cli_run
    meta = store.clip_meta("audio_only")
    assert meta["has_video"] is False and meta["has_audio"] is True
    for key in store.extractor_keys():
        values, mask = store.read(key, "audio_only")
        if store.feature_spec(key).modality == "audio":
            assert mask.all() and np.isfinite(values).all() and values.any()
        else:
            assert not mask.any() and not values.any()


def test_video_without_audio_masks_audio(cli_run):
    """A clip without an audio track: every audio fragment is masked (zeros), the video part is extracted."""
    _, store = cli_run
    assert store.clip_meta("no_audio")["has_audio"] is False
    key = store.key_for("audio")
    values, mask = store.read(key, "no_audio")
    assert not mask.any() and not values.any()


@pytest.mark.parametrize(("video_id", "distinct"), [("short", 3), ("one_frame", 1)])
def test_clips_shorter_than_n_repeat_frames(cli_run, video_id, distinct):
    """A clip with fewer than N frames (3, or a single frame) gives N entries repeating the nearest frames;
    `repeated_frames` records how many repeat."""
    _, store = cli_run
    meta = store.clip_meta(video_id)
    assert len(meta["frame_times"]) == FRAMES and len(set(meta["frame_times"])) == distinct
    assert meta["repeated_frames"] == FRAMES - distinct


@pytest.mark.parametrize("name", ["gray.mkv", "yuv444.mp4", "rgb24.mkv"])
def test_unusual_pixel_formats_decode_to_rgb(odd_folder, cli_run, name):
    """Grayscale (ffv1 gray), yuv444p and rgb24 (libx264rgb) streams decode to RGB uint8 frames and extract."""
    frames = read_frames(odd_folder / name, 4)
    assert all(f.dtype == np.uint8 and f.shape == (48, 64, 3) for f in frames.frames)
    assert abs(int(frames.frames[-1].mean()) - 100) <= 6  # brightness of the last frame (20 * 5) survives
    _, store = cli_run
    assert store.clip_meta(Path(name).stem)["has_video"] is True


def test_non_ascii_and_spaced_paths(cli_run, odd_folder):
    """Non-ASCII and spaces in the file name and in the store path are fine; the id is the file stem."""
    _, store = cli_run
    meta = store.clip_meta("vidéo avec espace")
    assert meta is not None and Path(meta["source"]).name == "vidéo avec espace.mp4"
    values, mask = store.load(store.key_for("audio"), ["vidéo avec espace"])
    assert values.shape[:2] == (1, FRAMES) and mask.all()


def test_folder_scan_is_fast_and_takes_only_videos(tmp_path):
    """A folder with 2000 non-video files (txt/jpg/json, some nested) and 3 videos: the scan takes only the
    videos, by suffix, without opening anything, in well under a second."""
    for i in range(2000):
        sub = tmp_path / f"d{i % 10}"
        sub.mkdir(exist_ok=True)
        (sub / f"file{i}.{('txt', 'jpg', 'json')[i % 3]}").write_bytes(b"x")
    for name in ("a.mp4", "d3/b.MOV", "d7/c.mkv"):
        (tmp_path / name).write_bytes(b"not decoded by the scan")
    started = time.perf_counter()
    table = load_inputs(tmp_path)
    assert time.perf_counter() - started < 1.0
    assert sorted(table["video_id"]) == ["a", "d3__b", "d7__c"]


PROBE = """
import json, sys
import viper.video as video
from viper.video import read_frames
seeks = []
real_open = video.open_media
class Spy:
    def __init__(self, container): self._c = container
    def __getattr__(self, name): return getattr(self._c, name)
    def seek(self, *args, **kwargs):
        seeks.append(args[0]); return self._c.seek(*args, **kwargs)
video.open_media = lambda path: Spy(real_open(path))
out = {}
for name in sys.argv[1:]:
    seeks.clear()
    frames = read_frames(name, 32)
    out[name] = {"shape": list(frames.frames[0].shape), "seeks": len(seeks), "duration": frames.duration,
                 "distinct": len(set(frames.frame_times.tolist()))}
# VmHWM: this process's own peak (ru_maxrss would keep the pytest parent's peak across fork + exec)
out["maxrss_mb"] = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
print(json.dumps(out))
"""


def make_long_clip(path: Path, seconds: int = 600) -> Path:
    """A 10-minute clip at 1 fps, 32x24, a keyframe every 10 s (generated in about a second)."""
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=1, options={"g": "10", "preset": "ultrafast"})
    stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
    for i in range(seconds):
        image = np.full((24, 32, 3), i % 256, np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def test_4k_and_long_clips_keep_memory_bounded_and_seek(tmp_path):
    """A 3840x2160 clip decodes to frames scaled to 1280x720 (longer side <= 1280), and a 10-minute clip is read
    with seeks between the sampled frames (gaps of ~19 s > 2 s) rather than decoding every frame; the reading
    process's peak RSS stays bounded (under 700 MB: N small frames kept, never the clip)."""
    big = make_clip(tmp_path / "4k.mp4", frames=3, size=(3840, 2160))
    long = make_long_clip(tmp_path / "long.mp4")
    result = subprocess.run([sys.executable, "-c", PROBE, str(big), str(long)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report[str(big)]["shape"] == [720, 1280, 3]
    assert report[str(long)]["duration"] == pytest.approx(599) and report[str(long)]["distinct"] == 32
    assert report[str(long)]["seeks"] >= 30
    assert report["maxrss_mb"] < 700, report


def test_4k_face_boxes_are_in_downscaled_frame_pixels(tmp_path):
    """Face boxes are stored in the pixels of the decoded (downscaled) frame: without face cropping, a 4K
    clip's box is the whole 1280x720 frame."""
    clip = sample_video(make_clip(tmp_path / "4k.mp4", frames=2, size=(3840, 2160)), 4, None, face_crop=False)
    assert np.array_equal(clip.face_boxes, np.tile([0, 0, 1280, 720], (4, 1)))
    assert clip.face_mask.all() and all(crop.shape == (224, 224, 3) for crop in clip.face_crops)


def test_reader_errors_are_video_read_errors(odd_folder):
    """The readers raise VideoReadError (a ViperError naming the file) for each unreadable file."""
    for name in BROKEN:
        with pytest.raises(VideoReadError, match=name):
            sample_video(odd_folder / name, 4, None, face_crop=False)
