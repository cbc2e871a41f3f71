"""An emotion trace: the records `viper predict --window S` gives for a long recording (one per window of S
seconds) as a table with a row per window, and a plot of the scores over the recording."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from .errors import ViperError

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
SOURCE = ("video", "media")  # the columns before the window's: the file, and whether it is a video or an image
SPAN = ("window", "start", "end")  # a window's columns, in records made with a window
PERSON = ("person", "person_frames", "person_first", "person_last", "person_box")  # with --faces main or all
COVERAGE = ("frames", "face_frames", "audio_frames", "people", "warnings")  # the columns after the emotions


def record_row(result: dict[str, Any]) -> dict[str, Any]:
    """A `viper predict` record as one flat row, the columns of its CSV and of `trace_table`: video, media, [window,
    start, end,] [person, person_frames, person_first, person_last, person_box (x0 y0 x1 y1),] one column per
    emotion, frames, face_frames, audio_frames, [people,] warnings (joined by "; ")."""
    coverage = result["coverage"]
    person = {name: result[name] for name in PERSON if name in result}
    if person.get("person_box"):
        person["person_box"] = " ".join(str(value) for value in person["person_box"])
    return {**{name: result[name] for name in SOURCE}, **{name: result[name] for name in SPAN if name in result},
            **person, **result["scores"], "frames": coverage["frames"], "face_frames": coverage["face"],
            "audio_frames": coverage["audio"], **({"people": coverage["people"]} if "people" in coverage else {}),
            "warnings": "; ".join(result["warnings"])}


def trace_table(results: list[dict[str, Any]]):
    """One row per window (pandas; with --faces main or all, per window and person): `record_row`'s columns.
    Records without a window (whole clips) are refused: they are not a trace."""
    import pandas as pd

    for result in results:
        if "window" not in result:
            raise ViperError(f"{result['video']}: a record without a window; predict with a window to get a trace")
    return pd.DataFrame([record_row(result) for result in results])


def trace_figure(table, title: str | None = None):
    """One recording's trace (a `trace_table` of one video): each emotion's score per window over time, windows
    without a face shaded, and below, the share of each window's frames with a face and with audio. Drawn without
    pyplot, so no global matplotlib backend changes in the caller's process."""
    import numpy as np
    from matplotlib.figure import Figure

    if table["video"].nunique() != 1:
        raise ViperError("a trace plot shows one video; select its rows first (table[table.video == ...])")
    if "person" in table and table["person"].nunique() > 1:
        raise ViperError("a trace plot shows one person; select their rows first (table[table.person == ...])")
    if (table["media"] == "image").all():
        raise ViperError(f"{table['video'].iloc[0]}: a still image has no trace over time to plot")
    table = table.sort_values("window")
    emotions = [column for column in table.columns if column not in (*SOURCE, *SPAN, *PERSON, *COVERAGE)]
    minutes = table["end"].max() - table["start"].min() > 600  # an axis in minutes beyond 10 of them
    scale = 60.0 if minutes else 1.0
    edges = np.append(table["start"].to_numpy(), table["end"].iloc[-1]) / scale
    figure = Figure(figsize=(11, 5))
    scores, coverage = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for emotion in emotions:
        values = table[emotion].to_numpy(float)
        scores.stairs(values, edges, linewidth=1.4, label=emotion, baseline=None)
    for start, end, faces in zip(table["start"], table["end"], table["face_frames"], strict=True):
        if faces == 0:
            scores.axvspan(start / scale, end / scale, color="0.88", linewidth=0, zorder=0)
    scores.set_ylabel("score")
    scores.set_title(title or str(table["video"].iloc[0]), fontsize=10, loc="left")
    scores.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    frames = table["frames"].to_numpy(float)
    coverage.stairs(table["face_frames"].to_numpy(float) / frames, edges, label="face", baseline=None, color="0.2",
                    linewidth=2.5)
    coverage.stairs(table["audio_frames"].to_numpy(float) / frames, edges, label="audio", baseline=None,
                    color="tab:orange", linestyle="--")
    coverage.set_ylim(-0.05, 1.05)
    coverage.set_ylabel("coverage", fontsize=9)
    coverage.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    coverage.set_xlabel("time in the recording (" + ("min" if minutes else "s") + "); grey: windows without a face")
    coverage.set_xlim(edges[0], edges[-1])
    figure.tight_layout()
    return figure


def person_traces(table) -> dict[int, Any]:
    """One recording's trace per person (a `trace_table` of one video made with --faces all): each person's rows
    over every window of the recording, so their plot spans it; a window where they are not seen gets a row with
    no scores and no face frames (shaded as such). Empty when nobody was seen."""
    import numpy as np

    if "person" not in table:
        return {}
    windows = table.drop_duplicates("window").set_index("window")
    emotions = [column for column in table.columns if column not in (*SOURCE, *SPAN, *PERSON, *COVERAGE)]
    traces = {}
    for person in sorted(int(person) for person in table["person"].dropna().unique()):
        rows = table[table["person"] == person].set_index("window").reindex(windows.index)
        absent = rows["person"].isna()
        rows.loc[absent, [*SOURCE, "start", "end", "frames", "audio_frames"]] = windows.loc[
            absent, [*SOURCE, "start", "end", "frames", "audio_frames"]]
        rows.loc[absent, emotions] = np.nan
        rows.loc[absent, ["person", "face_frames"]] = (person, 0)
        traces[person] = rows.reset_index()
    return traces


def person_plot_path(path: Path, person: int) -> Path:
    """Where one person's trace plot goes: `-person<k>` before the suffix of the recording's plot path."""
    return path.with_name(f"{path.stem}-person{person}{path.suffix}")


def plot_trace(table, path: Path | str, title: str | None = None) -> Path:
    """Write one recording's `trace_figure` to a .png, .svg or .pdf file (atomically); returns the path."""
    from .atomic import atomic_write_bytes

    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise ViperError(f"{path}: a trace plot is a {', '.join(PLOT_SUFFIXES)} file")
    buffer = io.BytesIO()
    trace_figure(table, title).savefig(buffer, format=path.suffix.lower()[1:], dpi=100)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as error:
        raise ViperError(f"{path}: cannot write the plot ({error.strerror or error})") from error
    return path
