"""Running a sweep: one job per setting and seed, in this process or a pool, skipping finished runs."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...atomic import atomic_write_text
from ...config import from_dict, to_dict
from ...errors import SettingError, ViperError
from ...progress import Hook, notify
from ...settings import cap_workers, whole_number
from ...store import FeatureStore
from .baselines import BASELINES
from .grid import AblationResult, Fusion, Setting, grid_settings, labelled_splits
from .report import write_report

log = logging.getLogger(__name__)
MAX_RESAMPLES = 100_000  # paired-bootstrap resamples: 2000 give p-values to about 0.001
RUN_MEMORY = 1 << 30  # one training run's process: torch, the store's split and the model


def _score_folders(run_dir: Path, split: str, drops: Sequence[str]) -> list[Path]:
    """The run's report folders for a split: the full model, then one per removed modality (robustness)."""
    return [run_dir / f"eval-{split}"] + [run_dir / f"eval-{split}-without-{key}" for key in drops]


def _finished(run_dir: Path, splits: Sequence[str], drops: Sequence[str] = ()) -> bool:
    return all(
        (folder / "metrics.json").exists() for split in splits for folder in _score_folders(run_dir, split, drops)
    )


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _run_job(job: dict[str, Any]) -> float:
    """Train and score one setting with one seed (in this process); returns the seconds it took."""
    began = time.perf_counter()
    setting = Setting(**job["setting"])
    features, run_dir, splits, seed = Path(job["features"]), Path(job["run_dir"]), job["splits"], job["seed"]
    if setting.kind == "perceiver":
        from ..evaluate import evaluate
        from ..train import TrainConfig, train

        if not _finished(run_dir, splits):  # a sweep resumed only for its robustness scores trains nothing
            overrides = {**job["config"].get("model_overrides", {}), "layout": setting.layout}
            config = from_dict(
                TrainConfig,
                {
                    **job["config"],
                    "modalities": setting.keys,
                    "seed": seed,
                    "model_overrides": overrides,
                    "modality_dropout": setting.modality_dropout,
                },
            )
            train(features, run_dir, config)
            for split in splits:
                evaluate(run_dir, features, split, run_dir / f"eval-{split}", plots=job.get("run_plots", True))
        for split in splits:
            for key, folder in zip(job["drops"], _score_folders(run_dir, split, job["drops"])[1:], strict=True):
                if not (folder / "metrics.json").exists():
                    evaluate(run_dir, features, split, folder, plots=False, drop=[key])
    else:
        BASELINES.get(setting.kind).run(features, setting.keys, run_dir, splits, seed, job["config"],
                                        job.get("gru_epochs"))
    return time.perf_counter() - began


def run_ablation(
    features: Path | str,
    out: Path | str,
    *,
    grid: str = "paper",
    seeds: int = 3,
    workers: int = 1,
    config=None,
    baselines: Sequence[str] = ("ridge", "gru"),
    gru_epochs: int | None = None,
    resamples: int = 2000,
    run_plots: bool = True,
    fusions: Sequence[str | Fusion] = ("concat",),
    robustness: bool = True,
    hook: Hook | None = None,
) -> AblationResult:
    """Train and score every setting of the grid over `seeds` seeds (skipping finished runs), then write the
    tables, plots and significance tests to OUT. `config` is a TrainConfig (default: the paper's settings);
    `run_plots=False` scores the Perceiver runs without `evaluate`'s per-run plots (same metrics, faster).
    `fusions` trains every multi-modality setting once per fusion (`concat`, `per_modality`, `:P` adds modality
    dropout P); `robustness` also scores every fusion run with each of its modalities removed. `hook` hears each
    run's scores as it finishes (see viper.progress)."""
    from ..train import TrainConfig

    began = time.perf_counter()
    whole_number("seeds", seeds)
    whole_number("resamples", resamples, 1, MAX_RESAMPLES)
    if gru_epochs is not None:
        whole_number("gru_epochs", gru_epochs)
    workers = cap_workers("workers", whole_number("workers", workers), RUN_MEMORY)
    out = Path(out)
    store = FeatureStore.open(features)
    config = config or TrainConfig()
    train_settings = {k: v for k, v in to_dict(config).items() if k not in ("modalities", "seed")}
    parsed = [fusion if isinstance(fusion, Fusion) else Fusion.parse(fusion) for fusion in fusions]
    if not parsed or len(set(parsed)) != len(parsed):
        raise SettingError("fusions", "need one or more different fusions, e.g. concat,per_modality:0.3")
    settings = grid_settings(store, grid, baselines, parsed)
    splits = labelled_splits(store)
    ranking = "dev" if "dev" in splits else "test"
    _check_sweep(out, train_settings, gru_epochs)

    jobs, skipped = [], []
    for setting in settings:
        for seed in range(seeds if setting.seeded else 1):
            run_dir = out / "runs" / setting.slug / f"seed{seed}"
            name = f"{setting.slug}/seed{seed}"
            drops = setting.robustness_drops(store) if robustness else []
            if _finished(run_dir, splits, drops):
                skipped.append(name)
                continue
            jobs.append(
                {
                    "name": name,
                    "setting": asdict(setting),
                    "seed": seed,
                    "features": str(store.root),
                    "run_dir": str(run_dir),
                    "splits": splits,
                    "config": train_settings,
                    "gru_epochs": gru_epochs,
                    "run_plots": run_plots,
                    "drops": drops,
                }
            )
    notify(hook, "ablate", message=(
        f"{len(settings)} settings x {seeds} seed(s) on {', '.join(splits)}: {len(jobs)} run(s) to do, "
        f"{len(skipped)} finished before"
    ))
    result = AblationResult(out, settings, splits, ranking, None, skipped=skipped)
    _execute(jobs, workers, result, hook)
    write_report(result, store, train_settings, seeds, resamples)
    result.seconds = time.perf_counter() - began
    notify(hook, "ablate", message=f"report: {out / 'report.md'} (and report.html, runs.csv, runs.json)  "
           f"[{result.seconds:.0f} s]")
    return result


def _check_sweep(out: Path, train_settings: dict[str, Any], gru_epochs: int | None) -> None:
    """A sweep folder holds runs of one training configuration: refuse to mix in another."""
    path = out / "ablation.json"
    current = json.loads(json.dumps({"train": train_settings, "gru_epochs": gru_epochs}))
    if path.exists():
        saved = json.loads(path.read_text())
        if {k: saved.get(k) for k in current} != current:
            changed = [k for k in current["train"] if saved.get("train", {}).get(k) != current["train"][k]]
            if saved.get("gru_epochs") != gru_epochs:
                changed.append("gru_epochs")
            raise ViperError(
                f"{out} holds a sweep with other training settings ({', '.join(changed)}); "
                "use a new --out folder, or the same settings to resume"
            )
    else:
        atomic_write_text(path, json.dumps(current, indent=2))


def _execute(jobs: list[dict[str, Any]], workers: int, result: AblationResult, hook: Hook | None) -> None:
    def done(job, seconds=None, error=None):
        if error is not None:
            result.failed[job["name"]] = error
            notify(hook, "ablate", message=f"{job['name']}: FAILED: {error}",
                   completed=len(result.ran) + len(result.failed), total=len(jobs))
            return
        result.ran.append(job["name"])
        scores = []
        for split in job["splits"]:
            metrics = json.loads((Path(job["run_dir"]) / f"eval-{split}" / "metrics.json").read_text())
            scores.append(f"{split} r={metrics['mean_pearson']:+.3f}")
        notify(hook, "ablate", message=f"{job['name']}: {', '.join(scores)} ({seconds:.1f} s)",
               completed=len(result.ran) + len(result.failed), total=len(jobs))

    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            try:
                done(job, _run_job(job))
            except ViperError as error:
                done(job, error=str(error))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch's thread pools
    with ProcessPoolExecutor(
        min(workers, len(jobs)), mp_context=context, initializer=_init_worker, initargs=(threads,)
    ) as pool:
        futures = {pool.submit(_run_job, job): job for job in jobs}
        for future in as_completed(futures):
            try:
                done(futures[future], future.result())
            except Exception as error:  # noqa: BLE001 - one failed run must not lose the others
                done(futures[future], error=f"{type(error).__name__}: {error}")
