"""Which person, as a user gets it (`--faces main|all|largest` on predict, inspect and --plot): mp4 clips of two real
people, actor 05 (the bundled takes) and Grace Hopper (matplotlib's sample portrait), side by side in a generated
room, the largest face changing person, or one cut to the other in the same place; a bundled take alone, where every
choice gives the same scores; and the documented answers for bad input: 20 faces in one picture, an 8x8 face,
identical twins."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from faces_media import SMILING, SURPRISED, scene, take, take_frames, two_faces, write_clip
from people_media import FPS, WITH_HER, grace_hopper, two_people_clip
from PIL import Image
from test_tracks import room
from typer.testing import CliRunner

from viper.cli import app
from viper.faces import create_face_detector
from viper.jobs.demo import demo_clips
from viper.jobs.inspect import inspect, person_colour
from viper.jobs.predict import Predictor, predict, predict_frames
from viper.resample import resize


@pytest.fixture(scope="module")
def her() -> np.ndarray:
    return grace_hopper()


@pytest.fixture(scope="module")
def two_people(tmp_path_factory, one_torch_thread, her):
    return two_people_clip(tmp_path_factory.mktemp("people") / "two_people.mp4", her)


@pytest.fixture(scope="module")
def scored(two_people):
    """Per choice: the per-frame table and the records of the two-person clip."""
    return {faces: predict_frames(two_people, faces=faces)[:2] for faces in ("main", "all", "largest")}


def test_main_is_the_person_on_most_frames_with_a_warning(scored):
    table, (record,) = scored["main"]
    sampled = len(table)
    hers = int((np.round(table["time"] * FPS) < WITH_HER).sum())
    assert 0 < hers < sampled and record["coverage"] == {"frames": sampled, "face": sampled, "audio": 0, "people": 2}
    assert record["person"] == 2 and record["person_frames"] == sampled  # she is larger: found first, person 1
    assert record["person_first"] == 0.0 and record["person_box"][0] < 272  # his box, on the left
    assert (f"2 people seen: scores are of person 2, the one seen most (on {sampled}/{sampled} frames); person 1 "
            f"on {hers}/{sampled}") in record["warnings"]
    assert set(table["person"]) == {2} and (table["track"] == 2).all() and (table["face_x1"] < 272).all()


def test_all_gives_one_record_per_person_from_their_own_frames(scored):
    table, records = scored["all"]
    (_, (main,)), sampled = scored["main"], len(scored["main"][0])
    hers = int((np.round(scored["main"][0]["time"] * FPS) < WITH_HER).sum())
    assert [(r["person"], r["person_frames"], r["coverage"]["face"]) for r in records] == [
        (1, hers, hers), (2, sampled, sampled)]
    her, him = records
    assert her["person_first"] == 0.0 and her["person_last"] < WITH_HER / FPS and her["person_box"][0] > 272
    assert him["scores"] == main["scores"] and her["scores"] != him["scores"]
    assert not any("people seen" in warning for record in records for warning in record["warnings"])
    assert len(table) == 2 * sampled and (table[table.person == 1]["track"] > 0).sum() == hers


def test_largest_keeps_todays_records_and_says_it_mixes_the_two(scored):
    table, (record,) = scored["largest"]
    assert "person" not in record and "people" not in record["coverage"] and "person" not in table
    sampled, hers = len(table), int((table["face_x0"] > 272).sum())
    assert hers == int((np.round(table["time"] * FPS) < WITH_HER).sum())  # her, then him
    assert record["scores"] != scored["main"][1][0]["scores"]
    assert (f"the largest face is of 2 people over the frames (person 1 on {hers}/{sampled}, person 2 on "
            f"{sampled - hers}/{sampled}): scores mix them; use --faces main") in record["warnings"]


def test_largest_scores_are_bit_identical_to_the_largest_faces_alone(two_people, scored):
    """Following the largest faces for the warning changes nothing scored: the record's scores are, to the bit, the
    model's on the largest faces as decoded (the path before the warning existed), and the clip is left as it was."""
    from viper.checkpoint import predict_arrays
    from viper.tokens import build_tokens

    predictor = Predictor(faces="largest")
    decoded = predictor.decode(two_people)
    boxes = decoded[0].face_boxes.copy()
    features = {key: extractor.extract(clip) for (_, keys), clip in zip(predictor.extractions, decoded, strict=True)
                for key, extractor in keys.items()}
    tokens, _, masks = build_tokens(features, predictor.bundle.keys)
    alone = predict_arrays(predictor.bundle, tokens[None], masks[None])[0]
    prediction = predictor.score(two_people, decoded)
    assert list(prediction.scores.values()) == [float(value) for value in alone]
    assert prediction.scores == scored["largest"][1][0]["scores"]
    assert np.array_equal(decoded[0].face_boxes, boxes, equal_nan=True) and decoded[0].tracked is None


def test_one_person_every_choice_scores_the_same(one_torch_thread):
    records = {faces: predict(take(SURPRISED), faces=faces)[0][0] for faces in ("largest", "main", "all")}
    assert records["largest"]["scores"] == records["main"]["scores"] == records["all"]["scores"]
    assert records["main"]["coverage"]["people"] == 1 and records["main"]["person"] == 1
    assert not any("people" in warning for record in records.values() for warning in record["warnings"])


def test_a_window_trace_follows_the_same_person_across_windows(two_people):
    people, _ = predict(two_people, window=4.8, faces="all")
    assert [(r["window"], r["person"]) for r in people] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert people[0]["person_box"][0] > 272 and people[2]["person_box"][0] > 272  # she is 1 in both windows
    assert people[2]["person_frames"] < people[0]["person_frames"]  # she leaves during the second window
    main, _ = predict(two_people, window=4.8, faces="main")
    # first window: both on every frame, she is larger; second: he has been seen most, and the record says so
    assert [(r["window"], r["person"]) for r in main] == [(0, 1), (1, 2)]
    assert main[0]["scores"] == people[0]["scores"] and main[1]["scores"] == people[3]["scores"]
    assert "the scores are now of person 2, seen most so far (of person 1 before this window)" in main[1]["warnings"]


def test_cli_columns_and_bad_choices(two_people, tmp_path):
    frames = tmp_path / "frames.csv"
    result = CliRunner().invoke(app, ["predict", str(two_people), "--faces", "all", "--format", "csv",
                                      "--per-frame", str(frames)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["person"] for row in rows] == ["1", "2"] and {row["people"] for row in rows} == {"2"}
    assert list(rows[0])[:7] == ["video", "media", "person", "person_frames", "person_first", "person_last",
                                 "person_box"]
    with open(frames) as table:
        assert {"person", "track"} <= set(next(csv.reader(table)))
    bad = CliRunner().invoke(app, ["predict", str(two_people), "--faces", "everyone"])
    assert bad.exit_code == 2 and "error: --faces must be one of main, all, largest, not 'everyone'" in bad.stderr
    assert json.loads(CliRunner().invoke(app, ["predict", str(two_people)]).stdout)["person"] == 2


@pytest.fixture(scope="module")
def pages(two_people, tmp_path_factory):
    """The two-person clip's inspect page (general model) under each choice."""
    folder = tmp_path_factory.mktemp("pages")
    for faces in ("main", "all", "largest"):
        written, failures = inspect([two_people], None, folder / f"{faces}.html", faces=faces)
        assert written == [folder / f"{faces}.html"] and not failures
    return {faces: (folder / f"{faces}.html").read_text(encoding="utf-8") for faces in ("main", "all", "largest")}


def _people_rows(page: str) -> dict[int, list[str]]:
    """Person -> the cells after their swatch in the page's people table (frames, seen, scores or a note)."""
    rows = re.findall(r"<tr><td><span class='swatch' style='background:(#\w+)'></span>person (\d+)</td>(.*?)</tr>",
                      page)
    assert all(colour == person_colour(int(person)) for colour, person, _ in rows)
    return {int(person): re.findall(r"<td[^>]*>(.*?)</td>", cells) for _, person, cells in rows}


def _near(page: str, frame: int, colour: str) -> int:
    """Pixels of a frame's thumbnail within a JPEG's error of `colour` (the boxes drawn in it)."""
    data = re.findall(r"class='thumb' alt='frame \d+' src='data:image/jpeg;base64,([^']*)'", page)[frame]
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"), float)
    target = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], float)
    return int((np.abs(pixels - target).max(axis=-1) < 40).sum())


def test_inspect_marks_each_person_in_their_colour_and_lists_their_scores(pages, scored):
    sampled = len(scored["main"][0])
    (main,), both = scored["main"][1], scored["all"][1]
    hers = both[0]["person_frames"]
    rows = _people_rows(pages["main"])  # main: his scores; she was seen, not scored
    assert list(rows) == [1, 2] and rows[1][0] == f"{hers}/{sampled}" and rows[2][0] == f"{sampled}/{sampled}"
    assert "not scored" in rows[1][2] and [float(v) for v in rows[2][2:]] == pytest.approx(
        list(main["scores"].values()), abs=6e-4)
    assert "the scores are of person 2, the one seen most" in pages["main"]
    rows = _people_rows(pages["all"])  # all: each person's scores, and a score table per person
    for record in both:
        assert [float(v) for v in rows[record["person"]][2:]] == pytest.approx(list(record["scores"].values()),
                                                                               abs=6e-4)
    assert pages["all"].count("<h3><span class='swatch'") == 2 * 2  # scores and traces, per person
    for page in (pages["main"], pages["all"]):  # the first frame shows both: his box and hers, each its colour
        assert _near(page, 0, person_colour(1)) > 20 and _near(page, 0, person_colour(2)) > 100
        assert _near(page, sampled - 1, person_colour(1)) == 0  # she has left by the last frame
    assert _near(pages["main"], 0, person_colour(1)) < _near(pages["all"], 0, person_colour(1))  # scored: thick
    largest = pages["largest"]  # nobody followed: no people table, the largest box, the record's warning
    assert not _people_rows(largest) and "<h2>People</h2>" not in largest
    assert "the largest face is of 2 people over the frames" in largest and _near(largest, 0, "#00e640") > 10


def test_plot_under_all_draws_one_trace_per_person(two_people, tmp_path):
    result = CliRunner().invoke(app, ["predict", str(two_people), "--faces", "all", "--window", "4.8", "--plot",
                                      str(tmp_path / "trace.png")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["trace-person1.png", "trace-person2.png"]
    assert f"plot: {tmp_path / 'trace-person1.png'}" in result.stderr
    folder = tmp_path / "plots"
    result = CliRunner().invoke(app, ["predict", str(two_people), str(take(SMILING)), "--faces", "all", "--window",
                                      "4.8", "--plot", str(folder)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in folder.iterdir()) == [
        f"{take(SMILING).stem}-person1.png", "two_people-person1.png", "two_people-person2.png"]


def test_a_persons_trace_spans_the_windows_where_they_are_not_seen():
    import pandas as pd

    from viper.trace import person_plot_path, person_traces

    def row(window: int, person: int, happy: float) -> dict:
        return {"video": "v.mp4", "media": "video", "window": window, "start": 5.0 * window,
                "end": 5.0 * window + 5, "person": person, "happy": happy, "frames": 8, "face_frames": 8,
                "audio_frames": 8, "people": 2, "warnings": ""}

    table = pd.DataFrame([row(0, 1, 0.5), row(0, 2, 0.1), row(1, 2, 0.2), row(2, 1, 0.7)])
    traces = person_traces(table)
    assert list(traces) == [1, 2]
    assert traces[1]["window"].tolist() == [0, 1, 2] and traces[1]["face_frames"].tolist() == [8, 0, 8]
    assert np.isnan(traces[1]["happy"][1]) and traces[1]["end"].tolist() == [5.0, 10.0, 15.0]
    assert traces[2]["face_frames"].tolist() == [8, 8, 0] and (traces[2]["person"] == 2).all()
    assert person_plot_path(Path("out/trace.svg"), 2) == Path("out/trace-person2.svg")


def test_a_cut_inside_a_chain_gives_two_people(tmp_path, her, one_torch_thread):
    """He, then she, in the same place: their boxes chain from frame to frame, the descriptors split the chain."""
    him = take_frames(SMILING)
    frames = [room(left=him[i]) for i in range(12)] + [room(left=her)] * 12
    clip = write_clip(tmp_path / "cut.mp4", frames, fps=FPS)
    table, records, _ = predict_frames(clip, faces="all")
    assert [(r["person"], r["person_frames"]) for r in records] == [(1, 16), (2, 16)]
    first, second = (table[(table.person == person) & table.face] for person in (1, 2))
    assert first["time"].max() < second["time"].min()  # 1 is him before the cut, 2 her after


def test_identical_twins_are_two_people(tmp_path, one_torch_thread):
    """The same face twice side by side (a picture): two people, each scored from their own crop; main takes one."""
    face = take_frames(SMILING)[6]
    picture = tmp_path / "twins.png"
    Image.fromarray(two_faces(face, face)).save(picture)
    records, failures = predict(picture, faces="all")
    assert not failures and [(r["person"], r["coverage"]["people"]) for r in records] == [(1, 2), (2, 2)]
    assert [r["coverage"]["face"] for r in records] == [1, 1] and records[0]["person_box"] != records[1]["person_box"]
    (main,), _ = predict(picture)
    assert main["person"] in (1, 2) and "2 people seen" in "; ".join(main["warnings"])


def test_twenty_faces_in_one_picture_are_as_many_people(tmp_path, one_torch_thread):
    """20 of actor 05's faces (20 takes) in a 5x4 grid of 128 px: every face found is a person of its own (two faces
    of one frame are never one person), each scored under all; main takes the largest."""
    takes = sorted(demo_clips().glob("*.mp4"))[::3][:20]
    tile, gap = 128, 21
    grid = scene((5 * tile + 6 * gap, 4 * tile + 5 * gap))
    for k, path in enumerate(takes):
        top, left = gap + (k // 5) * (tile + gap), gap + (k % 5) * (tile + gap)
        grid[top : top + tile, left : left + tile] = resize(take_frames(path.name)[7], tile)
    picture = tmp_path / "twenty.png"
    Image.fromarray(grid).save(picture)
    found = len(create_face_detector().detect_all([grid])[0])
    records, _ = predict(picture, faces="all")
    assert found >= 15 and [r["person"] for r in records] == list(range(1, found + 1))  # measured: 18 of 20
    assert {r["coverage"]["people"] for r in records} == {found} and all(r["person_frames"] == 1 for r in records)
    (main,), _ = predict(picture)
    assert main["coverage"]["people"] == found and f"{found} people seen" in main["warnings"][-1]


def test_an_eight_pixel_face_is_no_face_and_says_what_to_do(tmp_path, one_torch_thread):
    """An 8x8 face is below what the detector finds: in a scene, a clip without a face; alone, a picture that
    suggests --no-face-crop, which scores it whole."""
    face = resize(take_frames(SMILING)[6], 8)
    small, alone = tmp_path / "small.png", tmp_path / "alone.png"
    frame = scene()
    frame[150:158, 200:208] = face
    Image.fromarray(frame).save(small)
    Image.fromarray(face).save(alone)
    records, failures = predict([small, alone], faces="all")
    assert not failures and [(r["coverage"]["face"], r["coverage"]["people"]) for r in records] == [(0, 0), (0, 0)]
    assert all(r["warnings"][0].startswith("no face found") for r in records)
    assert "try --no-face-crop" in records[1]["warnings"][1]
    (whole,), _ = predict(alone, face_crop=False)
    assert whole["coverage"]["face"] == 1 and "people" not in whole["coverage"]
