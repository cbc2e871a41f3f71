"""`viper train`, `evaluate`, `submission` and `ablate`: the commands that fit and score models."""

from __future__ import annotations

from pathlib import Path

import typer

from ..progress import ProgressBars
from .common import friendly, given, split_list


@friendly
def train(
    context: typer.Context,
    features: Path = typer.Option(..., "--features", "-f", help="Feature store made by `viper extract`."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (created, or resumed if interrupted)."),
    modalities: str | None = typer.Option(None, "--modalities", "-m", help="e.g. face_image,fau,caption,audio."),
    model: str = typer.Option("compact", "--model", help="Model preset: compact (CPU) or paper (283 M, GPU)."),
    epochs: int = typer.Option(50, "--epochs", help="Passes over the train split (the paper's 50)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Clips per optimiser step (the paper's 16)."),
    lr: float = typer.Option(1e-5, "--lr", help="AdamW learning rate (the paper's 1e-5; tiny data: 1e-3)."),
    lr_step_epochs: int = typer.Option(10, "--lr-step-epochs", help="Halve the learning rate every this many."),
    seed: int = typer.Option(0, "--seed", help="Seeds weights, shuffling and dropout: reruns give the same run."),
    device: str = typer.Option("auto", "--device", help="auto (cuda if any, else cpu), cpu, cuda, mps."),
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
    tensorboard: bool = typer.Option(
        False, "--tensorboard", help="Also log history.csv's numbers to RUN/tensorboard (needs the tensorboard "
        "package: pip install 'viper-emotion[tensorboard]')."
    ),
    config: Path | None = typer.Option(None, "--config", help="JSON/YAML TrainConfig; flags given override it."),
) -> None:
    """Train the Perceiver fusion model; keeps the best epoch by dev mean Pearson (RUN/best.pt)."""
    from ..jobs.train import train as run_train
    from ..jobs.train import train_config

    flags = {"modalities": split_list(modalities), "model": model, "epochs": epochs, "batch_size": batch_size,
             "lr": lr, "lr_step_epochs": lr_step_epochs, "seed": seed, "device": device,
             "modality_dropout": modality_dropout, "precision": precision, "compile": compile, "layout": layout,
             "anchor": anchor, "anchor_shrink": anchor_shrink,
             "allow_shared_people": allow_shared_people, "person_norm": person_norm, "tensorboard": tensorboard}
    overrides = {name: value for name, value in flags.items() if given(context, name)}
    result = run_train(features, out, train_config(config, **overrides), hook=ProgressBars())
    best = "n/a (no dev split: last epoch kept)"
    if result.best_dev_pearson is not None:
        best = f"{result.best_dev_pearson:.4f}"
    typer.echo(f"best epoch {result.best_epoch}, dev mean Pearson {best}; checkpoint {result.checkpoint}")
    if result.anchor is not None:
        typer.echo(result.anchor.line())


@friendly
def evaluate(
    run: Path = typer.Argument(..., help="Run folder (or checkpoint file) made by `viper train`."),
    features: Path = typer.Option(..., "--features", "-f", help="Feature store with the split to score."),
    split: str = typer.Option("test", "--split", "-s", help="train, dev or test (devel/val read as dev)."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Report folder (default RUN/eval-SPLIT, RUN/eval-SPLIT-without-NAMES with --drop)."
    ),
    drop: str | None = typer.Option(
        None, "--drop", help="Comma-separated modalities (names or store keys) to score as missing, e.g. audio,caption."
    ),
) -> None:
    """Score a run on a split: metrics.json, predictions.csv and plots."""
    from ..checkpoint import checkpoint_file
    from ..jobs.evaluate import eval_folder
    from ..jobs.evaluate import evaluate as run_evaluate
    from ..metrics import metrics_table

    metrics = run_evaluate(run, features, split, out, drop=split_list(drop))
    typer.echo(metrics_table(metrics))
    if metrics.get("dropped"):
        typer.echo(f"scored without {', '.join(metrics['dropped'])}")
    typer.echo(f"report: {out or eval_folder(checkpoint_file(run).parent, metrics['split'], metrics.get('dropped'))}")


@friendly
def submission(
    run: Path = typer.Argument(..., help="Run folder (or checkpoint file) made by `viper train`."),
    features: Path = typer.Option(..., "--features", "-f", help="Feature store with the test clips."),
    out: Path = typer.Option(..., "--out", "-o", help="Submission CSV to write."),
    split: str = typer.Option("test", "--split", "-s", help="train, dev or test (devel/val read as dev)."),
) -> None:
    """Write a MuSe 2022 Reaction submission: File_ID ([id]) and the 7 emotion scores of every clip of a split."""
    from ..jobs.submit import write_submission

    rows = write_submission(run, features, out, split)
    typer.echo(f"{rows} clips -> {out}")


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
    from ..jobs.ablate import run_ablation
    from ..jobs.train import train_config

    chosen = [] if baselines.strip().lower() == "none" else (split_list(baselines) or [])
    settings = train_config(config, **({} if epochs is None else {"epochs": epochs}))
    result = run_ablation(features, out, grid=grid, seeds=seeds, workers=workers, config=settings,
                          baselines=chosen, gru_epochs=gru_epochs, resamples=resamples, run_plots=run_plots,
                          fusions=split_list(fusion) or ["concat"], robustness=robustness, hook=ProgressBars())
    typer.echo(f"best setting on {result.ranking_split}: {result.best}")
    if result.failed:
        raise typer.Exit(1)
