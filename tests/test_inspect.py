"""`viper inspect`: the page of a real demo clip and of generated clips without face or audio, self-contained,
with the scores `viper predict` gives; and the page rendered by headless Chromium without console errors."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from media import make_clip
from PIL import Image
from typer.testing import CliRunner

from viper.cli import app
from viper.datasets.ravdess import EMOTIONS
from viper.jobs.demo import demo_clips
from viper.jobs.inspect import inspect
from viper.jobs.predict import predict
from viper.templates import caption_templates

N = 8  # the tiny run's frames per clip
DEMO_CLIP = "01-01-03-02-02-01-05.mp4"  # happy, strong
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0"]


@pytest.fixture(scope="module")
def pages(tiny_demo_run, tmp_path_factory, one_torch_thread):
    """The demo clip's page (--out page.html) and a folder with the pages of two generated clips."""
    folder = tmp_path_factory.mktemp("inspect")
    no_audio = make_clip(folder / "no_face_no_audio.mp4", frames=20, size=(160, 120))
    short_audio = make_clip(folder / "no_face_short_audio.mp4", frames=20, size=(160, 120), audio_seconds=1.0)
    run = tiny_demo_run / "run"
    written, failures = inspect([demo_clips() / DEMO_CLIP], run, folder / "page.html")
    assert written == [folder / "page.html"] and not failures
    written, failures = inspect([no_audio, short_audio], run, folder / "pages")
    assert [page.name for page in written] == ["no_face_no_audio.html", "no_face_short_audio.html"] and not failures
    texts = {"demo": (folder / "page.html").read_text(encoding="utf-8")}
    texts |= {page.stem: page.read_text(encoding="utf-8") for page in written}
    return folder, texts


def test_demo_clip_page_shows_frames_captions_and_the_scores_predict_gives(pages, tiny_demo_run):
    _, texts = pages
    page = texts["demo"]
    assert page.count("<img class='thumb'") == N
    faces, sound = map(int, re.search(r"faces on (\d+)/8 frames, audio on (\d+)/8 frames", page).groups())
    assert faces >= N - 1  # a talking face in every frame (BlazeFace may miss one)
    captions = re.findall(r"<q class='caption'>(.*?)</q>", page)
    known = {template["sentence"] for template in caption_templates()}
    assert len(captions) == faces and set(captions) <= known
    for needle in (DEMO_CLIP, "checkpoint", "caption:rule-minilm", "fau:blendshapes", "face_image:fer",
                   "audio:resemblyzer", "grey bands", "<img class='traces'"):
        assert needle in page
    [result], _ = predict([demo_clips() / DEMO_CLIP], tiny_demo_run / "run")
    assert 0 < sound == result["coverage"]["audio"] < N  # fragments holding sound (the take's silences do not)
    shown = dict(re.findall(r"<td>(\w+)</td><td class=v>(-?\d+\.\d{3})</td>", page))
    assert list(shown) == list(EMOTIONS)
    for emotion, value in result["scores"].items():  # the same code path as `viper predict`
        assert float(shown[emotion]) == pytest.approx(value, abs=6e-4)


def test_header_scores_and_trace_titles_say_what_is_shown(pages):
    """Issue 27 item 12: the clip's duration (first frame to the end of the last, not to its start), no `None-d`,
    no `-0.000`, and trace titles naming only what the traces show (blendshapes here, no action units)."""
    import av

    from viper.feature_spec import FeatureSpec
    from viper.jobs.inspect import _extractor, _scores, number

    page = pages[1]["demo"]
    with av.open(str(demo_clips() / DEMO_CLIP)) as container:
        duration = container.duration / 1e6  # 15 frames at 25/6 fps: 3.6 s (the last frame starts at 3.36 s)
    assert f"<td>duration</td><td>{duration:.2f} s, 4.17 fps" in page and duration == pytest.approx(3.6)
    assert "None-d" not in page and "-0.000" not in page
    assert _extractor(FeatureSpec("expression", "general", "2", dim=None, face_crop=True)) == "expression:general v2"
    assert _extractor(FeatureSpec("fau", "blendshapes", "1", dim=59, face_crop=False)) == (
        "fau:blendshapes v1 (59-d, whole frames)")
    assert number(-0.0004) == "0.000" and number(-0.0006) == "-0.001" and number(0.25) == "0.250"
    table = _scores({"happy": -0.0004, "sad": 0.5})
    assert "<td class=v>0.000</td>" in table and "bar neg" not in table
    assert "<h2>Blendshapes and emotion probabilities over time</h2>" in page and "action units" not in page


def test_one_colour_per_emotion_in_every_trace():
    """An emotion drawn by mini-Xception (in fau) and by the general model (in expression) is one colour, whichever
    lines a panel keeps."""
    from matplotlib.colors import to_hex

    from viper.backbones.face_blendshapes import BLENDSHAPE_NAMES
    from viper.extractors.base import Features
    from viper.extractors.expression_general import BASIC_EMOTIONS
    from viper.extractors.fau_mesh import EMOTIONS as MINI_XCEPTION
    from viper.jobs.inspect_traces import trace_figure
    from viper.sampled_video import SampledVideo

    n = 6
    clip = SampledVideo(video_id="c", path=Path("c.mp4"), times=np.arange(n) / 2, frame_times=np.arange(n) / 2,
                        repeated=0, frames=None, face_boxes=np.zeros((n, 4)), face_eyes=np.zeros((n, 2, 2)),
                        face_mask=np.ones(n, bool), face_crops=[None] * n, audio=None)
    colours = {}
    for names, spec in (([*BLENDSHAPE_NAMES, *MINI_XCEPTION], "fau:blendshapes"),
                        (list(reversed(BASIC_EMOTIONS)), "expression:general")):  # another order, another count
        values = np.random.default_rng(0).random((n, len(names)))
        figure = trace_figure(clip, Features(values, np.ones(n, bool)), names, spec)
        for axis in figure.axes:
            for line in axis.get_lines():
                colours.setdefault(line.get_label(), set()).add(to_hex(line.get_color()))
    assert set(MINI_XCEPTION) <= set(colours) and all(len(colours[emotion]) == 1 for emotion in BASIC_EMOTIONS)
    assert len({colours[emotion].pop() for emotion in BASIC_EMOTIONS}) == len(BASIC_EMOTIONS)


def test_generated_clips_are_marked_without_face_and_audio(pages):
    _, texts = pages
    silent = texts["no_face_no_audio"]
    assert "faces on 0/8 frames, audio on 0/8 frames" in silent
    assert silent.count("<img class='thumb'") == N
    assert silent.count("badge noface'>no face") == N and silent.count("badge noaudio'>no audio") == N
    assert "<q class='caption'>" not in silent
    partial = texts["no_face_short_audio"]  # 1 s of audio in a 2 s clip: the first frames have sound
    heard = int(re.search(r"audio on (\d+)/8 frames", partial).group(1))
    assert 0 < heard < N and partial.count("badge noaudio'>no audio") == N - heard
    for emotion in EMOTIONS:
        assert f"<td>{emotion}</td>" in silent


def test_pages_are_self_contained(pages):
    _, texts = pages
    for page in texts.values():
        assert "http://" not in page and "https://" not in page
        assert "<script" not in page and "<link" not in page
        sources = re.findall(r"src='([^']*)'", page)
        assert sources and all(source.startswith("data:image/") for source in sources)
        for source in sources:  # every embedded image decodes
            header, data = source.split(",", 1)
            image = Image.open(io.BytesIO(base64.b64decode(data)))
            image.load()
            assert image.format.lower() in header


def test_a_checkpoint_without_fau_and_caption_says_so(tiny_demo_run, tmp_path, one_torch_thread):
    from viper.jobs.train import TrainConfig, train

    run = tmp_path / "run"
    train(tiny_demo_run / "store", run, TrainConfig(epochs=1, lr=1e-3, batch_size=4, device="cpu",
                                                    modalities=["face_image", "audio"], allow_shared_people=True))
    inspect([demo_clips() / DEMO_CLIP], run, tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert "uses no fau or expression features" in page and "<img class='traces'" not in page
    assert "uses no caption features" in page and "<q class='caption'>" not in page
    assert "face_image:fer" in page and "fau:mesh" not in page and page.count("<img class='thumb'") == N


def test_cli_bad_video_and_bad_out(tiny_demo_run, tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    good = demo_clips() / DEMO_CLIP
    command = ["inspect", str(good), str(bad), "-c", str(tiny_demo_run / "run")]
    result = CliRunner().invoke(app, [*command, "--out", str(tmp_path / "pages")], catch_exceptions=False)
    assert result.exit_code == 1 and "Traceback" not in result.stderr  # as extract and predict
    assert re.search(rf"^error: {re.escape(str(bad))}: ", result.stderr, re.MULTILINE)
    assert (tmp_path / "pages" / f"{good.stem}.html").stat().st_size > 0  # the readable one still gets its page
    result = CliRunner().invoke(app, [*command, "--out", str(tmp_path / "one.html")], catch_exceptions=False)
    assert result.exit_code == 2 and "need --out to be a folder" in result.stderr


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    pytest.skip("no chromium binary (apt-get install chromium); the page render test needs a browser")


def _render(browser: str, page: Path, tmp_path: Path, size: str) -> tuple[np.ndarray, list[str]]:
    """Screenshot pixels and the page's console lines (chromium logs them as INFO:CONSOLE)."""
    shot = tmp_path / f"{page.stem}.png"
    profile = tmp_path / f"profile-{page.stem}"
    result = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}", f"--window-size={size}",
         page.resolve().as_uri()],
        capture_output=True, text=True, timeout=60,
    )
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert shot.exists(), result.stderr[-2000:]
    return np.asarray(Image.open(shot).convert("RGB")), console


@pytest.mark.slow
def test_page_renders_in_headless_chromium(pages, tmp_path):
    browser = _chromium()
    control = tmp_path / "control.html"  # the console check must see an error when there is one
    control.write_text("<!doctype html><p>x</p><script>throw new Error('planted');</script>")
    _, console = _render(browser, control, tmp_path, "400,300")
    assert any("planted" in line for line in console)
    folder, _ = pages
    pixels, console = _render(browser, folder / "page.html", tmp_path, "1280,2000")
    assert console == []
    assert pixels.shape == (2000, 1280, 3)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1000  # text, bars, photos and plots: far from uniform
    assert pixels[300:1200].std() > 20  # the frames' area holds the face thumbnails


def test_trace_panels_group_action_units_and_blendshapes():
    from viper.backbones.face_blendshapes import BLENDSHAPE_NAMES
    from viper.extractors.fau_mesh import AU_NAMES, EMOTIONS
    from viper.jobs.inspect_traces import most_moving, panels

    mesh = dict(panels([*AU_NAMES, *EMOTIONS]))
    assert [AU_NAMES[i] for i in mesh["action units, upper face"]][:3] == ["AU01", "AU02", "AU04"]
    assert "AU25" in [AU_NAMES[i] for i in mesh["action units, lower face"]] and len(mesh["emotion probabilities"]) == 7
    names = [*BLENDSHAPE_NAMES, *EMOTIONS]
    shapes = dict(panels(names))
    upper, lower = ([names[i] for i in shapes[f"blendshapes, {part} face"]] for part in ("upper", "lower"))
    assert "browInnerUp" in upper and "eyeBlinkLeft" in upper and "mouthSmileLeft" in lower and "jawOpen" in lower
    assert [names[i] for i in shapes["emotion probabilities"]] == list(EMOTIONS)  # "_neutral" left out
    values = np.zeros((4, len(names)))
    values[:, names.index("jawOpen")] = [0, 1, 0, 1]
    assert names.index("jawOpen") in most_moving(values, shapes["blendshapes, lower face"], 1)
