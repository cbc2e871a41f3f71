"""The `viper` command: a thin layer over the library; input problems print one message, not a traceback."""

from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path

import typer

from .errors import SettingError, ViperError
from .filenames import printable
from .progress import ProgressBars

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode=None)


def friendly(command):
    """Show a ViperError as `error: ...` with exit code 2 (the traceback only with --debug / VIPER_DEBUG=1)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ViperError as error:
            if os.environ.get("VIPER_DEBUG"):
                raise
            text = error.as_flag() if isinstance(error, SettingError) else str(error)
            typer.secho(f"error: {printable(text)}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM where a job turns it into viper.errors.Interrupted
            text = str(stop) or "what was written so far is kept; run the same command to resume"
            typer.secho(f"interrupted: {text}", err=True)
            raise typer.Exit(128 + getattr(stop, "signum", signal.SIGINT)) from None

    return wrapper


def _print_version(given: bool) -> None:
    if given:
        from . import __version__

        typer.echo(f"viper {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks."),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print viper's version and exit."),
    threads: int | None = typer.Option(
        None, "--threads", min=1, metavar="N", help="torch threads per process (default: torch's own, every core; "
        "extract --workers K gives each worker cores/K). On a busy machine 1 can be several times faster."
    ),
) -> None:
    """viper: emotion recognition from videos of people (ViPER, MuSe 2022)."""
    if debug:
        os.environ["VIPER_DEBUG"] = "1"
    if threads is not None:  # before torch loads (it reads OMP_NUM_THREADS once); workers inherit the variables
        os.environ["VIPER_THREADS"] = os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
        if "torch" in sys.modules:  # already loaded (the CLI called from Python)
            sys.modules["torch"].set_num_threads(threads)


def _given(context: typer.Context, name: str) -> bool:
    """Whether the user set this option (rather than typer filling in its default)."""
    source = context.get_parameter_source(name)  # compared by name: typer may bring its own click enum
    return source is not None and source.name != "DEFAULT"


def _split_list(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


RUNTIME_HELP = ("onnx or torch: what runs the networks (the same features either way); default: onnx on the CPU where "
                "onnxruntime is installed, torch otherwise.")

@app.command()
@friendly
def extract(
    data: Path = typer.Argument(..., help="Folder of videos, manifest CSV (video_id,path,split,<emotions>) or video."),
    out: Path = typer.Option(..., "--out", "-o", help="Feature store folder (created or resumed)."),
    frames: int = typer.Option(32, "--frames", "-n", help="Frames sampled per clip (N), 1 to 1024."),
    extractors: str | None = typer.Option(
        None, "--extractors", "-e", help="Comma-separated modality[:backend]; default face_image,fau,caption,audio."
    ),
    workers: int | None = typer.Option(
        None, "--workers", "-w", help="Processes (Ray: actors), each with its own loaded models; default 1 locally "
        "(at most what this machine's CPUs and memory hold, ~1 GB each), as many as the Ray cluster fits with "
        "--backend ray."
    ),
    no_face_crop: bool = typer.Option(False, "--no-face-crop", help="Use whole frames (the paper's Table 2 ablation)."),
    faces: str = typer.Option(
        "main", "--faces", help="Whose face: main (the person seen on the most frames) or largest (each frame's "
        "largest face: the paper's, and stores made before viper followed people)."
    ),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or mps (Apple silicon)."),
    batch_videos: int | None = typer.Option(
        None, "--batch-videos", help="Clips whose frames each model sees in one batch, 1 to 256 (default 16 on cuda, "
        "1 on cpu; fewer when their decoded frames would not fit in memory)."
    ),
    config: Path | None = typer.Option(None, "--config", help="JSON/YAML with per-extractor options."),
    dataset: str | None = typer.Option(
        None, "--dataset", help="Read DATA as a dataset's own layout (see `viper dataset`): ravdess or hume-reaction."
    ),
    backend: str = typer.Option("local", "--backend", help="local (this machine's processes) or ray (a Ray cluster)."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Ray cluster to join: auto, HOST:6379 or ray://HOST:10001; default: start one here."
    ),
    gpus_per_worker: float = typer.Option(
        1.0, "--gpus-per-worker", help="With --backend ray --device cuda: the GPU share each actor asks for (e.g. 0.5)."
    ),
    runtime: str | None = typer.Option(None, "--runtime", help=RUNTIME_HELP),
) -> None:
    """Extract per-frame features of every video into a feature store (resumable)."""
    from .config import load_config_file
    from .jobs.extract import extract as run_extract

    options = load_config_file(config).get("options", {}) if config else None
    if options is not None and not (isinstance(options, dict) and all(isinstance(v, dict) for v in options.values())):
        raise ViperError(f"{config}: `options` must map each extractor (modality:backend) to its settings")
    summary = run_extract(data, out, frames=frames, extractors=_split_list(extractors), workers=workers,
                          face_crop=not no_face_crop, options=options, device=device, dataset=dataset,
                          batch_videos=batch_videos, backend=backend, ray_address=ray_address,
                          gpus_per_worker=gpus_per_worker, faces=faces, runtime=runtime, hook=ProgressBars())
    for line in summary.lines():
        typer.echo(line, err=line.startswith("FAILED"))
    if summary.kept_store:
        typer.echo(f"store: {out}")
    if summary.failed:
        raise typer.Exit(1)


@app.command("extractors")
def list_extractors() -> None:
    """List the registered extractors (modality:backend), defaults first."""
    from .extractors.base import DEFAULT_BACKENDS, EXTRACTORS, available

    for name in available():
        modality, backend = name.split(":")
        marker = " (default)" if DEFAULT_BACKENDS.get(modality) == backend else ""
        summary = " ".join(EXTRACTORS.get(name).__doc__.split("\n\n")[0].split())  # its first paragraph, whole
        typer.echo(f"{name}{marker}  {summary}")


@app.command("dataset")
@friendly
def dataset(
    name: str = typer.Argument(..., help="The dataset layout: ravdess (file names carry the labels; statement 02 is "
                               "the test split) or hume-reaction (MuSe 2022 Reaction root)."),
    root: Path = typer.Argument(..., help="The dataset's folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Manifest CSV to write."),
    split_by: str | None = typer.Option(
        None, "--split-by", help="ravdess only: statement (default; statement 02 tests) or actor (whole actors per "
        "split: the highest-numbered sixth tests, the sixth below it is dev; needs two actors or more)."
    ),
) -> None:
    """Convert a dataset's own layout into a viper manifest CSV (video_id, path, split, [person,] one column per
    emotion)."""
    from .datasets import DATASET_LAYOUTS, write_manifest

    reader = DATASET_LAYOUTS.get(name)
    if split_by is not None and name != "ravdess":
        raise ViperError(f"--split-by is for the ravdess layout; {name} has its own splits")
    rows = write_manifest(reader(root) if split_by is None else reader(root, split_by=split_by), out)
    typer.echo(f"{rows} clips -> {out}")


@app.command()
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
    from .jobs.predict import PER_FRAME, check_table_path, format_records, predictions, write_table

    if output_format not in ("json", "csv"):
        raise ViperError(f"--format must be json or csv, not {output_format!r}")
    if per_frame is not None:
        check_table_path(per_frame)
    if plot is not None:
        from .jobs.predict import video_list

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
    from .trace import person_plot_path, person_traces, plot_trace, trace_table

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
    from .filenames import output_paths
    from .trace import PLOT_SUFFIXES

    return dict(zip(videos, output_paths(videos, plot, PLOT_SUFFIXES, "plot", "--plot"), strict=True))


@app.command()
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
    from .jobs.inspect import inspect as run_inspect

    pages, failures = run_inspect(videos, checkpoint, out, device=device, hook=ProgressBars(),
                                  face_crop=not no_face_crop, faces=faces, runtime=runtime)
    for page in pages:
        typer.echo(f"page: {page}")
    for _, reason in failures:
        typer.secho(f"error: {printable(reason)}", fg=typer.colors.RED, err=True)
    if failures:  # as extract and predict: 1 when some videos could not be read, 2 for a bad command
        raise typer.Exit(1)


@app.command()
@friendly
def demo(
    out: Path = typer.Option(Path("viper-demo"), "--out", "-o", help="Folder for the store, run and report."),
    workers: int = typer.Option(2, "--workers", "-w", help="Extraction processes (capped at what the machine holds)."),
) -> None:
    """Extract, train and evaluate on the bundled real RAVDESS clips; prints per-emotion Pearson and accuracy."""
    from .jobs.demo import run_demo

    run_demo(out, workers=workers, hook=ProgressBars())


@app.command("import-features")
@friendly
def import_features(
    root: Path = typer.Argument(..., help="Hume-Reaction root (c2_muse_reaction/ or the folder holding it)."),
    out: Path = typer.Option(..., "--out", "-o", help="Feature store folder (created, or added to)."),
    features: str | None = typer.Option(
        None, "--features", help="Comma-separated folders of feats/, e.g. FAUs,VGGFace2; default all."
    ),
    frames: int | None = typer.Option(None, "--frames", "-n", help="N for a new store (default 32)."),
    tolerance: float | None = typer.Option(
        None, "--tolerance", help="Seconds from a frame to its feature row before it is masked (default row spacing)."
    ),
    time_unit: str = typer.Option("auto", "--time-unit", help="Feature timestamps in s, ms, or auto."),
) -> None:
    """Import the challenge's feats/<feature>/<id>.csv as modalities (backend `challenge`) aligned to N frames."""
    from .jobs.import_features import import_challenge_features
    from .store import FeatureStore

    keys = import_challenge_features(root, out, _split_list(features), frames=frames, tolerance=tolerance,
                                     time_unit=time_unit, hook=ProgressBars())
    store = FeatureStore.open(out)
    for folder, key in keys.items():
        typer.echo(f"{folder} -> modality {store.feature_spec(key).modality} ({key})")
    typer.echo(f"store: {out}")


@app.command()
@friendly
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to bind; another than the loopback needs --token."),
    port: int = typer.Option(8000),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", "-c", help="Run folder; default the general model."),
    data: Path | None = typer.Option(None, help="The only folder whose files a job may name by path."),
    token: str | None = typer.Option(None, envvar="VIPER_SERVE_TOKEN", help="Require `Authorization: Bearer T`."),
    state: Path = typer.Option(Path("viper-serve"), help="Folder of the job records and results."),
    max_waiting: int = typer.Option(8, help="Jobs that may wait (503 beyond)."),
    max_upload_mb: float = typer.Option(512.0, help="Largest upload (413 beyond)."),
    max_seconds: float = typer.Option(3600.0, help="Longest video (422 beyond)."),
    faces: str = typer.Option("all", help="Whose face: all (a record per person), main or largest."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or mps."),
) -> None:
    """A local web app and HTTP API (page at http://HOST:PORT/, API at /openapi.json): models loaded once, a
    bounded queue, jobs that survive a restart."""
    settings = dict(locals())  # the options are ServeConfig's fields
    from .serve import ServeConfig, serve_forever

    config = ServeConfig(**settings).check()  # a public host without a token stops here, before any model loads
    from .jobs.predict import PER_FRAME, Predictor

    serve_forever(config, Predictor(checkpoint, device=device, also=PER_FRAME, faces=faces))


from . import cli_models  # noqa: E402, F401  (registers train, evaluate, submission, ablate)
