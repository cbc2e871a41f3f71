"""No input makes viper write outside the folder it was given: video ids and store keys are checked (manifests,
dataset layouts, challenge features) or made safe (folder names, page names) before they become file names."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest
from media import make_clip
from typer.testing import CliRunner

from viper.cli import app
from viper.datasets import write_manifest
from viper.datasets.hume_reaction import hume_reaction_manifest
from viper.datasets.ravdess import ravdess_manifest
from viper.errors import ViperError
from viper.filenames import MAX_NAME_BYTES, name_problem, output_paths, safe_name
from viper.jobs.evaluate import eval_folder
from viper.jobs.import_features import import_challenge_features
from viper.jobs.inspect import page_paths
from viper.manifest import scan_folder
from viper.store import FeatureStore

HOSTILE = {  # id -> what the refusal says
    "../../../x": "path separator",
    "/abs/x": "path separator",
    "a\\b": "path separator",
    "..": "names a folder",
    ".": "names a folder",
    "a\nb": "control character",
    "a\x00b": "control character",
    "tab\there": "control character",
    "line\u2028sep": "control character",
    "x" * (MAX_NAME_BYTES + 1): "bytes long",
    "é" * (MAX_NAME_BYTES // 2 + 1): "bytes long",
}
FINE = ["clip 01", "ünïcödé-日本語", "a..b", ".hidden", "x" * MAX_NAME_BYTES, "emoji-😀", "semi;colon,comma"]


def viper(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def snapshot(root: Path, out: Path) -> dict[str, int]:
    """Every file under `root` but inside `out`, with its modification time."""
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if out not in p.parents and p != out}


def random_name(rng: random.Random) -> str:
    """Separators, dots, control characters, surrogates, wide and plain characters, 0 to 400 of them."""
    alphabet = ["/", "\\", ".", "..", "\n", "\x00", "\x7f", "\ud800", "\u2028", "é", "日", "😀", "a", "-", " ", "_"]
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 400)))


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_ids_are_refused_by_the_store(tmp_path, name):
    """The store is the one place ids become paths: each path it builds refuses an id that is not one file name."""
    assert HOSTILE[name] in name_problem(name)
    store = FeatureStore.create(tmp_path / "store", 4)
    with pytest.raises(ViperError, match="cannot name a file in the store"):
        store.clip_path(name)
    with pytest.raises(ViperError, match="cannot name a file in the store"):
        store.video_path("k", name)
    with pytest.raises(ViperError, match="feature key"):
        store.feature_dir(name)


def test_ordinary_ids_pass_as_they_are(tmp_path):
    store = FeatureStore.create(tmp_path / "store", 4)
    for name in FINE:
        assert name_problem(name) is None and store.clip_path(name).parent == store.root / "clips"


def test_safe_name_of_anything_is_one_file_name(tmp_path):
    """2000 random strings of separators, dots, control characters, surrogates and wide characters: each safe name
    passes the check and, joined under a folder, resolves to a file directly in it; distinct long names stay apart."""
    rng = random.Random(0)
    names = [random_name(rng) for _ in range(2000)] + list(HOSTILE)
    for name in names:
        safe = safe_name(name)
        assert name_problem(safe) is None, (name, safe)
        assert (tmp_path / f"{safe}.npz").resolve().parent == tmp_path.resolve()
    assert safe_name("y" * 300 + "1") != safe_name("y" * 300 + "2")


def test_manifest_with_hostile_ids_is_refused_with_line_numbers(tmp_path):
    """`viper extract manifest.csv` whose ids hold separators, absolute paths, control characters or are huge:
    exit 2, one message listing each line, and nothing written anywhere (not even the store)."""
    make_clip(tmp_path / "a.mp4", frames=4)
    target = tmp_path / "abs" / "x"
    ids = ["../../../x", str(target), "a\nb", "y" * 300, "fine"]
    pd.DataFrame({"video_id": ids, "path": "a.mp4", "split": "train", "joy": 0.5}).to_csv(tmp_path / "m.csv",
                                                                                          index=False)
    out = tmp_path / "deep" / "er" / "store"
    before = snapshot(tmp_path, out)
    result = viper("extract", str(tmp_path / "m.csv"), "--out", str(out), "-n", "4", "-e", "audio")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "4 video_id(s) cannot be file names" in result.stderr
    for line in ("line 2:", "line 3:", "line 4:", "line 5:"):
        assert line in result.stderr
    assert "line 6" not in result.stderr
    assert snapshot(tmp_path, out) == before and not out.exists()


def test_folder_names_become_safe_unique_ids_and_stay_in_the_store(tmp_path):
    """A folder of videos whose names hold a line break, are `..`-like, 230 bytes long, or would share an id
    (`sub/dup.mp4` and `sub__dup.mp4`; `Take.mp4` and `take.mp4`, one file where case does not count): every clip
    is extracted under its own safe id, nothing outside --out."""
    videos = tmp_path / "videos"
    (videos / "sub").mkdir(parents=True)
    names = ["line\nbreak.mp4", "..mp4", "z" * 226 + ".mp4", "sub/dup.mp4", "sub__dup.mp4", "日本.mp4",
             "Take.mp4", "take.mp4"]  # the last two: one file on macOS and Windows
    for name in names:
        make_clip(videos / name, frames=4, audio_seconds=0.4)
    table = scan_folder(videos)
    assert len({video_id.casefold() for video_id in table["video_id"]}) == len(names)
    assert all(name_problem(video_id) is None for video_id in table["video_id"])
    out = tmp_path / "store"
    before = snapshot(tmp_path, out)
    result = viper("extract", str(videos), "--out", str(out), "-n", "4", "-e", "audio")
    assert result.exit_code == 0, result.stderr
    assert snapshot(tmp_path, out) == before
    store = FeatureStore.open(out)
    assert sorted(store.video_ids(store.key_for("audio"))) == sorted(table["video_id"])


def test_ravdess_ids_are_unique_even_in_same_named_folders(tmp_path):
    """The same take in two folders of one name, and an .mp4 beside a .wav of it: four files, four ids."""
    take = "01-01-03-02-01-01-05"
    for folder in ("a/crops", "b/crops"):
        (tmp_path / folder).mkdir(parents=True)
        for suffix in (".mp4", ".wav"):
            (tmp_path / folder / f"{take}{suffix}").write_bytes(b"x")
    table = ravdess_manifest(tmp_path)
    assert len(table) == 4 and table["video_id"].is_unique
    assert all(name_problem(video_id) is None for video_id in table["video_id"])


def test_a_folder_named_like_a_take_is_no_row_of_the_ravdess_manifest(tmp_path):
    """RAVDESS takes beside a folder named like one (`01-01-04-02-02-01-05.mp4/`): the manifest lists the files only,
    so `viper extract` of it extracts them (the folder's row used to make it refuse the whole manifest)."""
    takes = tmp_path / "takes"
    takes.mkdir()
    make_clip(takes / "01-01-03-02-02-01-05.mp4", frames=4, audio_seconds=0.4)
    (takes / "01-01-04-02-02-01-05.mp4").mkdir()
    result = viper("dataset", "ravdess", str(takes), "--out", str(tmp_path / "m.csv"))
    assert result.exit_code == 0 and "1 clips" in result.stdout
    extracted = viper("extract", str(tmp_path / "m.csv"), "--out", str(tmp_path / "store"), "-n", "4", "-e", "audio")
    assert extracted.exit_code == 0, extracted.stderr
    store = FeatureStore.open(tmp_path / "store")
    assert store.video_ids(store.key_for("audio")) == ["01-01-03-02-02-01-05"]


def test_an_escape_sequence_in_a_path_is_printed_escaped(tmp_path):
    """A file name holding ANSI escapes (colour, clear screen) or a carriage return reaches the terminal as text
    (`\\x1b[2J`, `\\r`), in extract's FAILED lines and in predict's and the CLI's errors, never as the sequence."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "red\x1b[31m\x1b[2J\rclip.mp4").write_text("not a video")
    extracted = viper("extract", str(folder), "--out", str(tmp_path / "store"), "-n", "4", "-e", "audio")
    predicted = viper("predict", str(tmp_path / "gone\x1b[2J.mp4"))
    refused = viper("extract", str(tmp_path / "no\x1b[31mwhere"), "--out", str(tmp_path / "store"))
    for result, shown in ((extracted, f"FAILED {folder}/red\\x1b[31m\\x1b[2J\\rclip.mp4: not a readable video"),
                          (predicted, f"error: {tmp_path}/gone\\x1b[2J.mp4: file does not exist"),
                          (refused, f"error: {tmp_path}/no\\x1b[31mwhere: does not exist")):
        assert shown in result.stderr, result.stderr
        assert "\x1b" not in result.output


def test_a_manifest_with_one_id_twice_is_not_written(tmp_path):
    table = pd.DataFrame({"video_id": ["a", "a"], "path": ["a.mp4", "b.mp4"], "split": "train"})
    with pytest.raises(ViperError, match="a would appear more than once"):
        write_manifest(table, tmp_path / "m.csv")
    assert not (tmp_path / "m.csv").exists()


def hume_root(tmp_path: Path, ids: list[str], feature_folder: str = "FAUs") -> Path:
    """A Hume-Reaction folder with partition.csv, labels.csv and one challenge feature CSV per clip."""
    root = tmp_path / "c2_muse_reaction"
    feats = root / "feats" / feature_folder
    feats.mkdir(parents=True)
    pd.DataFrame({"Id": [f"[{i}]" for i in ids], "Partition": "train"}).to_csv(root / "partition.csv", index=False)
    labels = {"File_ID": [f"[{i}]" for i in ids]} | {e: 0.5 for e in ("Adoration", "Amusement", "Anxiety", "Disgust",
                                                                      "Empathic-Pain", "Fear", "Surprise")}
    pd.DataFrame(labels).to_csv(root / "labels.csv", index=False)
    for i in ids:
        if name_problem(i) is None:
            pd.DataFrame({"timestamp": [0.0, 0.5], "subject": 1, "f1": [1.0, 2.0]}).to_csv(feats / f"{i}.csv",
                                                                                          index=False)
    return root


def test_hume_reaction_ids_that_are_paths_are_refused(tmp_path):
    root = hume_root(tmp_path, ["00001", "../../evil"])
    with pytest.raises(ViperError, match=r"line 3: '\.\./\.\./evil' holds a path separator"):
        hume_reaction_manifest(root, require_media=False)
    out = tmp_path / "store"
    before = snapshot(tmp_path, out)
    result = viper("import-features", str(root), "--out", str(out))
    assert result.exit_code == 2 and "cannot be file names" in result.stderr
    assert snapshot(tmp_path, out) == before


def test_import_features_from_a_folder_whose_name_cannot_be_a_key(tmp_path):
    """A challenge feature folder named with a line break becomes a modality name, and so a store key: the store
    refuses it with one message, and nothing lands outside --out."""
    root = hume_root(tmp_path, ["00001", "00002"], feature_folder="FA\nUs")
    out = tmp_path / "store"
    before = snapshot(tmp_path, out)
    with pytest.raises(ViperError, match="feature key .* control character"):
        import_challenge_features(root, out)
    assert snapshot(tmp_path, out) == before


def test_report_and_page_names_stay_in_their_folder(tmp_path):
    """`viper inspect` pages are named after videos and `viper evaluate` folders after modalities: both become one
    file name inside the folder given, whatever the names hold."""
    videos = [tmp_path / "a" / ("v" * 250 + ".mp4"), tmp_path / "b" / "line\nbreak.mp4", tmp_path / "c" / "..mp4"]
    for page in page_paths(videos, tmp_path / "pages"):
        assert page.parent == tmp_path / "pages" and len(page.name.encode()) <= 255
    assert eval_folder(tmp_path / "run", "test", ["../../x"]).parent == tmp_path / "run"


@pytest.mark.parametrize(("command", "out", "expected"), [
    (["--window", "1", "--plot"], "trace.jpg", "--plot {out}: a plot is written as .png, .svg, .pdf"),
    (["--out"], "page.pdf", "--out {out}: a page is written as .html, .htm"),
])
def test_an_output_name_with_another_suffix_is_refused_not_made_a_folder(tmp_path, command, out, expected):
    """`--plot trace.jpg` made a folder named trace.jpg and put trace.jpg/<video>.png in it: now one message, before
    any model loads; an existing folder of that name is still a folder."""
    clip = make_clip(tmp_path / "clip.mp4")
    verb = "predict" if "--plot" in command else "inspect"
    result = CliRunner().invoke(app, [verb, str(clip), *command, str(tmp_path / out)])
    assert result.exit_code == 2 and expected.format(out=tmp_path / out) in result.output
    assert not (tmp_path / out).exists() and "Traceback" not in result.output
    (tmp_path / out).mkdir()  # an existing folder of that name is a folder
    suffix = ".png" if verb == "predict" else ".html"
    assert output_paths([clip], tmp_path / out, (suffix,), "output", "--out") == [tmp_path / out / f"clip{suffix}"]
