"""`viper extract`, `extractors`, `dataset` and `import-features`: the commands that turn videos and datasets into
feature stores."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import ViperError
from ..progress import ProgressBars
from .common import RUNTIME_HELP, friendly, split_list


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
    from ..config import load_config_file
    from ..jobs.extract import extract as run_extract

    options = load_config_file(config).get("options", {}) if config else None
    if options is not None and not (isinstance(options, dict) and all(isinstance(v, dict) for v in options.values())):
        raise ViperError(f"{config}: `options` must map each extractor (modality:backend) to its settings")
    summary = run_extract(data, out, frames=frames, extractors=split_list(extractors), workers=workers,
                          face_crop=not no_face_crop, options=options, device=device, dataset=dataset,
                          batch_videos=batch_videos, backend=backend, ray_address=ray_address,
                          gpus_per_worker=gpus_per_worker, faces=faces, runtime=runtime, hook=ProgressBars())
    for line in summary.lines():
        typer.echo(line, err=line.startswith("FAILED"))
    if summary.kept_store:
        typer.echo(f"store: {out}")
    if summary.failed:
        raise typer.Exit(1)


def list_extractors() -> None:
    """List the registered extractors (modality:backend), defaults first."""
    from ..extractors.base import DEFAULT_BACKENDS, EXTRACTORS, available

    for name in available():
        modality, backend = name.split(":")
        marker = " (default)" if DEFAULT_BACKENDS.get(modality) == backend else ""
        summary = " ".join(EXTRACTORS.get(name).__doc__.split("\n\n")[0].split())  # its first paragraph, whole
        typer.echo(f"{name}{marker}  {summary}")


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
    from ..datasets import DATASET_LAYOUTS, write_manifest

    reader = DATASET_LAYOUTS.get(name)
    if split_by is not None and name != "ravdess":
        raise ViperError(f"--split-by is for the ravdess layout; {name} has its own splits")
    rows = write_manifest(reader(root) if split_by is None else reader(root, split_by=split_by), out)
    typer.echo(f"{rows} clips -> {out}")


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
    from ..jobs.import_features import import_challenge_features
    from ..store import FeatureStore

    keys = import_challenge_features(root, out, split_list(features), frames=frames, tolerance=tolerance,
                                     time_unit=time_unit, hook=ProgressBars())
    store = FeatureStore.open(out)
    for folder, key in keys.items():
        typer.echo(f"{folder} -> modality {store.feature_spec(key).modality} ({key})")
    typer.echo(f"store: {out}")
