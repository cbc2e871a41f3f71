"""What to extract: a folder of videos or a manifest CSV (`video_id,path,split,<one column per emotion>`, and an
optional `person` column: who is in the clip, blank when unknown, so splits can be checked and grouped by person)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .errors import ViperError
from .filenames import case_clashes, name_problem, safe_name, unique_names
from .video import VIDEO_SUFFIXES

REQUIRED_COLUMNS = ("video_id", "path")
PERSON_COLUMN = "person"
SPLIT_NAMES = {"train": "train", "dev": "dev", "devel": "dev", "val": "dev", "validation": "dev", "test": "test"}


def normalise_split(value: str) -> str:
    """train/dev/test whatever the spelling (devel, val, Train...); unknown values pass through, lowercased."""
    text = str(value).strip().lower()
    return SPLIT_NAMES.get(text, text)


def scan_folder(folder: Path, suffixes: tuple[str, ...] = VIDEO_SUFFIXES):
    """Every video file (every file with one of `suffixes`) under a folder, recursively, ids from the relative path
    without suffix (`sub__name`), made file-name safe (`filenames.safe_name`) and unique (two files that would
    share an id get a hash each)."""
    import pandas as pd

    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise ViperError(f"{folder}: no video files found (looked for {', '.join(suffixes)})")
    relative = [str(p.relative_to(folder)) for p in files]
    # the suffix cut off as text: Path("..mp4").with_suffix("") raises on Python 3.13 (its stem "." is no name)
    stems = [name[: -len(path.suffix)] for name, path in zip(relative, files, strict=True)]
    ids = unique_names([safe_name(stem) for stem in stems], relative)
    return pd.DataFrame({"video_id": ids, "path": [str(p.resolve()) for p in files], "split": ""})


def check_csv_table(csv_path: Path, table, *, unnamed_ok: bool = False) -> None:
    """A ViperError for what pandas reads quietly wrong from `csv_path` into `table`: a column without a name or
    given twice (pandas names them `Unnamed: 3` and `joy.1`, each an emotion of its own; `unnamed_ok` where columns
    are picked by name), a NUL byte (the value would end there), or a row with more fields than the header (its
    first fields would become the index, the rest shift left)."""
    import pandas as pd

    data = Path(csv_path).read_bytes()
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise ViperError(f"{csv_path}: line {line} holds a NUL byte; a CSV is text")
    rows = csv.reader(io.StringIO(data.decode("utf-8-sig", errors="replace")))
    header = [name.strip() for name in next(rows, [])]
    blank = [] if unnamed_ok else [index for index, name in enumerate(header) if not name]
    if blank:
        names = ", ".join(repr(f"Unnamed: {index}") for index in blank)
        raise ViperError(f"{csv_path}: column(s) {', '.join(str(index + 1) for index in blank)} of the header have no "
                         f"name (read as {names}, an emotion each); name them or remove them")
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:
        raise ViperError(f"{csv_path}: column(s) {', '.join(map(repr, repeated))} given more than once; keep one each")
    if not isinstance(table.index, pd.RangeIndex):
        line = next((rows.line_num for row in rows if len(row) > len(header)), "?")
        raise ViperError(f"{csv_path}: line {line} has more fields than the header's {len(header)}; a value that "
                         "holds a comma needs quotes")


def split_problem(values) -> str | None:
    """The rows of a split column (a Series; line = row + 2) whose value is no split name and not blank, worded
    for a message; None when there are none. Such a clip would silently belong to no split."""
    texts = values.fillna("").astype(str).str.strip()
    unknown = [index + 2 for index, text in texts.items() if normalise_split(text) not in ("", *SPLIT_NAMES.values())]
    if not unknown:
        return None
    names = sorted({repr(texts[line - 2]) for line in unknown})
    return (f"unknown split {', '.join(names[:10])} on line(s) {_lines(unknown)}; use {', '.join(SPLIT_NAMES)} "
            "(any case), or leave it empty")


def read_manifest(csv_path: Path):
    """Read and check a manifest; paths become absolute. Every problem is reported at once, with line numbers."""
    import pandas as pd

    csv_path = Path(csv_path)
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as error:
        raise ViperError(f"{csv_path}: not a readable CSV manifest ({error})") from None
    check_csv_table(csv_path, table)
    table.columns = [column.strip() for column in table.columns]
    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise ViperError(
            f"{csv_path}: missing column(s) {', '.join(missing)}; a manifest needs video_id,path[,split,<emotions>]"
        )
    if "split" not in table.columns:
        table.insert(2, "split", "")
    problems = []
    ids = table["video_id"].str.strip()
    blank = [index + 2 for index in ids.index[ids == ""]]
    if blank:
        problems.append(f"empty video_id on line(s) {_lines(blank)}")
    duplicated = sorted(set(ids[ids.duplicated() & (ids != "")]))
    if duplicated:
        problems.append(f"duplicate video_id(s): {', '.join(duplicated[:10])}{' ...' if len(duplicated) > 10 else ''}")
    clashes = case_clashes([text for text in ids if text])
    if clashes:
        problems.append(f"video_id(s) that differ only in case, one file on macOS and Windows: "
                        f"{', '.join(clashes[:10])}{' ...' if len(clashes) > 10 else ''}")
    unsafe = [f"line {index + 2}: {text[:80]!r} {name_problem(text)}" for index, text in ids.items()
              if text and name_problem(text)]
    if unsafe:
        more = f" (and {len(unsafe) - 20} more)" if len(unsafe) > 20 else ""
        problems.append(f"{len(unsafe)} video_id(s) cannot be file names in the store: {'; '.join(unsafe[:20])}{more}")
    bad_splits = split_problem(table["split"])
    if bad_splits:
        problems.append(bad_splits)
    resolved = [(csv_path.parent / path.strip()).resolve() for path in table["path"]]
    absent = [(index + 2, path) for index, path in enumerate(resolved) if not path.is_file()]
    if absent:
        listing = "; ".join(f"line {line}: {path}" for line, path in absent[:20])
        more = f" (and {len(absent) - 20} more)" if len(absent) > 20 else ""
        problems.append(f"{len(absent)} path(s) do not exist: {listing}{more}")
    if problems:
        raise ViperError(f"{csv_path}: bad manifest:\n  " + "\n  ".join(problems))
    table["video_id"] = ids
    table["path"] = [str(path) for path in resolved]
    table["split"] = table["split"].map(normalise_split)
    if PERSON_COLUMN in table.columns:
        table[PERSON_COLUMN] = table[PERSON_COLUMN].str.strip()
    return table


def _lines(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers[:20])) + (" ..." if len(numbers) > 20 else "")


def load_inputs(data: Path, dataset: str | None = None):
    """A folder, a manifest CSV, or a single video file, as a manifest table; `dataset` reads a dataset's own
    layout instead (a name of viper.datasets.DATASET_LAYOUTS)."""
    import pandas as pd

    if dataset is not None:
        from .datasets import DATASET_LAYOUTS

        return DATASET_LAYOUTS.get(dataset)(Path(data))
    data = Path(data)
    if not data.exists():
        raise ViperError(f"{data}: does not exist")
    if data.is_dir():
        return scan_folder(data)
    if data.suffix.lower() == ".csv":
        return read_manifest(data)
    return pd.DataFrame({"video_id": [safe_name(data.stem)], "path": [str(data.resolve())], "split": [""]})
