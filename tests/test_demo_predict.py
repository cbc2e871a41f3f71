"""The demo end to end on the bundled real RAVDESS clips, then `viper predict` with the run it trained."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from viper.cli import app
from viper.datasets.ravdess import EMOTIONS
from viper.jobs.demo import demo_clips, run_demo

pytestmark = pytest.mark.slow  # the demo fixture alone extracts and trains on every bundled clip (~2 min)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    metrics = run_demo(out, workers=1)
    return out, metrics


def test_demo_learns_real_labels_well_above_chance(demo):
    out, metrics = demo
    assert metrics["n"] == 30 and list(metrics["pearson"]) == list(EMOTIONS)
    assert metrics["top1_accuracy"] > 3 * metrics["chance_top1"]  # chance is 13 %
    assert metrics["mean_pearson"] > 0.4
    for name in ("metrics.json", "predictions.csv", "scatter.png", "pearson.png", "confusion.png"):
        assert (out / "report" / name).stat().st_size > 0


def test_predict_returns_emotion_names_from_the_checkpoint(demo):
    out, _ = demo
    clip = demo_clips() / "01-01-03-02-02-01-05.mp4"  # happy, strong
    result = CliRunner().invoke(app, ["predict", str(clip), "--checkpoint", str(out / "run")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and lines[0]["video"] == str(clip)
    scores = lines[0]["scores"]
    assert list(scores) == list(EMOTIONS) and all(isinstance(v, float) for v in scores.values())
    coverage = lines[0]["coverage"]  # the takes end on a few black padding frames, and speak for about half the take
    assert coverage["frames"] == 32 and coverage["face"] >= 28 and coverage["audio"] == 19
    assert lines[0]["warnings"] == []


def test_predict_says_what_a_clip_without_a_face_rests_on(demo, tmp_path):
    from media import make_clip

    out, _ = demo
    talking = make_clip(tmp_path / "no_face_with_audio.mp4", frames=20, size=(160, 120), audio_seconds=2.0)
    silent = make_clip(tmp_path / "no_face_no_audio.mp4", frames=20, size=(160, 120))
    result = CliRunner().invoke(app, ["predict", str(talking), str(silent), "-c", str(out / "run")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.stdout.splitlines() if line.startswith("{"))
    assert first["coverage"]["face"] == 0 and first["coverage"]["audio"] > 16
    # the demo's run reads only the face (fau + expression): audio present is no evidence for it
    assert first["warnings"][0] == "no face found: the face-based features are all missing"
    assert "no evidence" in first["warnings"][-1]
    assert second["coverage"] == {"frames": 32, "face": 0, "audio": 0, "people": 0}
    assert second["warnings"][0].startswith("no face found") and "no evidence" in second["warnings"][-1]


def test_predict_csv_and_a_file_that_is_not_a_video(demo, tmp_path):
    out, _ = demo
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    good = demo_clips() / "01-01-01-01-01-01-05.mp4"
    result = CliRunner().invoke(
        app, ["predict", str(good), str(bad), "-c", str(out / "run"), "--format", "csv"], catch_exceptions=False
    )
    assert result.exit_code == 1
    assert "notes.mp4" in result.stderr and "Traceback" not in result.stderr
    rows = [line for line in result.stdout.splitlines() if line]
    person = ["person", "person_frames", "person_first", "person_last", "person_box"]  # --faces main, the default
    assert rows[0] == ",".join(["video", "media", *person, *EMOTIONS, "frames", "face_frames", "audio_frames", "people",
                                "warnings"])
    first = next(csv.reader(rows[1:2]))
    assert first[:3] == [str(good), "video", "1"] and first[-5] == "32" and int(first[-4]) >= 28
    assert first[-2:] == ["1", ""]  # one person seen, no warning


def test_train_and_evaluate_commands(demo, tmp_path):
    out, _ = demo
    store, run = out / "store", tmp_path / "run"
    runner = CliRunner()
    trained = runner.invoke(
        app, ["train", "-f", str(store), "-o", str(run), "--epochs", "3", "--lr", "1e-3", "-m", "face_image,audio",
              "--allow-shared-people"],
        catch_exceptions=False,
    )
    assert trained.exit_code == 0, trained.stderr
    assert "no dev split" in trained.stdout + trained.stderr and (run / "best.pt").exists()
    assert len((run / "history.csv").read_text().splitlines()) == 4  # header + 3 epochs
    evaluated = runner.invoke(app, ["evaluate", str(run), "-f", str(store)], catch_exceptions=False)
    assert evaluated.exit_code == 0, evaluated.stderr
    assert "Pearson r" in evaluated.stdout and "CCC" in evaluated.stdout and "UAR" in evaluated.stdout
    metrics = json.loads((run / "eval-test" / "metrics.json").read_text())
    assert metrics["n"] == 30 and set(metrics["pearson"]) == set(metrics["ccc"]) == set(EMOTIONS)
    assert 0 <= metrics["uar"] <= 1 and 0 <= metrics["macro_f1"] <= 1


def test_train_config_file_with_flags_on_top(demo, tmp_path):
    out, _ = demo
    config = tmp_path / "train.yaml"
    config.write_text("epochs: 2\nlr: 0.001\nseed: 5\nmodalities: [audio]\nallow_shared_people: true\n")
    run = tmp_path / "run"
    command = ["train", "-f", str(out / "store"), "-o", str(run), "--config", str(config), "--seed", "7",
               "--precision", "bf16"]
    result = CliRunner().invoke(app, command, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "config.json").read_text())["train"]
    assert (saved["epochs"], saved["lr"], saved["seed"], saved["modalities"]) == (2, 0.001, 7, ["audio"])
    assert (saved["precision"], saved["compile"]) == ("bf16", False)


def test_predict_many_videos_keeps_order_and_the_store_scores(demo, tmp_path):
    """Several videos (the next decoding while the current is scored), a bad one first: every readable video gets
    the score `evaluate` gave it from the store, in the order asked."""
    import pandas as pd

    from viper.jobs.predict import predict

    out, _ = demo
    bad = tmp_path / "first.mp4"
    bad.write_text("not a video")
    stored = pd.read_csv(out / "report" / "predictions.csv", dtype={"video_id": str}).set_index("video_id")
    ids = list(stored.index[:3])
    results, failures = predict([bad, *(demo_clips() / f"{i}.mp4" for i in ids)], out / "run")
    assert [path for path, _ in failures] == [str(bad)]
    assert [result["video"] for result in results] == [str(demo_clips() / f"{i}.mp4") for i in ids]
    for video_id, result in zip(ids, results, strict=True):
        assert list(result["scores"].values()) == pytest.approx(stored.loc[video_id].tolist(), abs=1e-4)


def test_coverage_warnings_name_only_the_evidence_the_model_reads():
    from viper.jobs.predict import Coverage

    assert Coverage(32, 32, 32).warnings(face_based=True, audio_based=True) == []
    assert Coverage(32, 3, 32).warnings(True, True) == ["face on 3/32 frames"]
    assert Coverage(32, 32, 0).warnings(True, True) == ["no audio: scores come from the face only"]
    assert Coverage(32, 32, 0).warnings(True, False) == []  # a face-only model does not miss the audio
    assert Coverage(32, 0, 0).warnings(True, False)[-1].endswith("no evidence about this video")
