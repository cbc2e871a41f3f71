"""Which person, as a user gets it (`--faces main|all|largest` on predict): mp4 clips of two real people, actor 05
(the bundled takes) and Grace Hopper (matplotlib's sample portrait), side by side in a generated room, the largest
face changing person; a bundled take alone, where every choice gives the same scores."""

from __future__ import annotations

import csv
import io
import json
from fractions import Fraction

import numpy as np
import pytest
from faces_media import SMILING, SURPRISED, take, take_frames, write_clip
from test_tracks import room, smaller
from typer.testing import CliRunner

from viper.cli import app
from viper.faces import create_face_detector, crop_square
from viper.jobs.predict import predict, predict_frames

FPS = Fraction(25, 6)
FRAMES, WITH_HER = 40, 24  # he is on all 40 frames; she, larger than him, on the first 24


@pytest.fixture(scope="module")
def two_people(tmp_path_factory, one_torch_thread):
    """A 9.6 s mp4: actor 05 (small, left) on every frame, Grace Hopper (large, right) on the first 24: the largest
    face is hers, then his; he is on the most frames."""
    import matplotlib.cbook
    from PIL import Image

    portrait = np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
                          .convert("RGB"))
    (face,) = create_face_detector().detect([portrait])
    her = crop_square(portrait, face.box, 0.1, 224)
    him = [smaller(frame) for frame in (take_frames(SMILING) + take_frames(SURPRISED)[:12])]
    frames = [room(left=him[i % len(him)], **({"right": her} if i < WITH_HER else {})) for i in range(FRAMES)]
    return write_clip(tmp_path_factory.mktemp("people") / "two_people.mp4", frames, fps=FPS)


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


def test_largest_keeps_todays_records_and_mixes_the_two(scored):
    table, (record,) = scored["largest"]
    assert "person" not in record and "people" not in record["coverage"] and "person" not in table
    assert (table["face_x0"] > 272).sum() == int((np.round(table["time"] * FPS) < WITH_HER).sum())  # her, then him
    assert record["scores"] != scored["main"][1][0]["scores"]


def test_one_person_every_choice_scores_the_same(one_torch_thread):
    records = {faces: predict(take(SURPRISED), faces=faces)[0][0] for faces in ("largest", "main", "all")}
    assert records["largest"]["scores"] == records["main"]["scores"] == records["all"]["scores"]
    assert records["main"]["coverage"]["people"] == 1 and records["main"]["person"] == 1
    assert not any("people" in warning for warning in records["main"]["warnings"])


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
    plot = CliRunner().invoke(app, ["predict", str(two_people), "--faces", "all", "--window", "5", "--plot",
                                    str(tmp_path / "t.png")])
    assert plot.exit_code == 2 and "error: --plot draws one person's trace" in plot.stderr
    assert json.loads(CliRunner().invoke(app, ["predict", str(two_people)]).stdout)["person"] == 2
