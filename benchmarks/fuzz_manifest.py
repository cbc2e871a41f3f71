"""Hostile manifests, file names and store corruptions fed to `viper extract`, `viper dataset`, `viper
import-features` and `viper train` as real processes, on tiny generated clips and stores. Per case: the exit code,
whether a traceback appeared, and whether anything was written outside the output folder. A traceback, a write
outside, or an exit code other than the one the case expects is a finding.

    python benchmarks/fuzz_manifest.py [--random 20] [--seed 0] [--only TEXT] [--timeout 300]

Each case runs in a sandbox of its own: inputs in `in/` (the working directory), the output folder seven levels
down (`o1/.../o7/out`, so an id of up to nine `../` would still land in the sandbox) and targets of absolute ids
in `abs/`; every file of the sandbox outside the output folder is compared before and after. `train` cases keep
their store in the output folder too (`out/store`, `out/run`): a store is a cache `train` may pack.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]  # viper and the tests' clip and store builders

from media import make_clip  # noqa: E402
from synthetic import make_synthetic_store  # noqa: E402

HEADER = ["video_id", "path", "split", "joy"]
TRACEBACK = "Traceback (most recent call last)"
TINY_TRAIN = '{"device": "cpu", "lr": 0.01, "model_overrides": {"num_latents": 8, "latent_dim": 16, ' \
             '"input_dim": 16, "self_layers": 1, "latent_heads": 2}}'
EXTRACT = ["-n", "4", "-e", "audio"]


@dataclass
class Sandbox:
    root: Path
    inputs: Path
    out: Path
    clip: Path  # a tiny clip with audio, in inputs


@dataclass
class Case:
    name: str
    expect: int | None  # the exit code it must give; None: any, but no traceback and nothing written outside
    setup: Callable[[Sandbox], list[str]]  # builds the inputs; returns viper's arguments
    twice: bool = False  # run a long one first and this one into its output folder while it runs


@dataclass
class Outcome:
    case: Case
    code: int
    traceback: bool
    outside: list[str]
    seconds: float
    message: str  # the last line of stderr: what the user was told

    @property
    def finding(self) -> str:
        problems = ["traceback"] if self.traceback else []
        problems += [f"wrote outside: {', '.join(self.outside[:3])}"] if self.outside else []
        if self.case.expect is not None and self.code != self.case.expect:
            problems.append(f"exit {self.code}, expected {self.case.expect}")
        return "; ".join(problems)


# --- building inputs -------------------------------------------------------------------------------------------
def csv_text(rows: list[list[str]], header: list[str] = HEADER) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
    return buffer.getvalue()


def manifest_case(text: str | bytes) -> Callable[[Sandbox], list[str]]:
    """`viper extract m.csv` of this manifest; `{sandbox}` in it is the sandbox's path."""

    def setup(box: Sandbox) -> list[str]:
        path = box.inputs / "m.csv"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text.replace("{sandbox}", str(box.root)), encoding="utf-8", newline="")
        return ["extract", "m.csv", "--out", str(box.out), *EXTRACT]

    return setup


def id_case(video_id: str) -> Callable[[Sandbox], list[str]]:
    return manifest_case(csv_text([[video_id, "a.mp4", "train", "0.5"], ["b", "a.mp4", "test", "0.1"]]))


def folder_case(box: Sandbox) -> list[str]:
    """Video files whose names hold a line break, are `..`-like, 226 bytes long, or would share an id."""
    videos = box.inputs / "videos"
    (videos / "sub").mkdir(parents=True)
    for name in ("line\nbreak.mp4", "..mp4", "z" * 226 + ".mp4", "sub/dup.mp4", "sub__dup.mp4", "日本.mp4"):
        shutil.copy(box.clip, videos / name)
    return ["extract", "videos", "--out", str(box.out), *EXTRACT]


def ravdess_files(box: Sandbox) -> None:
    """One take in two folders of one name, and as .mp4 and .wav: ids that used to collide."""
    for folder in ("a/crops", "b/crops"):
        (box.inputs / "rav" / folder).mkdir(parents=True)
        for name in ("01-01-03-02-01-01-05.mp4", "01-01-03-02-01-01-05.wav", "01-01-04-02-02-01-06.mp4"):
            shutil.copy(box.clip, box.inputs / "rav" / folder / name)


def ravdess_extract(box: Sandbox) -> list[str]:
    ravdess_files(box)
    return ["extract", "rav", "--dataset", "ravdess", "--out", str(box.out), *EXTRACT]


def ravdess_dataset(box: Sandbox) -> list[str]:
    ravdess_files(box)
    return ["dataset", "ravdess", "rav", "--out", str(box.out / "m.csv")]


def hume_case(ids: list[str], feature_folder: str = "FAUs") -> Callable[[Sandbox], list[str]]:
    """`viper import-features` of a Hume-Reaction folder with these partition ids and one feature folder."""

    def setup(box: Sandbox) -> list[str]:
        root = box.inputs / "c2_muse_reaction"
        feats = root / "feats" / feature_folder
        feats.mkdir(parents=True)
        emotions = ["Adoration", "Amusement", "Anxiety", "Disgust", "Empathic-Pain", "Fear", "Surprise"]
        (root / "partition.csv").write_text(csv_text([[f"[{i}]", "train"] for i in ids], ["Id", "Partition"]))
        (root / "labels.csv").write_text(csv_text([[f"[{i}]", *["0.5"] * 7] for i in ids], ["File_ID", *emotions]))
        for i in ids:
            if "/" not in i:
                (feats / f"{i}.csv").write_text("timestamp,subject,f1\n0.0,1,1.0\n0.5,1,2.0\n")
        return ["import-features", str(root), "--out", str(box.out)]

    return setup


def train_case(edit: Callable[[Path], None] | None = None) -> Callable[[Sandbox], list[str]]:
    """`viper train` on a tiny synthetic store (packed) after `edit(store root)`."""

    def setup(box: Sandbox) -> list[str]:
        store = make_synthetic_store(box.out / "store", {"audio-test-bbbb": ("audio", 4)}, ("joy", "fear"),
                                     n_clips=12, n_frames=4)
        store.pack("audio-test-bbbb")
        if edit is not None:
            edit(store.root)
        (box.inputs / "train.json").write_text(TINY_TRAIN)
        return ["train", "--features", str(store.root), "--out", str(box.out / "run"), "--config", "train.json",
                "--epochs", "2"]

    return setup


def edit_text(name: str, change: Callable[[str], str]) -> Callable[[Path], None]:
    return lambda root: (root / name).write_text(change((root / name).read_text()))


def first_label(text: str, value: str) -> str:
    """labels.csv with the first row's first label replaced by `value`."""
    lines = text.splitlines()
    fields = lines[1].split(",")
    fields[3] = value
    return "\n".join([lines[0], ",".join(fields), *lines[2:]]) + "\n"


def stale_lock(root: Path) -> None:
    (root.parent / "run").mkdir()
    (root.parent / "run" / ".lock").write_text("999999")  # left by a process that died


# --- the cases ---------------------------------------------------------------------------------------------------
ID_CASES = {  # the first row's id -> the exit code it must give
    "../../../x": 2, "../" * 9 + "x": 2, "{sandbox}/abs/x": 2, "..\\..\\x": 2, "..": 2, ".": 2, "a\nb": 2,
    "a\x00b": 2, "a\tb": 2, "a\x7fb": 2, "a\u2028b": 2, "x" * 300: 2, "é" * 101: 2,
    "x" * 200: 0, "émotion-日本語-😀": 0, "abc\u202edcb": 0, ".hidden": 0, " a, b ": 0, "a..b": 0,
}
ROW_B = "b,a.mp4,test,0.1\n"
MANIFESTS = {  # name -> (manifest text or bytes, the exit code it must give)
    "columns: joy twice": ("video_id,path,split,joy,joy\na,a.mp4,train,0.5,0.1\n", 2),
    "columns: joy twice, one with a space": ("video_id,path,split,joy, joy\na,a.mp4,train,0.5,0.1\n", 2),
    "columns: video_id twice": ("video_id,video_id,path,split\na,a,a.mp4,train\n", 2),
    "columns: no path": ("video_id,split,joy\na,train,0.5\n", 2),
    "split: tarin": ("video_id,path,split,joy\na,a.mp4,tarin,0.5\n" + ROW_B, 2),
    "split: VALIDATION and blank": ("video_id,path,split,joy\na,a.mp4,VALIDATION,0.5\nb,a.mp4,,0.1\n", 0),
    "split: unicode": ("video_id,path,split,joy\na,a.mp4,trаin,0.5\n" + ROW_B, 2),  # a Cyrillic а
    "labels: nan, empty, inf": ("video_id,path,split,joy\na,a.mp4,train,nan\nb,a.mp4,test,\nc,a.mp4,dev,inf\n", 0),
    "ids: duplicate": ("video_id,path,split,joy\na,a.mp4,train,0.5\na,a.mp4,test,0.1\n", 2),
    "ids: blank": ("video_id,path,split,joy\n ,a.mp4,train,0.5\n" + ROW_B, 2),
    "file: empty": ("", 2),
    "file: header only": ("video_id,path,split,joy\n", 0),
    "file: ragged row": ("video_id,path,split,joy\na,a.mp4,train,0.5,9,9\n", 2),
    "file: latin-1 bytes": ("video_id,path,split,joy\né,a.mp4,train,0.5\n".encode("latin-1"), 2),
    "file: BOM": ("\ufeffvideo_id,path,split,joy\na,a.mp4,train,0.5\n", 0),
    "path: a folder": ("video_id,path,split,joy\na,.,train,0.5\n", 2),
    "path: /dev/null": ("video_id,path,split,joy\na,/dev/null,train,0.5\n", 2),
    "path: a text file": ("video_id,path,split,joy\na,m.csv,train,0.5\n" + ROW_B, 1),
}
TRAIN = {  # name -> (store edit, the exit code it must give)
    "train: a sound store": (None, 0),
    "store.json: format 2": (edit_text("store.json", lambda t: t.replace('"format": 1', '"format": 2')), 2),
    "store.json: no format": (edit_text("store.json", lambda t: t.replace('"format": 1,', "")), 2),
    "store.json: format \"1\"": (edit_text("store.json", lambda t: t.replace('"format": 1', '"format": "1"')), 2),
    "labels.csv: split tarin": (edit_text("labels.csv", lambda t: t.replace(",train,", ",tarin,", 1)), 2),
    "labels.csv: column twice": (edit_text("labels.csv", lambda t: t.replace("joy", "fear", 1)), 2),
    "labels.csv: a NaN label": (edit_text("labels.csv", lambda t: first_label(t, "nan")), 2),
    "labels.csv: an inf label": (edit_text("labels.csv", lambda t: first_label(t, "inf")), 2),
    "labels.csv: a row too long": (edit_text("labels.csv", lambda t: t.replace(",train,", ",train,9,", 1)), 2),
    "labels.csv: an id twice": (edit_text("labels.csv", lambda t: t + t.splitlines()[1] + "\n"), 2),
    "labels.csv: id ../../x": (edit_text("labels.csv", lambda t: t.replace("clip000", "../../x", 1)), None),
    "labels.csv: header only": (edit_text("labels.csv", lambda t: t.splitlines()[0] + "\n"), 2),
    "labels.csv: missing": (lambda root: (root / "labels.csv").unlink(), 2),
    "run folder: stale lock of a dead process": (stale_lock, 0),
}


def cases(random_count: int, seed: int) -> list[Case]:
    found = [Case(f"id {name!r}"[:40], code, id_case(name)) for name, code in ID_CASES.items()]
    found += [Case(name, code, manifest_case(text)) for name, (text, code) in MANIFESTS.items()]
    found += [
        Case("folder: hostile file names", 0, folder_case),
        Case("ravdess: one take twice (extract)", 0, ravdess_extract),
        Case("ravdess: one take twice (dataset)", 0, ravdess_dataset),
        Case("import-features: id ../../evil", 2, hume_case(["00001", "../../evil"])),
        Case("import-features: folder FA\\nUs", 2, hume_case(["00001"], "FA\nUs")),
    ]
    found += [Case(name, code, train_case(edit)) for name, (edit, code) in TRAIN.items()]
    found.append(Case("run folder: in use by another train", 2, train_case(), twice=True))
    rng = random.Random(seed)
    found += [Case(f"random manifest {index}", None, manifest_case(random_manifest(rng)))
              for index in range(random_count)]
    return found


HOSTILE_PIECES = ["/", "\\", "..", "\n", "\t", "\x7f", "\u2028"]
PLAIN_PIECES = [".", "é", "日", "😀", "a", "-", " ", ",", '"']


def random_name(rng: random.Random, hostile: bool) -> str:
    pieces = PLAIN_PIECES + (HOSTILE_PIECES if hostile else [])
    return "".join(rng.choice(pieces) for _ in range(rng.choice([1, 3, 10, 40, 80])))


def random_manifest(rng: random.Random) -> str:
    """Ids of dots, wide characters, commas and quotes, labels of all kinds (nan, inf, text: `train` checks them),
    and most often one hostile trait: ids with separators or control characters, a split typo, a column twice."""
    trait = rng.choice(["none", "ids", "split", "column"])
    header = HEADER + (["joy"] if trait == "column" else [])
    labels = ["0.5", "nan", "inf", "", "-3", "high", "1e400"]
    splits, typos = ["train", "dev", "test", "", "Devel"], ["tarin", "véal"]
    rows = []
    for _ in range(rng.randint(1, 4)):
        split = rng.choice(typos if trait == "split" and not rows else splits)
        rows.append([random_name(rng, trait == "ids"), "a.mp4", split, *(rng.choice(labels) for _ in header[3:])])
    return csv_text(rows, header)


# --- running -----------------------------------------------------------------------------------------------------
def snapshot(root: Path, out: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file under `root` outside `out`."""
    found = {}
    for folder, _, files in os.walk(root):
        if Path(folder) == out or out in Path(folder).parents:
            continue
        for name in files:
            stat = (Path(folder) / name).stat()
            found[os.path.join(folder, name)] = (stat.st_size, stat.st_mtime_ns)
    return found


def run_case(case: Case, clip: Path, workdir: Path, timeout: float) -> Outcome:
    root = Path(tempfile.mkdtemp(dir=workdir, prefix="case-"))
    inputs, out = root / "in", root.joinpath(*(f"o{i}" for i in range(1, 8)), "out")
    for folder in (inputs, out.parent, root / "abs"):
        folder.mkdir(parents=True)
    shutil.copy(clip, inputs / "a.mp4")
    box = Sandbox(root, inputs, out, inputs / "a.mp4")
    arguments = case.setup(box)
    before = snapshot(root, out)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path[:2])}
    started = time.perf_counter()
    if case.twice:
        code, output = run_twice(arguments, inputs, env, timeout)
    else:
        result = subprocess.run([sys.executable, "-m", "viper", *arguments], cwd=inputs, env=env,
                                capture_output=True, text=True, errors="replace", timeout=timeout)
        code, output = result.returncode, result.stdout + result.stderr
    seconds = time.perf_counter() - started
    after = snapshot(root, out)
    outside = sorted(path for path in after if before.get(path) != after[path])
    lines = [line for line in output.splitlines() if line.strip() and "%|" not in line]
    outcome = Outcome(case, code, TRACEBACK in output, outside, seconds, lines[-1][:160] if lines else "")
    shutil.rmtree(root, ignore_errors=True)
    return outcome


def run_twice(arguments: list[str], cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    """A long `viper train` and, once it has finished an epoch, the same command into its folder: the second's
    exit code and output (the first is then killed)."""
    long = [*arguments, "--epochs", "100000"]  # the last --epochs counts
    first = subprocess.Popen([sys.executable, "-m", "viper", *long], cwd=cwd, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = Path(arguments[arguments.index("--out") + 1])
    deadline = time.time() + timeout
    while time.time() < deadline and first.poll() is None and not (run / "last.pt").exists():
        time.sleep(0.05)
    second = subprocess.run([sys.executable, "-m", "viper", *arguments], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout)
    first.send_signal(signal.SIGKILL)
    first.wait()
    return second.returncode, second.stdout + second.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", type=int, default=20, help="Random manifests besides the fixed cases.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="Run the cases whose name contains this text.")
    parser.add_argument("--timeout", type=float, default=300.0, help="Seconds per viper process.")
    args = parser.parse_args()
    chosen = [case for case in cases(args.random, args.seed) if args.only in case.name]
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="fuzz-manifest-") as folder:
        clip = make_clip(Path(folder) / "clip.mp4", frames=4, audio_seconds=0.4)
        for case in chosen:
            outcome = run_case(case, clip, Path(folder), args.timeout)
            outcomes.append(outcome)
            mark = "FINDING " + outcome.finding if outcome.finding else "ok"
            print(f"{case.name:<45} exit {outcome.code:>3} (expect {case.expect if case.expect is not None else 'any'})"
                  f"  traceback {'yes' if outcome.traceback else 'no ':<3}  outside {len(outcome.outside)}"
                  f"  {outcome.seconds:5.1f} s  {mark}  | {outcome.message}", flush=True)
    findings = [outcome for outcome in outcomes if outcome.finding]
    codes = sorted({outcome.code for outcome in outcomes})
    print(f"\n{len(outcomes)} cases: exit codes {', '.join(map(str, codes))}; "
          f"{sum(o.traceback for o in outcomes)} with a traceback, {sum(bool(o.outside) for o in outcomes)} wrote "
          f"outside the output folder; {len(findings)} finding(s)")
    for outcome in findings:
        print(f"  {outcome.case.name}: {outcome.finding}")
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
