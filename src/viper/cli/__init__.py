"""The `viper` command: a thin layer over the library; input problems print one message, not a traceback."""

from __future__ import annotations

import os
import sys

import typer

from . import demo, features, predict, serve, training

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode=None)


def _print_version(given: bool) -> None:
    if given:
        from .. import __version__

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


# The commands, in the order `viper --help` lists them; each module imports its libraries only when its command runs
app.command()(features.extract)
app.command("extractors")(features.list_extractors)
app.command("dataset")(features.dataset)
app.command()(predict.predict)
app.command()(predict.inspect)
app.command()(demo.demo)
app.command("import-features")(features.import_features)
app.command()(serve.serve)
app.command()(training.train)
app.command()(training.evaluate)
app.command()(training.submission)
app.command()(training.ablate)
