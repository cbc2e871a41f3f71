"""`viper serve`: the local web app and HTTP API."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import friendly


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
    keep_uploads_mb: float = typer.Option(
        2048.0, help="Uploads kept on disk in all (MB); beyond it the oldest finished jobs' videos are deleted, "
                     "their results kept."),
    faces: str = typer.Option("all", help="Whose face: all (a record per person), main or largest."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or mps."),
) -> None:
    """A local web app and HTTP API (page at http://HOST:PORT/, API at /openapi.json): models loaded once, a
    bounded queue, jobs that survive a restart."""
    settings = dict(locals())  # the options are ServeConfig's fields
    from ..serve import ServeConfig, serve_forever

    config = ServeConfig(**settings).check()  # a public host without a token stops here, before any model loads
    from ..jobs.predict import PER_FRAME, Predictor

    serve_forever(config, Predictor(checkpoint, device=device, also=PER_FRAME, faces=faces))
