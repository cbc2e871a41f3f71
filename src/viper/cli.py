"""The `viper` command: a thin layer over the library; input problems print one message, not a traceback."""

from __future__ import annotations

import functools
import os
import signal
from pathlib import Path

import typer

from .errors import SettingError, ViperError
from .progress import ProgressBars

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


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
            typer.secho(f"error: {text}", fg=typer.colors.RED, err=True)
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
) -> None:
    """viper: emotion recognition from videos of people (ViPER, MuSe 2022)."""
    if debug:
        os.environ["VIPER_DEBUG"] = "1"


def _given(context: typer.Context, name: str) -> bool:
    """Whether the user set this option (rather than typer filling in its default)."""
    source = context.get_parameter_source(name)  # compared by name: typer may bring its own click enum
    return source is not None and source.name != "DEFAULT"


def _split_list(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


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
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (for backends that use torch)."),
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
                          gpus_per_worker=gpus_per_worker, hook=ProgressBars())
    for line in summary.lines():
        typer.echo(line, err=line.startswith("FAILED"))
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
        typer.echo(f"{name}{marker}  {EXTRACTORS.get(name).__doc__.splitlines()[0]}")


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
def train(
    context: typer.Context,
    features: Path = typer.Option(..., "--features", "-f", help="Feature store made by `viper extract`."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (created, or resumed if interrupted)."),
    modalities: str | None = typer.Option(None, "--modalities", "-m", help="e.g. face_image,fau,caption,audio."),
    model: str = typer.Option("compact", "--model", help="Model preset: compact (CPU) or paper (283 M, GPU)."),
    epochs: int = typer.Option(50, "--epochs"),
    batch_size: int = typer.Option(16, "--batch-size"),
    lr: float = typer.Option(1e-5, "--lr"),
    lr_step_epochs: int = typer.Option(10, "--lr-step-epochs", help="Halve the learning rate every this many."),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    precision: str = typer.Option(
        "auto", "--precision", help="auto (mixed on CUDA, fp32 on CPU), fp32, bf16 (autocast, CPU too) or fp16 (CUDA)."
    ),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the model for training (long runs)."),
    layout: str = typer.Option(
        "concat", "--layout", help="Tokens: concat (one per frame, the paper's) or per_modality (one per modality "
        "per frame, each with its own projection)."
    ),
    modality_dropout: float = typer.Option(
        0.0, "--modality-dropout", help="Probability of masking a whole modality of a clip in training batches."
    ),
    anchor: bool = typer.Option(
        True, "--anchor/--no-anchor", help="Predict a correction to viper's general model (needs expression "
        "features and basic-emotion outputs), so few people do not undo what many taught it. --no-anchor: the "
        "paper's plain fusion, for data with many people."
    ),
    anchor_shrink: float = typer.Option(
        1.0, "--anchor-shrink", help="Weight of the loss term that keeps the correction small (0: none)."
    ),
    allow_shared_people: bool = typer.Option(
        False, "--allow-shared-people", help="Train although dev or test holds people of train (the manifest's person "
        "column); refused otherwise, since such scores measure how well the model knows those people."
    ),
    person_norm: bool = typer.Option(
        False, "--person-norm", help="Subtract each person's mean features (over their clips in the split) before "
        "standardising; every clip needs a person. `viper predict` refuses such a run (one video has no person mean)."
    ),
    config: Path | None = typer.Option(None, "--config", help="JSON/YAML TrainConfig; flags given override it."),
) -> None:
    """Train the Perceiver fusion model; keeps the best epoch by dev mean Pearson (RUN/best.pt)."""
    from .jobs.train import train as run_train
    from .jobs.train import train_config

    flags = {"modalities": _split_list(modalities), "model": model, "epochs": epochs, "batch_size": batch_size,
             "lr": lr, "lr_step_epochs": lr_step_epochs, "seed": seed, "device": device,
             "modality_dropout": modality_dropout, "precision": precision, "compile": compile, "layout": layout,
             "anchor": anchor, "anchor_shrink": anchor_shrink,
             "allow_shared_people": allow_shared_people, "person_norm": person_norm}
    given = {name: value for name, value in flags.items() if _given(context, name)}
    result = run_train(features, out, train_config(config, **given), hook=ProgressBars())
    best = "n/a (no dev split: last epoch kept)"
    if result.best_dev_pearson is not None:
        best = f"{result.best_dev_pearson:.4f}"
    typer.echo(f"best epoch {result.best_epoch}, dev mean Pearson {best}; checkpoint {result.checkpoint}")


@app.command()
@friendly
def evaluate(
    run: Path = typer.Argument(..., help="Run folder (or checkpoint file) made by `viper train`."),
    features: Path = typer.Option(..., "--features", "-f", help="Feature store with the split to score."),
    split: str = typer.Option("test", "--split", "-s"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Report folder (default RUN/eval-SPLIT, RUN/eval-SPLIT-without-NAMES with --drop)."
    ),
    drop: str | None = typer.Option(
        None, "--drop", help="Comma-separated modalities (names or store keys) to score as missing, e.g. audio,caption."
    ),
) -> None:
    """Score a run on a split: metrics.json, predictions.csv and plots."""
    from .checkpoint import checkpoint_file
    from .jobs.evaluate import eval_folder
    from .jobs.evaluate import evaluate as run_evaluate
    from .metrics import metrics_table

    metrics = run_evaluate(run, features, split, out, drop=_split_list(drop))
    typer.echo(metrics_table(metrics))
    if metrics.get("dropped"):
        typer.echo(f"scored without {', '.join(metrics['dropped'])}")
    typer.echo(f"report: {out or eval_folder(checkpoint_file(run).parent, metrics['split'], metrics.get('dropped'))}")


@app.command()
@friendly
def predict(
    videos: list[Path] = typer.Argument(..., help="Video files to score, or folders of them (searched recursively)."),
    checkpoint: Path = typer.Option(
        None, "--checkpoint", "-c", help="Run folder or checkpoint file; without it, viper's general model."
    ),
    output_format: str = typer.Option("json", "--format", help="json (one object per line) or csv."),
    per_frame: Path | None = typer.Option(
        None, "--per-frame", metavar="TABLE.csv|.parquet", help="Also write one row per sampled frame: time, face "
        "box, blendshapes, expression probabilities, audio present, the clip's scores."
    ),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Score videos with viper's general model, or with a trained run (extracting the features it was trained on).

    Without --checkpoint the scores are probabilities of 7 basic emotions (neutral, happy, sad, angry, fearful,
    disgust, surprised) summing to 1, from expression networks trained on many people. With a run, scores are on
    the label scale it was trained on (the demo: 1 strong, 0.5 normal, 0 absent). Each video also gets its coverage
    (of the N frames, those with a face and with audio) and warnings when the model could not see what it reads
    (e.g. no face found: the scores carry no evidence).
    """

    from .jobs.predict import format_records
    from .jobs.predict import predict as run_predict

    if output_format not in ("json", "csv"):
        raise ViperError(f"--format must be json or csv, not {output_format!r}")
    if per_frame is not None and per_frame.suffix.lower() not in (".csv", ".parquet"):
        raise ViperError(f"--per-frame {per_frame}: name a .csv or .parquet file")
    if per_frame is None:
        results, failures = run_predict(videos, checkpoint, device=device)
    else:
        from .jobs.predict import predict_frames, write_table

        table, results, failures = predict_frames(videos, checkpoint, device=device)
        write_table(table, per_frame)
    typer.echo(format_records(results, output_format), nl=False)
    for _, reason in failures:
        typer.secho(f"error: {reason}", fg=typer.colors.RED, err=True)
    if failures:
        raise typer.Exit(1)


@app.command()
@friendly
def inspect(
    videos: list[Path] = typer.Argument(..., help="Video files to look at, or folders of them."),
    checkpoint: Path = typer.Option(
        None, "--checkpoint", "-c", help="Run folder or checkpoint file; without it, viper's general model."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="page.html for one video; a folder (one <video>.html per clip) for several."
    ),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """One self-contained HTML page per clip: frames, faces, captions, FAU traces and the predicted scores."""
    from .jobs.inspect import inspect as run_inspect

    pages, failures = run_inspect(videos, checkpoint, out, device=device, hook=ProgressBars())
    for page in pages:
        typer.echo(f"page: {page}")
    for _, reason in failures:
        typer.secho(f"error: {reason}", fg=typer.colors.RED, err=True)
    if failures:
        raise typer.Exit(2)


@app.command()
@friendly
def demo(
    out: Path = typer.Option(Path("viper-demo"), "--out", "-o", help="Folder for the store, run and report."),
    workers: int = typer.Option(2, "--workers", "-w"),
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
def submission(
    run: Path = typer.Argument(..., help="Run folder (or checkpoint file) made by `viper train`."),
    features: Path = typer.Option(..., "--features", "-f", help="Feature store with the test clips."),
    out: Path = typer.Option(..., "--out", "-o", help="Submission CSV to write."),
    split: str = typer.Option("test", "--split", "-s"),
) -> None:
    """Write a MuSe 2022 Reaction submission: File_ID ([id]) and the 7 emotion scores of every clip of a split."""
    from .jobs.submit import write_submission

    rows = write_submission(run, features, out, split)
    typer.echo(f"{rows} clips -> {out}")


@app.command()
@friendly
def ablate(
    features: Path = typer.Option(..., "--features", "-f", help="Feature store made by `viper extract`."),
    out: Path = typer.Option(..., "--out", "-o", help="Sweep folder (created, or resumed: finished runs are skipped)."),
    grid: str = typer.Option("paper", "--grid", help="paper (Table 3: image alone, +1, +2, all four) or all."),
    seeds: int = typer.Option(3, "--seeds", help="Seeds per setting (0..K-1)."),
    workers: int = typer.Option(1, "--workers", "-w", help="Parallel runs (processes; torch threads = cores/N)."),
    config: Path | None = typer.Option(
        None, "--config", help="JSON/YAML TrainConfig for every run (default: the paper's; `viper demo` uses "
        "epochs 60, lr 1e-3, lr_step_epochs 20, batch_size 8 for tiny data)."
    ),
    epochs: int | None = typer.Option(None, "--epochs", help="Override the config's epochs."),
    baselines: str = typer.Option("ridge,gru", "--baselines", help="Comma-separated ridge,gru, or none."),
    gru_epochs: int | None = typer.Option(None, "--gru-epochs", help="Epochs of the GRU baseline (default: epochs)."),
    resamples: int = typer.Option(2000, "--resamples", help="Paired-bootstrap resamples for the p-values."),
    run_plots: bool = typer.Option(True, "--run-plots/--no-run-plots", help="evaluate's plots in every run folder."),
    fusion: str = typer.Option(
        "concat", "--fusion", help="Comma-separated fusions to train each multi-modality setting with: concat (the "
        "paper's), per_modality; ':P' adds modality dropout P, e.g. concat,per_modality:0.3."
    ),
    robustness: bool = typer.Option(
        True, "--robustness/--no-robustness", help="Also score each fusion run with each modality removed."
    ),
) -> None:
    """Modality ablation (the paper's Tables 2-3): every setting x seeds, report.md/html, runs.csv, p-values, and
    a robustness table (each fusion setting scored with each modality removed)."""
    from .jobs.ablate import run_ablation
    from .jobs.train import train_config

    chosen = [] if baselines.strip().lower() == "none" else (_split_list(baselines) or [])
    settings = train_config(config, **({} if epochs is None else {"epochs": epochs}))
    result = run_ablation(features, out, grid=grid, seeds=seeds, workers=workers, config=settings,
                          baselines=chosen, gru_epochs=gru_epochs, resamples=resamples, run_plots=run_plots,
                          fusions=_split_list(fusion) or ["concat"], robustness=robustness, hook=ProgressBars())
    typer.echo(f"best setting on {result.ranking_split}: {result.best}")
    if result.failed:
        raise typer.Exit(1)
