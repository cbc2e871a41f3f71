"""A still image is one frame: read upright by content (not by its name), scored once by the general model, repeated
to N for a checkpoint trained on N frames, and said to be an image in every record."""

from __future__ import annotations

import csv
import io
import json
from fractions import Fraction

import av
import numpy as np
import pytest
from faces_media import SMILING, on_scene, scene, take, take_frames
from PIL import Image
from typer.testing import CliRunner

import viper
from viper.cli import app
from viper.errors import ViperError
from viper.images import read_image
from viper.trace import PERSON

FACE = take_frames(SMILING)[5]  # a real face, 224x224, smiling


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A real face in a wider generated scene, saved as a JPEG photo."""
    path = tmp_path_factory.mktemp("photos") / "smile.jpg"
    Image.fromarray(on_scene(FACE)).save(path, quality=95)
    return path


def test_an_image_is_read_upright_by_its_content(tmp_path):
    upright = on_scene(FACE)
    # a camera held sideways stores the pixels turned and says so in EXIF (6: turn 90 degrees clockwise to view)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.rot90(upright, k=1)).save(tmp_path / "sideways.jpg", exif=exif, quality=95)
    image = read_image(tmp_path / "sideways.jpg")
    assert image.shape == upright.shape and np.abs(image.astype(int) - upright).mean() < 3
    Image.fromarray(upright).save(tmp_path / "named_as_a_video.mp4", format="PNG")  # content decides, not the name
    assert np.array_equal(read_image(tmp_path / "named_as_a_video.mp4"), upright)
    assert read_image(take()) is None  # a video
    grey16 = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    image = read_image(tmp_path / "grey16.png")
    assert image.shape == (48, 64, 3) and image.max() == 255 and np.array_equal(image[..., 0], image[..., 2])
    Image.fromarray(np.zeros((40, 30, 4), np.uint8)).save(tmp_path / "transparent.png")  # transparent: white
    assert (read_image(tmp_path / "transparent.png") == 255).all()
    big = Image.fromarray(np.zeros((3000, 4000, 3), np.uint8))
    big.save(tmp_path / "big.jpg")
    assert read_image(tmp_path / "big.jpg").shape == (960, 1280, 3)  # longer side at most 1280, as video frames


def test_an_animated_gif_is_a_video_and_a_picture_only_ffmpeg_reads_is_an_image(tmp_path):
    frames = [Image.fromarray(on_scene(face)) for face in take_frames(SMILING)[:4]]
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:], duration=200)
    assert read_image(tmp_path / "moving.gif") is None
    results, failures = viper.predict(tmp_path / "moving.gif")
    assert failures == [] and results[0]["media"] == "video" and results[0]["coverage"]["frames"] == 32
    with av.open(str(tmp_path / "face.dpx"), "w", format="image2") as container:  # DPX: Pillow has no reader
        stream = container.add_stream("dpx", rate=Fraction(1))
        stream.width, stream.height, stream.pix_fmt = FACE.shape[1], FACE.shape[0], "rgb24"
        for packet in [*stream.encode(av.VideoFrame.from_ndarray(FACE, format="rgb24")), *stream.encode()]:
            container.mux(packet)
    assert np.array_equal(read_image(tmp_path / "face.dpx"), FACE)


def test_predict_scores_an_image_once_and_says_it_is_an_image(photo, tmp_path):
    results, failures = viper.predict([photo, take()])
    assert failures == [] and [result["media"] for result in results] == ["image", "video"]
    image, video = results
    assert image["coverage"] == {"frames": 1, "face": 1, "audio": 0, "people": 1} and image["warnings"] == []
    assert max(image["scores"], key=image["scores"].get) == "happy"
    assert sum(image["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert video["coverage"]["frames"] == 32
    assert list(video) == ["video", "media", *PERSON, "scores", "coverage", "warnings"]
    table_path = tmp_path / "frames.csv"
    result = CliRunner().invoke(app, ["predict", str(photo), "--format", "csv", "--per-frame", str(table_path)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    row = next(csv.DictReader(io.StringIO(result.stdout)))
    assert list(row)[:2] == ["video", "media"] and row["media"] == "image" and row["frames"] == "1"
    with open(table_path, newline="") as file:
        frames = list(csv.DictReader(file))
    assert len(frames) == 1 and frames[0]["media"] == "image" and frames[0]["face"] == "True"


def test_a_folder_of_photos_and_videos_is_scored_and_an_image_window_is_the_image(photo, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(scene((320, 240))).save(folder / "room.png")
    Image.open(photo).save(folder / "smile.webp")
    (folder / "notes.txt").write_text("not a picture")
    (folder / "clip.mp4").write_bytes(take().read_bytes())
    results, failures = viper.predict(folder)
    assert failures == [] and [(r["video"].rsplit("/", 1)[1], r["media"]) for r in results] == [
        ("clip.mp4", "video"), ("room.png", "image"), ("smile.webp", "image")]
    assert results[1]["coverage"]["face"] == 0 and results[2]["coverage"]["face"] == 1
    [window], failures = viper.predict(photo, window=5.0)
    assert failures == [] and (window["window"], window["start"], window["end"]) == (0, 0.0, 0.0)
    assert window["media"] == "image" and window["coverage"]["frames"] == 1
    table = viper.trace_table([window])
    assert list(table.columns[:5]) == ["video", "media", "window", "start", "end"]
    with pytest.raises(ViperError, match="a still image has no trace over time"):
        viper.plot_trace(table, tmp_path / "trace.png")
    result = CliRunner().invoke(app, ["predict", str(photo), "--window", "5", "--plot", str(tmp_path / "t.png")],
                                catch_exceptions=False)
    assert result.exit_code == 0 and f"no plot for {photo}" in result.stderr and not (tmp_path / "t.png").exists()


def test_a_checkpoint_sees_the_image_repeated_to_its_frames(photo, tiny_demo_run, tmp_path):
    """A run trained on N = 8 frames gets the photo's one frame 8 times: the tokens it was trained on."""
    run = tiny_demo_run / "run"
    [record], failures = viper.predict(photo, run)
    assert failures == [] and record["media"] == "image"
    assert record["coverage"] == {"frames": 8, "face": 8, "audio": 0, "people": 1}
    assert record["warnings"] == ["no audio: scores come from the face only"]
    page = tmp_path / "page.html"
    result = CliRunner().invoke(app, ["inspect", str(photo), "-c", str(run), "--out", str(page)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "a still image, 448×320 px" in text and "one still image, repeated" in text


def test_inspect_an_image_with_the_general_model(photo, tmp_path):
    page = tmp_path / "page.html"
    result = CliRunner().invoke(app, ["inspect", str(photo), "--out", str(page)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "a still image, 448×320 px" in text and "faces on 1/1 frames" in text and "repeated" not in text


def test_json_record_of_an_image_through_the_cli(photo):
    result = CliRunner().invoke(app, ["predict", str(photo)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
    assert record["media"] == "image" and record["coverage"]["frames"] == 1
