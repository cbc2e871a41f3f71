"""`viper predict` and `inspect`: the commands that score videos and images and show what the models saw."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ViperError
from ..filenames import printable
from ..progress import ProgressBars
from .common import RUNTIME_HELP, friendly


@friendly
def predict(
    videos: list[Path] = typer.Argument(
        ..., metavar="VIDEO|IMAGE|FOLDER",
        help="Video or image files to score, or folders of them (searched recursively).",
    ),
    checkpoint: Path = typer.Option(
        None, "--checkpoint", "-c", help="Run folder or checkpoint file; without it, viper's general model."
    ),
    output_format: str = typer.Option("json", "--format", help="json (one object per line) or csv."),
    per_frame: Path | None = typer.Option(
        None, "--per-frame", metavar="TABLE.csv|.parquet", help="Also write one row per sampled frame: time, face "
        "box, blendshapes, expression probabilities, audio present, the clip's (or window's) scores."
    ),
    window: float | None = typer.Option(
        None, "--window", metavar="S", help="Score consecutive windows of S seconds of each video (N frames each, as "
        "a clip): an emotion trace of a long recording, one record per window with its start and end."
    ),
    plot: Path | None = typer.Option(
        None, "--plot", metavar="TRACE.png|FOLDER", help="With --window: plot each video's trace (.png, .svg or "
        ".pdf; a folder for several videos, one <video>.png each)."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or mps: where models run."),
    no_face_crop: bool = typer.Option(
        False, "--no-face-crop", help="Take each whole image or frame as the face (for inputs that are face crops)."
    ),
    faces: str = typer.Option(
        "main", "--faces", help="Whose face: main (the person seen on the most frames), all (a record per person) "
        "or largest (the largest face of each frame, the paper's rule)."
    ),
    runtime: str | None = typer.Option(None, "--runtime", help=RUNTIME_HELP),
) -> None:
    """Score videos or images with viper's general model, or with a trained run (extracting the features it was
    trained on). A still image (jpg, png, webp, ...) is one frame.

    Without --checkpoint the scores are probabilities of 7 basic emotions (neutral, happy, sad, angry, fearful,
    disgust, surprised) summing to 1, from expression networks trained on many people. With a run, scores are on
    the label scale it was trained on (the demo: 1 strong, 0.5 normal, 0 absent). Each video also gets its coverage
    (of the N frames, those with a face and with audio) and warnings when the model could not see what it reads
    (e.g. no face found: the scores carry no evidence). Records are printed as they come; with --window, one per
    window of S seconds, each scored as a clip.
    """
    from ..jobs.predict import PER_FRAME, check_table_path, format_records, predictions, write_table

    if output_format not in ("json", "csv"):
        raise ViperError(f"--format must be json or csv, not {output_format!r}")
    if per_frame is not None:
        check_table_path(per_frame)
    if plot is not None:
        from ..jobs.predict import video_list

        videos = video_list(videos)[0]  # folders found once: for the plots' names, then for the predictions
    plots = _trace_plots(plot, window, videos)
    bars, header, tables, traces, failed = ProgressBars(), True, [], {}, False
    for video, prediction in predictions(videos, checkpoint, device, also=PER_FRAME if per_frame else (),
                                         window=window, hook=bars, face_crop=not no_face_crop, faces=faces,
                                         runtime=runtime):
        if isinstance(prediction, str):
            typer.secho(f"error: {printable(prediction)}", fg=typer.colors.RED, err=True)
            failed = True
            continue
        record = prediction.record()
        bars("predict", message=format_records([record], output_format, header).rstrip("\n"))  # above the bars
        header = False
        if per_frame is not None:
            tables.append(prediction.frame_table())
        if plots and record["media"] == "image":
            typer.echo(f"no plot for {video}: a still image has no trace over time", err=True)
        elif plots:
            traces.setdefault(video, []).append(record)
            if _recording_done(prediction, traces[video], faces):  # the video's last record: plot it now
                _plot_traces(traces.pop(video), plots[video], video, faces)
    if per_frame is not None and tables:
        import pandas as pd

        try:
            write_table(pd.concat(tables, ignore_index=True), per_frame)
        except ViperError as error:
            raise ViperError(f"{error}; every record above was printed") from None
    elif per_frame is not None:  # an earlier table is left as it was, not replaced by an empty one
        typer.echo(f"no per-frame table written to {per_frame}: no video was scored", err=True)
    if failed:
        raise typer.Exit(1)


def _recording_done(prediction, records: list[dict], faces: str) -> bool:
    """Whether a recording's records are all in: its last window's, which with --faces all are one per person seen
    there (at least one)."""
    window = prediction.window
    expected = (prediction.coverage.people or 1) if faces == "all" else 1
    return window.index + 1 == window.count and sum(record["window"] == window.index for record in records) == expected


def _plot_traces(records: list[dict], path: Path, video: Path, faces: str) -> None:
    """A recording's trace plot, or with --faces all one per person (`-person<k>` before the suffix)."""
    from ..trace import person_plot_path, person_traces, plot_trace, trace_table

    table = trace_table(records)
    people = person_traces(table) if faces == "all" else {}
    plots = [(table, path, str(video))] if not people else [
        (rows, person_plot_path(path, person), f"{video}, person {person}") for person, rows in people.items()]
    for rows, target, title in plots:
        plot_trace(rows, target, title=title)
        typer.echo(f"plot: {target}", err=True)


def _trace_plots(plot: Path | None, window: float | None, videos: list[Path]) -> dict[Path, Path]:
    """Where each video's trace plot goes (checked before any model loads); `videos` with folders already
    expanded."""
    if plot is None:
        return {}
    if window is None:
        raise ViperError("--plot draws the trace of --window S; add --window")
    from ..filenames import output_paths
    from ..trace import PLOT_SUFFIXES

    return dict(zip(videos, output_paths(videos, plot, PLOT_SUFFIXES, "plot", "--plot"), strict=True))


@friendly
def inspect(
    videos: list[Path] = typer.Argument(
        ..., metavar="VIDEO|IMAGE|FOLDER", help="Video or image files to look at, or folders of them."
    ),
    checkpoint: Path = typer.Option(
        None, "--checkpoint", "-c", help="Run folder or checkpoint file; without it, viper's general model."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="page.html for one video; a folder (one <video>.html per clip) for several."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or mps: where models run."),
    no_face_crop: bool = typer.Option(
        False, "--no-face-crop", help="Take each whole image or frame as the face (for inputs that are face crops)."
    ),
    faces: str = typer.Option(
        "main", "--faces", help="Whose face: main (the person seen most), all (each person) or largest."
    ),
    runtime: str | None = typer.Option(None, "--runtime", help=RUNTIME_HELP),
) -> None:
    """One self-contained HTML page per clip: frames, faces, captions, FAU traces and the predicted scores."""
    from ..jobs.inspect import inspect as run_inspect

    pages, failures = run_inspect(videos, checkpoint, out, device=device, hook=ProgressBars(),
                                  face_crop=not no_face_crop, faces=faces, runtime=runtime)
    for page in pages:
        typer.echo(f"page: {page}")
    for _, reason in failures:
        typer.secho(f"error: {printable(reason)}", fg=typer.colors.RED, err=True)
    if failures:  # as extract and predict: 1 when some videos could not be read, 2 for a bad command
        raise typer.Exit(1)
