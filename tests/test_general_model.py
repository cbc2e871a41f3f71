"""viper's general model (no checkpoint: expression networks trained on many people, pooled over the clip) and
training anchored on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import viper
from viper.cli import app
from viper.extractors.expression_general import (
    AFFECTNET_CLASSES,
    BASIC_EMOTIONS,
    CROPS,
    combine,
    shift_prior,
    to_basic,
)
from viper.general_model import anchoring, pool_expressions
from viper.jobs.demo import demo_clips
from viper.model import Perceiver, model_config, pool_expressions_torch


def _frames(*rows) -> np.ndarray:
    return np.array([rows], dtype=np.float32)


def test_pooling_is_the_mean_log_probability_so_a_neutral_clip_stays_neutral():
    neutral = [0.9, 0.04, 0.01, 0.01, 0.01, 0.01, 0.02]
    happy = [0.1, 0.85, 0.01, 0.01, 0.01, 0.01, 0.01]
    probs = _frames(neutral, happy, neutral, neutral, happy)
    valid = np.array([[True, True, True, True, False]])
    pooled = pool_expressions(probs, valid)[0]  # the 4 valid frames' normalised geometric mean
    expected = torch.softmax(torch.log(torch.from_numpy(probs[0, :4])).mean(0), dim=0).numpy()
    assert np.allclose(pooled, expected, atol=1e-6) and int(pooled.argmax()) == 0
    assert int(pool_expressions(_frames(neutral, happy, happy), np.ones((1, 3), bool))[0].argmax()) == 1
    still = pool_expressions(_frames(*[neutral] * 6), np.ones((1, 6), bool))[0]
    assert np.allclose(still, neutral, atol=1e-6)  # a still neutral face is a neutral clip
    assert np.allclose(pool_expressions(probs, np.zeros((1, 5), bool))[0], np.full(7, 1 / 7))


def test_the_torch_pooling_inside_trained_models_is_the_general_models():
    """general_model.pool_expressions (numpy: prediction without torch) and model.pool_expressions_torch (inside an
    anchored model and its best.onnx) give the same clip probabilities, a clip without valid frames included."""
    generator = np.random.default_rng(0)
    probs = generator.dirichlet(np.ones(7), size=(4, 9)).astype(np.float32)
    probs[1, :, 3] = 0.0  # a class a frame gives no probability: clamped, not -inf
    valid = generator.random((4, 9)) > 0.3
    valid[2] = False
    expected = pool_expressions_torch(torch.from_numpy(probs), torch.from_numpy(valid)).numpy()
    np.testing.assert_allclose(pool_expressions(probs, valid), expected, atol=1e-6, rtol=0)


def test_prior_shift_raises_the_rare_classes_and_keeps_a_distribution():
    even = np.log(np.full((1, 7), 1 / 7))
    shifted = np.exp(shift_prior(even, 1.0)[0])
    assert shifted.sum() == pytest.approx(1.0, abs=1e-6)
    assert shifted[BASIC_EMOTIONS.index("disgust")] > shifted[BASIC_EMOTIONS.index("fearful")]
    assert shifted[BASIC_EMOTIONS.index("fearful")] > shifted[BASIC_EMOTIONS.index("happy")]
    assert np.allclose(np.exp(shift_prior(even, 0.0)[0]), 1 / 7, atol=1e-6)


def test_an_expert_without_a_class_abstains_on_it_and_ranks_only_what_it_knows():
    seven = np.log(np.array([[0.30, 0.10, 0.10, 0.10, 0.20, 0.10, 0.10]]))
    five = to_basic(np.array([[0.2, 0.2, 0.2, 0.2, 0.2]]), AFFECTNET_CLASSES)  # no fear, no disgust: NaN there
    assert np.isnan(five[0, [BASIC_EMOTIONS.index("fearful"), BASIC_EMOTIONS.index("disgust")]]).all()
    combined = np.exp(combine([seven, five]))[0]
    assert combined.sum() == pytest.approx(1.0, abs=1e-6)
    # on fear and disgust the five-class expert says nothing: their share and ratio are the seven-class expert's
    fear, disgust = combined[BASIC_EMOTIONS.index("fearful")], combined[BASIC_EMOTIONS.index("disgust")]
    assert fear / disgust == pytest.approx(2.0) and fear == pytest.approx(0.20, abs=0.01)
    # among the classes it knows (all equal to it) it pulls toward even: neutral loses, happy gains
    assert combined[0] < 0.30 and combined[1] > 0.10
    alone = np.exp(combine([five]))[0]  # no expert knows fear or disgust: they get nothing
    assert alone[BASIC_EMOTIONS.index("fearful")] == 0 and alone.sum() == pytest.approx(1.0)


def test_each_expert_gets_its_own_crop_of_the_same_face():
    box = (100.0, 50.0, 200.0, 150.0)  # BlazeFace's boxes are square
    assert CROPS["fer"].box(box) == pytest.approx((89.5, 24.8, 210.5, 145.8))  # Haar's box: higher, larger
    assert CROPS["affectnet"].box(box) == pytest.approx((90.0, 40.0, 210.0, 160.0))  # Open Model Zoo's 1.2
    assert CROPS["face_api"].box(box) == pytest.approx((94.5, 48.0, 205.5, 159.0))  # 68 landmarks + 20 %


def test_an_unknown_expert_is_refused_by_name(tmp_path):
    config = tmp_path / "extract.json"
    config.write_text(json.dumps({"options": {"expression:general": {"experts": ["fer", "vgg"]}}}))
    bad = CliRunner().invoke(app, ["extract", str(demo_clips() / "01-01-01-01-01-01-05.mp4"), "--out",
                                   str(tmp_path / "store"), "-e", "expression", "--config", str(config)])
    assert bad.exit_code != 0 and "vgg" in bad.output and "Traceback" not in bad.output


def test_a_still_neutral_face_is_a_neutral_clip_and_the_same_as_its_photo(tmp_path):
    from faces_media import take_frames, write_clip
    from PIL import Image

    still = take_frames("01-01-01-01-01-01-05.mp4")[7]  # neutral: a still face, held for 24 frames
    clip = write_clip(tmp_path / "still.mp4", [still] * 24)
    Image.fromarray(still).save(tmp_path / "still.png")
    results, failures = viper.predict([clip, tmp_path / "still.png"])
    assert failures == [] and [max(r["scores"], key=r["scores"].get) for r in results] == ["neutral", "neutral"]
    for emotion in BASIC_EMOTIONS:  # the mean of identical frames' log-probabilities is the frame's own
        assert results[0]["scores"][emotion] == pytest.approx(results[1]["scores"][emotion], abs=0.02)


def test_predict_without_a_checkpoint_gives_basic_emotion_probabilities(tmp_path):
    from media import make_clip

    happy = demo_clips() / "01-01-03-02-02-01-05.mp4"  # happy, strong: never used to fit the general model
    blank = make_clip(tmp_path / "no_face.mp4", frames=20, size=(160, 120), audio_seconds=2.0)
    result = CliRunner().invoke(app, ["predict", str(happy), str(blank)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.stdout.splitlines() if line.startswith("{"))
    assert list(first["scores"]) == list(BASIC_EMOTIONS)
    assert sum(first["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert max(first["scores"], key=first["scores"].get) == "happy" and first["warnings"] == []
    assert second["coverage"]["face"] == 0
    assert all(value == pytest.approx(1 / 7) for value in second["scores"].values())  # no face: no evidence
    assert "no evidence" in second["warnings"][-1]


def test_inspect_without_a_checkpoint_traces_the_expression_evidence(tmp_path):
    page = tmp_path / "page.html"
    clip = demo_clips() / "01-01-05-02-01-01-05.mp4"  # angry, strong
    result = CliRunner().invoke(app, ["inspect", str(clip), "--out", str(page)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "viper general model" in text and "expression:general" in text and "data:image/png;base64," in text


def test_anchoring_maps_outputs_by_name_and_needs_expression_features():
    settings = anchoring(["face_image", "expression"], [128, 7], ["Anger", "calm", "surprise", "happy"])
    assert settings == {"anchor_start": 128, "anchor_map": [3, -1, 6, 1]}
    assert anchoring(["face_image", "fau"], [128, 59], ["happy"]) == {}
    assert anchoring(["expression"], [7], ["amusement", "adoration"]) == {}


def test_an_anchored_model_starts_as_the_general_model_and_no_mask_removes_the_prior():
    torch.manual_seed(0)
    emotions = ["neutral", "calm", "happy", "sad"]
    config = model_config("compact", anchoring(["fau", "expression"], [3, 7], emotions))
    model = Perceiver(token_dims=[3, 7], num_outputs=4, config=config).eval()
    expression = torch.softmax(torch.randn(2, 6, 7), dim=-1)
    tokens = torch.cat([torch.randn(2, 6, 3), expression], dim=-1)
    general = pool_expressions_torch(expression, torch.ones(2, 6, dtype=torch.bool))
    expected = torch.stack([general[:, 0], torch.zeros(2), general[:, 1], general[:, 2]], dim=1)
    masks = torch.ones(2, 6, 2, dtype=torch.bool)
    with torch.no_grad():
        assert torch.allclose(model(tokens, masks), expected, atol=1e-6)
        masks[..., 1] = False  # the expression modality dropped (modality dropout, or a masked token)
        assert torch.allclose(model.prior(tokens), expected, atol=1e-6)


@pytest.mark.slow
def test_anchored_training_round_trips_through_the_checkpoint(tmp_path):
    from synthetic import make_synthetic_store

    from viper.checkpoint import load_checkpoint, predict_arrays
    from viper.jobs.train import TrainConfig, train
    from viper.tokens import load_split

    store = make_synthetic_store(tmp_path / "store", {"fau": ("fau", 5), "expression": ("expression", 7)},
                                 ("happy", "sad", "calm"), n_clips=36, n_frames=6)
    result = train(store.root, tmp_path / "run", TrainConfig(modalities=["fau", "expression"], epochs=3, lr=1e-3,
                                                                      batch_size=8, device="cpu"))
    bundle = load_checkpoint(result.checkpoint, runtime="torch")
    assert bundle.model.config.anchor_start == 5 and bundle.model.config.anchor_map == (1, 2, -1)
    data = load_split(store, bundle.keys, "test")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["anchor"] is True and saved["model"]["anchor_map"] == [1, 2, -1]
    again = predict_arrays(bundle, data.tokens, data.modality_masks)
    assert np.allclose(again, predict_arrays(load_checkpoint(result.checkpoint), data.tokens, data.modality_masks))
    plain = train(store.root, tmp_path / "plain", TrainConfig(epochs=1, device="cpu", anchor=False))
    assert load_checkpoint(plain.checkpoint, runtime="torch").model.config.anchor_start == -1


def test_per_frame_table_names_every_value_and_matches_the_clip_scores(tmp_path):
    import pandas as pd

    happy = demo_clips() / "01-01-03-02-02-01-05.mp4"
    table_path = tmp_path / "frames.csv"
    result = CliRunner().invoke(app, ["predict", str(happy), str(tmp_path / "missing.mp4"), "--per-frame",
                                      str(table_path)], catch_exceptions=False)
    assert result.exit_code == 1 and "missing.mp4: file does not exist" in result.stderr
    record = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
    table = pd.read_csv(table_path)
    assert len(table) == 32 and list(table["frame"]) == list(range(32)) and table["time"].is_monotonic_increasing
    assert {"face", "face_x0", "face_y1", "audio", "fau.browInnerUp", "fau.mouthSmileLeft"} <= set(table.columns)
    emotions = {name.split(".")[1] for name in table.columns if name.startswith(("fau.", "expression.", "score."))}
    assert set(BASIC_EMOTIONS) <= emotions and not {"fear", "surprise"} & emotions  # one vocabulary for emotions
    expression = table[[f"expression.{name}" for name in BASIC_EMOTIONS]]
    faces = table["face"].astype(bool)
    assert np.allclose(expression[faces].sum(axis=1), 1.0, atol=1e-5) and expression[~faces].isna().all().all()
    for emotion, value in record["scores"].items():
        assert table[f"score.{emotion}"].iloc[0] == pytest.approx(value, abs=1e-6)
    assert 0 < table["audio"].sum() == record["coverage"]["audio"] < 32  # fragments holding sound, as coverage counts
    bad = CliRunner().invoke(app, ["predict", str(happy), "--per-frame", str(tmp_path / "frames.xlsx")])
    assert bad.exit_code != 0 and "name a .csv or .parquet file" in bad.output


def test_predict_frames_in_python_keeps_the_model_and_adds_the_named_values():
    from viper import predict_frames

    table, records, failures = predict_frames(demo_clips() / "01-01-05-02-01-01-05.mp4")
    assert failures == [] and len(records) == 1 and len(table) == 32
    assert max(records[0]["scores"], key=records[0]["scores"].get) == table.filter(like="score.").iloc[0].idxmax()[6:]


def test_predict_takes_a_folder_as_extract_does(tmp_path):
    import shutil

    folder = tmp_path / "clips" / "day1"
    folder.mkdir(parents=True)
    for name in ("01-01-03-02-02-01-05.mp4", "01-01-05-02-01-01-05.mp4"):
        shutil.copy(demo_clips() / name, folder / name)
    (folder / "notes.txt").write_text("not a video")
    (tmp_path / "empty").mkdir()
    results, failures = viper.predict([tmp_path / "clips", tmp_path / "empty"])
    assert [Path(r["video"]).name for r in results] == ["01-01-03-02-02-01-05.mp4", "01-01-05-02-01-01-05.mp4"]
    assert len(failures) == 1 and "no video files found" in failures[0][1]


def test_threads_option_sets_torch_threads_for_the_command():
    import os

    before = torch.get_num_threads()
    saved = {name: os.environ.get(name) for name in ("VIPER_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    try:
        result = CliRunner().invoke(app, ["--threads", "1", "extractors"], catch_exceptions=False)
        assert result.exit_code == 0 and torch.get_num_threads() == 1 and os.environ["VIPER_THREADS"] == "1"
        assert CliRunner().invoke(app, ["--threads", "0", "extractors"]).exit_code == 2
    finally:
        torch.set_num_threads(before)
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


def test_a_folder_lists_its_videos_as_it_was_given(tmp_path, monkeypatch):
    import shutil

    from viper.jobs.predict import video_list

    (tmp_path / "clips" / "sub").mkdir(parents=True)
    shutil.copy(demo_clips() / "01-01-05-02-01-01-05.mp4", tmp_path / "clips" / "sub" / "a.mp4")
    (tmp_path / "elsewhere.mp4").symlink_to(demo_clips() / "01-01-05-02-01-01-05.mp4")
    (tmp_path / "clips" / "link.mp4").symlink_to(tmp_path / "elsewhere.mp4")
    monkeypatch.chdir(tmp_path)
    found, problems = video_list([Path("clips"), Path("clips/sub/a.mp4")])
    assert not problems and found[1:] == [Path("clips/sub/a.mp4")] * 2  # relative, as a file given alone prints
    assert found[0].is_absolute() and found[0].name.startswith("01-01-05")  # a link out of the folder: its target


def test_per_frame_rows_of_a_short_clip_say_which_repeat_a_frame(tmp_path):
    from faces_media import SURPRISED, take_frames, write_clip

    from viper import predict_frames

    frames = take_frames() + take_frames(SURPRISED)
    short = write_clip(tmp_path / "five.mp4", frames[:5])  # 5 frames: 32 rows repeat them
    enough = write_clip(tmp_path / "forty.mp4", (frames * 3)[:40])
    table, _, failures = predict_frames([short, enough])
    assert not failures
    rows = {video: group for video, group in table.groupby("video")}
    assert (~rows[str(short)]["repeated"]).sum() == 5 and rows[str(short)]["repeated"].sum() == 27
    assert not rows[str(enough)]["repeated"].any()  # 40 frames: 32 distinct ones sampled
