"""`viper demo`: extract, train and evaluate on the bundled clips, in one command."""

from __future__ import annotations

from pathlib import Path

import typer

from ..progress import ProgressBars
from .common import friendly


@friendly
def demo(
    out: Path = typer.Option(Path("viper-demo"), "--out", "-o", help="Folder for the store, run and report."),
    workers: int = typer.Option(2, "--workers", "-w", help="Extraction processes (capped at what the machine holds)."),
) -> None:
    """Extract, train and evaluate on the bundled real RAVDESS clips; prints per-emotion Pearson and accuracy."""
    from ..jobs.demo import run_demo

    run_demo(out, workers=workers, hook=ProgressBars())
