"""Merging new manifest rows into a store's labels.csv, so that no extraction silently undoes another's: a folder of
videos (no split, no labels) added to a store made from a manifest keeps every row's split and labels."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

ID_COLUMNS = ("video_id", "path", "split", "person")  # every other labels.csv column is an emotion

SHOWN = 5


def merge_labels(old, new, where: str):
    """labels.csv rows `old` with the manifest rows `new` merged in (DataFrames; the result is one row per clip).

    Column by column, a clip's value in `new` replaces its old one, except a blank, which erases nothing. Changed
    splits, persons or labels are logged (naming `where`), and so are emotion columns that only one side has
    (`viper train` then refuses the clips that lack them)."""
    import pandas as pd

    old = old.drop_duplicates("video_id", keep="last").set_index("video_id")  # one row per clip, as written
    new = new.set_index("video_id")
    columns = list(dict.fromkeys([*old.columns, *new.columns]))
    ids = list(dict.fromkeys([*old.index, *new.index]))
    merged = old.reindex(index=ids, columns=columns).astype(object)
    given = new.reindex(columns=columns).astype(object)
    given = given.where(given.notna() & (given.astype(str).apply(lambda column: column.str.strip()) != ""))
    _report_changes(merged.loc[new.index], given, where)
    _report_emotions(old.columns, new.columns, where)
    merged.update(given)
    return pd.DataFrame(merged).reset_index()


def _report_changes(before, after, where: str) -> None:
    """Log the clips whose split, person or labels the new rows change (a new path is expected: files move)."""
    import pandas as pd

    changed = pd.Series(False, index=before.index)
    for column in (c for c in before.columns if c != "path"):
        a, b = before[column], after[column]
        numbers_a, numbers_b = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
        numeric = numbers_a.notna() & numbers_b.notna()
        differs = (numeric & (numbers_a != numbers_b)) | (~numeric & (a.astype(str) != b.astype(str)))
        changed |= a.notna() & b.notna() & differs
    if changed.any():
        ids = changed.index[changed].tolist()
        log.warning("%s: %d clip(s) get a new split, person or labels from this input (%s%s)", where, len(ids),
                    ", ".join(ids[:SHOWN]), " ..." if len(ids) > SHOWN else "")


def _report_emotions(old_columns, new_columns, where: str) -> None:
    old = [c for c in old_columns if c not in ID_COLUMNS]
    new = [c for c in new_columns if c not in ID_COLUMNS]
    if old and new and set(old) != set(new):
        log.warning("%s: the clips already there have emotion columns %s, the new ones %s; `viper train` needs every "
                    "emotion of its clips", where, ", ".join(old) or "none", ", ".join(new))
