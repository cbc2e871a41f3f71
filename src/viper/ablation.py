"""`viper ablate`: the paper's modality ablation (Table 3, and Table 2's visual settings) on any feature store.

Settings of the `paper` grid: image alone; image + one of text (caption) / audio / FAU; the three triples with
image; all four (those whose modalities the store lacks are left out). Every further face_image key of the store
(e.g. a `-nocrop-` one, Table 2) is one more image-alone setting. `--grid all` takes every non-empty subset of the
store's modalities. Baselines in the same table: `ridge` (per-clip averages of every modality over its valid
frames, sklearn RidgeCV on train; deterministic, so one run) and `gru` (a small bidirectional GRU over the
standardised frame tokens, masked mean pooling; the MuSe baseline family).

Each setting is trained with `viper.training.train` for k seeds and scored with `viper.evaluation.evaluate` on dev
and on test where test is labelled. Runs live in OUT/runs/<setting>/seed<k>/; one whose metrics exist for every
scored split is skipped, an interrupted one resumes (train is resumable), so the same command continues a sweep.
OUT gets runs.csv, runs.json, report.md, report.html (self-contained), bars.png, heatmap.png.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_write_bytes, atomic_write_text
from .config import from_dict, to_dict
from .errors import ViperError
from .evaluation import write_evaluation
from .store import FeatureStore

log = logging.getLogger(__name__)

MODALITY_LABELS = {"face_image": "image", "caption": "text", "audio": "audio", "fau": "FAU"}
PAPER_PARTNERS = ("caption", "audio", "fau")  # the paper's order: text, audio, FAU
GRIDS = ("paper", "all")
BASELINES = ("ridge", "gru")
KIND_NAMES = {"perceiver": "Perceiver", "ridge": "ridge (clip means)", "gru": "GRU"}


@dataclass
class Setting:
    name: str  # table label
    slug: str  # folder name under OUT/runs
    keys: list[str]  # store keys, in token order
    kind: str = "perceiver"  # perceiver | ridge | gru
    group: str = "Table 3"  # Table 3 (fusion), Table 2 (visual), baseline
    layout: str = "concat"  # the Perceiver's token layout (viper.model.LAYOUTS)
    modality_dropout: float = 0.0  # training only: probability of masking a whole modality of a clip

    @property
    def seeded(self) -> bool:
        return self.kind != "ridge"

    def robustness_drops(self, store: FeatureStore) -> list[str]:
        """The modalities to remove one at a time when scoring robustness: every one of a fusion setting."""
        if self.kind != "perceiver" or len(self.keys) < 2:
            return []
        return [store.extractor_info(key)["modality"] for key in self.keys]


@dataclass(frozen=True)
class Fusion:
    """A way to train the fusion settings: a token layout and a modality-dropout probability."""

    layout: str = "concat"
    modality_dropout: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Fusion:
        """`concat`, `per_modality`, or either with `:P` for modality dropout P (e.g. `per_modality:0.3`)."""
        from .model import LAYOUTS

        layout, _, dropout = text.strip().partition(":")
        if layout not in LAYOUTS:
            raise ViperError(f"unknown fusion {text!r}: the layout must be one of {', '.join(LAYOUTS)}")
        try:
            probability = float(dropout) if dropout else 0.0
        except ValueError:
            raise ViperError(f"fusion {text!r}: the modality dropout after ':' must be a number") from None
        if not 0.0 <= probability < 1.0:
            raise ViperError(f"fusion {text!r}: the modality dropout must be in [0, 1)")
        return cls(layout, probability)

    @property
    def is_paper(self) -> bool:
        return self.layout == "concat" and self.modality_dropout == 0.0

    @property
    def label(self) -> str:
        """Suffix of a setting's name and folder; empty for the paper's fusion."""
        if self.is_paper:
            return ""
        dropout = f", dropout {self.modality_dropout:g}" if self.modality_dropout else ""
        return self.layout.replace("_", "-") + dropout


@dataclass
class AblationResult:
    out: Path
    settings: list[Setting]
    splits: list[str]
    ranking_split: str
    best: str | None
    ran: list[str] = field(default_factory=list)  # "slug/seedK" of runs done now
    skipped: list[str] = field(default_factory=list)  # finished before this call
    failed: dict[str, str] = field(default_factory=dict)  # run -> error
    summary: list[dict[str, Any]] = field(default_factory=list)  # one row per setting and split
    robustness: list[dict[str, Any]] = field(default_factory=list)  # per fusion setting, split and removed modality
    seconds: float = 0.0


# --- the grid ---------------------------------------------------------------------------------------------------
def _keys_by_modality(store: FeatureStore) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for key in store.extractor_keys():
        keys.setdefault(store.extractor_info(key)["modality"], []).append(key)
    return keys


def _primary(keys: list[str]) -> str:
    """The key a modality stands for in the grid: the first face-cropped one (a `-nocrop-` key is Table 2)."""
    cropped = [key for key in keys if "-nocrop-" not in key]
    return (cropped or keys)[0]


def _label(modality: str) -> str:
    return MODALITY_LABELS.get(modality, modality)


def grid_settings(
    store: FeatureStore,
    grid: str = "paper",
    baselines: Sequence[str] = BASELINES,
    fusions: Sequence[Fusion] = (Fusion(),),
) -> list[Setting]:
    """The settings of a grid on this store: fusion rows (each multi-modality one once per fusion; single modalities
    once), then Table 2's visual rows, then baselines."""
    if grid not in GRIDS:
        raise ViperError(f"unknown --grid {grid!r}; use {' or '.join(GRIDS)}")
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise ViperError(f"unknown baseline(s) {', '.join(sorted(unknown))}; use {', '.join(BASELINES)} or none")
    by_modality = _keys_by_modality(store)
    if not by_modality:
        raise ViperError(f"{store.root}: the store holds no features; run `viper extract` first")
    for modality, keys in by_modality.items():
        if len(keys) > 1 and modality != "face_image":
            log.warning("%s: several %s keys; the grid uses %s", store.root, modality, _primary(keys))
    primary = {modality: _primary(keys) for modality, keys in by_modality.items()}
    if grid == "paper":
        if "face_image" not in primary:
            raise ViperError(
                f"{store.root}: the paper grid needs face_image features (the store has "
                f"{', '.join(sorted(primary))}); use --grid all"
            )
        partners = [m for m in PAPER_PARTNERS if m in primary]
        combos = [("face_image", *c) for r in range(len(partners) + 1) for c in itertools.combinations(partners, r)]
    else:
        names = [m for m in ("face_image", *PAPER_PARTNERS) if m in primary] + sorted(
            m for m in primary if m not in MODALITY_LABELS
        )
        combos = [c for r in range(1, len(names) + 1) for c in itertools.combinations(names, r)]
    settings = []
    for index, fusion in enumerate(fusions):
        for combo in combos:
            if len(combo) == 1 and index > 0:
                continue  # a single modality is trained once, with the first fusion
            name = "+".join(_label(m) for m in combo)
            suffix = fusion.label
            settings.append(
                Setting(
                    f"{name} ({suffix})" if suffix else name,
                    f"{name}[{suffix.replace(', ', '-').replace(' ', '')}]" if suffix else name,
                    [primary[m] for m in combo],
                    layout=fusion.layout,
                    modality_dropout=fusion.modality_dropout,
                )
            )
    for key in by_modality.get("face_image", []):
        if key != primary["face_image"]:
            variant = "no crop" if "-nocrop-" in key else key
            settings.append(Setting(f"image ({variant})", f"image[{key}]", [key], group="Table 2"))
    every = [primary[m] for m in combos[-1]]  # the largest combination: every modality of the grid
    for kind in baselines:
        settings.append(
            Setting(f"{kind} baseline ({'+'.join(_short(store, k) for k in every)})", kind, every, kind, "baseline")
        )
    return settings


def _short(store: FeatureStore, key: str) -> str:
    return _label(store.extractor_info(key)["modality"])


def labelled_splits(store: FeatureStore) -> list[str]:
    """dev and test where the store has clips with numeric labels for them (a test split without labels is not
    scored)."""
    from .dataset import read_labels, split_ids

    splits = []
    for split in ("dev", "test"):
        ids = split_ids(store, split)
        if not ids:
            continue
        try:
            read_labels(store, ids)
        except ViperError as error:
            log.warning("the %s split is not scored: %s", split, error)
            continue
        splits.append(split)
    if not splits:
        raise ViperError(f"{store.root}: neither a labelled dev nor a labelled test split to score the settings on")
    return splits


# --- one run ----------------------------------------------------------------------------------------------------
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
        from .evaluation import evaluate
        from .training import TrainConfig, train

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
            train(features, run_dir, config, progress=False)
            for split in splits:
                evaluate(run_dir, features, split, run_dir / f"eval-{split}", plots=job.get("run_plots", True))
        for split in splits:
            for key, folder in zip(job["drops"], _score_folders(run_dir, split, job["drops"])[1:], strict=True):
                if not (folder / "metrics.json").exists():
                    evaluate(run_dir, features, split, folder, plots=False, drop=[key])
    elif setting.kind == "ridge":
        _ridge(features, setting.keys, run_dir, splits)
    else:
        _gru(features, setting.keys, run_dir, splits, seed, job["config"], job.get("gru_epochs"))
    return time.perf_counter() - began


def clip_means(data) -> np.ndarray:
    """Per clip, each modality's mean over its valid frames (0 where none) and its share of valid frames."""
    parts, start = [], 0
    for m, dim in enumerate(data.dims):
        mask = data.modality_masks[..., m]  # (V, N)
        values = data.tokens[..., start : start + dim]  # masked frames are 0 already
        start += dim
        count = mask.sum(1, keepdims=True)
        parts += [values.sum(1) / np.maximum(count, 1), count / mask.shape[1]]
    return np.concatenate(parts, axis=1).astype(np.float64)


def _ridge(features: Path, keys: list[str], run_dir: Path, splits: Sequence[str]) -> None:
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .dataset import load_split

    store = FeatureStore.open(features)
    train = load_split(store, keys, "train")
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 5, 15), alpha_per_target=True))
    model.fit(clip_means(train), train.labels)
    alphas = np.atleast_1d(model[-1].alpha_).tolist()
    atomic_write_text(run_dir / "config.json", json.dumps({"kind": "ridge", "keys": keys, "alphas": alphas}, indent=2))
    for split in splits:
        data = load_split(store, keys, split)
        predictions = model.predict(clip_means(data)).astype(np.float32)
        write_evaluation(run_dir / f"eval-{split}", predictions, data, split, plots=False)


def _gru(features, keys, run_dir, splits, seed, config, epochs=None, hidden: int = 64, lr: float = 1e-3) -> None:
    import torch

    from .dataset import load_split, split_ids, standardisation_stats
    from .evaluation import pearson_scores

    store = FeatureStore.open(features)
    train = load_split(store, keys, "train")
    mean, std = standardisation_stats(train)

    def inputs(data) -> tuple[torch.Tensor, torch.Tensor]:
        valid = np.repeat(data.modality_masks, data.dims, axis=-1)
        x = np.where(valid, (data.tokens - mean) / std, 0).astype(np.float32)
        x = np.concatenate([x, data.modality_masks.astype(np.float32)], axis=-1)
        return torch.from_numpy(x), torch.from_numpy(data.mask)

    class GRU(torch.nn.Module):
        def __init__(self, dim: int, outputs: int) -> None:
            super().__init__()
            self.gru = torch.nn.GRU(dim, hidden, batch_first=True, bidirectional=True)
            self.head = torch.nn.Linear(2 * hidden, outputs)

        def forward(self, x, mask):
            states, _ = self.gru(x)
            weight = mask.float().unsqueeze(-1)
            return self.head((states * weight).sum(1) / weight.sum(1).clamp(min=1))

    torch.manual_seed(seed)
    x_train, m_train = inputs(train)
    y_train = torch.from_numpy(train.labels)
    model = GRU(x_train.shape[-1], y_train.shape[1])
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    dev = load_split(store, keys, "dev") if "dev" in splits and split_ids(store, "dev") else None
    dev_inputs = inputs(dev) if dev is not None else None
    batch = int(config.get("batch_size", 16))
    generator = torch.Generator().manual_seed(seed)
    best_r, best_state, history = -np.inf, None, []
    for epoch in range(1, int(epochs or config.get("epochs", 50)) + 1):
        model.train()
        order = torch.randperm(len(y_train), generator=generator)
        for start in range(0, len(order), batch):
            index = order[start : start + batch]
            loss = torch.nn.functional.mse_loss(model(x_train[index], m_train[index]), y_train[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        row: dict[str, Any] = {"epoch": epoch, "train_loss": loss.item()}
        if dev_inputs is not None:
            model.eval()
            with torch.no_grad():
                row["dev_mean_pearson"] = pearson_scores(model(*dev_inputs).numpy(), dev.labels, dev.emotions)[1]
        history.append(row)
        if dev_inputs is None or row["dev_mean_pearson"] > best_r:
            best_r = row.get("dev_mean_pearson", best_r)
            best_state = {name: value.clone() for name, value in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    info = {"kind": "gru", "keys": keys, "seed": seed, "hidden": hidden, "lr": lr, "history": history}
    atomic_write_text(run_dir / "config.json", json.dumps(info, indent=2))
    for split in splits:
        data = dev if split == "dev" and dev is not None else load_split(store, keys, split)
        with torch.no_grad():
            predictions = model(*inputs(data)).numpy()
        write_evaluation(run_dir / f"eval-{split}", predictions, data, split, plots=False)


# --- the sweep --------------------------------------------------------------------------------------------------
def run_ablation(
    features: Path | str,
    out: Path | str,
    *,
    grid: str = "paper",
    seeds: int = 3,
    workers: int = 1,
    config=None,
    baselines: Sequence[str] = BASELINES,
    gru_epochs: int | None = None,
    resamples: int = 2000,
    run_plots: bool = True,
    fusions: Sequence[str | Fusion] = ("concat",),
    robustness: bool = True,
    echo: Callable[[str], None] | None = print,
) -> AblationResult:
    """Train and score every setting of the grid over `seeds` seeds (skipping finished runs), then write the
    tables, plots and significance tests to OUT. `config` is a TrainConfig (default: the paper's settings);
    `run_plots=False` scores the Perceiver runs without `evaluate`'s per-run plots (same metrics, faster).
    `fusions` trains every multi-modality setting once per fusion (`concat`, `per_modality`, `:P` adds modality
    dropout P); `robustness` also scores every fusion run with each of its modalities removed."""
    from .training import TrainConfig

    began = time.perf_counter()
    say = echo or (lambda _line: None)
    if seeds < 1:
        raise ViperError("--seeds must be at least 1")
    if workers < 1:
        raise ViperError("--workers must be at least 1")
    out = Path(out)
    store = FeatureStore.open(features)
    config = config or TrainConfig()
    train_settings = {k: v for k, v in to_dict(config).items() if k not in ("modalities", "seed")}
    parsed = [fusion if isinstance(fusion, Fusion) else Fusion.parse(fusion) for fusion in fusions]
    if not parsed or len(set(parsed)) != len(parsed):
        raise ViperError("--fusion needs one or more different fusions, e.g. concat,per_modality:0.3")
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
    say(
        f"{len(settings)} settings x {seeds} seed(s) on {', '.join(splits)}: {len(jobs)} run(s) to do, "
        f"{len(skipped)} finished before"
    )
    result = AblationResult(out, settings, splits, ranking, None, skipped=skipped)
    _execute(jobs, workers, result, say)
    write_report(result, store, train_settings, seeds, resamples)
    result.seconds = time.perf_counter() - began
    say(f"report: {out / 'report.md'} (and report.html, runs.csv, runs.json)  [{result.seconds:.0f} s]")
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


def _execute(jobs: list[dict[str, Any]], workers: int, result: AblationResult, say) -> None:
    def done(job, seconds=None, error=None):
        if error is not None:
            result.failed[job["name"]] = error
            say(f"[{len(result.ran) + len(result.failed)}/{len(jobs)}] {job['name']}: FAILED: {error}")
            return
        result.ran.append(job["name"])
        scores = []
        for split in job["splits"]:
            metrics = json.loads((Path(job["run_dir"]) / f"eval-{split}" / "metrics.json").read_text())
            scores.append(f"{split} r={metrics['mean_pearson']:+.3f}")
        say(
            f"[{len(result.ran) + len(result.failed)}/{len(jobs)}] {job['name']}: {', '.join(scores)} ({seconds:.1f} s)"
        )

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


# --- tables, tests, plots ---------------------------------------------------------------------------------------
def _collect(result: AblationResult, store: FeatureStore, seeds: int):
    """Every run's metrics (rows) and, per split and setting, the predictions averaged over seeds."""
    import pandas as pd

    rows, averaged = [], {split: {} for split in result.splits}
    for setting in result.settings:
        for split in result.splits:
            predictions = []
            for seed in range(seeds if setting.seeded else 1):
                folder = result.out / "runs" / setting.slug / f"seed{seed}" / f"eval-{split}"
                if not (folder / "metrics.json").exists():
                    continue
                metrics = json.loads((folder / "metrics.json").read_text())
                rows.append(
                    {
                        "setting": setting.name,
                        "slug": setting.slug,
                        "kind": setting.kind,
                        "group": setting.group,
                        "keys": " ".join(setting.keys),
                        "seed": seed,
                        "split": split,
                        "n": metrics["n"],
                        "mean_pearson": metrics["mean_pearson"],
                        "top1_accuracy": metrics["top1_accuracy"],
                        "pearson": metrics["pearson"],
                    }
                )
                predictions.append(pd.read_csv(folder / "predictions.csv", dtype={"video_id": str}))
            if predictions:
                ids = predictions[0]["video_id"].tolist()
                stacked = np.stack([p.set_index("video_id").loc[ids].to_numpy(np.float64) for p in predictions])
                averaged[split][setting.slug] = (ids, stacked.mean(0))
    return rows, averaged


def write_report(
    result: AblationResult, store: FeatureStore, train_settings: dict[str, Any], seeds: int, resamples: int = 2000
) -> None:
    """runs.csv, runs.json, report.md, report.html, bars.png, heatmap.png from the runs under OUT/runs."""
    import pandas as pd

    from .dataset import read_labels
    from .significance import DEFAULT_SEED, paired_bootstrap

    out = result.out
    rows, averaged = _collect(result, store, seeds)
    emotions = store.emotions()
    flat = [
        {k: v for k, v in row.items() if k != "pearson"} | {f"r_{e}": row["pearson"][e] for e in emotions}
        for row in rows
    ]
    atomic_write_text(out / "runs.csv", pd.DataFrame(flat).to_csv(index=False))
    atomic_write_text(out / "runs.json", json.dumps(rows, indent=2))

    summary = []
    for setting in result.settings:
        for split in result.splits:
            mine = [row for row in rows if row["slug"] == setting.slug and row["split"] == split]
            if not mine:
                continue
            values = np.array([row["mean_pearson"] for row in mine])
            summary.append(
                {
                    "setting": setting.name,
                    "slug": setting.slug,
                    "group": setting.group,
                    "kind": setting.kind,
                    "split": split,
                    "runs": len(mine),
                    "n": mine[0]["n"],
                    "mean": float(values.mean()),
                    "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    "top1": float(np.mean([row["top1_accuracy"] for row in mine])),
                    "pearson": {e: float(np.mean([row["pearson"][e] for row in mine])) for e in emotions},
                    "p": None,
                    "diff": None,
                }
            )
    ranked = [row for row in summary if row["split"] == result.ranking_split]
    result.best = max(ranked, key=lambda row: row["mean"])["slug"] if ranked else None
    for split in result.splits:
        if result.best not in averaged[split]:
            continue
        ids, best_predictions = averaged[split][result.best]
        truth, _ = read_labels(store, ids)
        for row in summary:
            if row["split"] != split or row["slug"] == result.best or row["slug"] not in averaged[split]:
                continue
            other_ids, other = averaged[split][row["slug"]]
            if other_ids != ids:
                other = pd.DataFrame(other, index=other_ids).loc[ids].to_numpy()
            test = paired_bootstrap(best_predictions, other, truth, resamples=resamples, seed=DEFAULT_SEED)
            row["p"], row["diff"] = test.p_value, test.difference
    result.summary = summary
    result.robustness = _robustness_rows(result, store, seeds)
    if result.robustness:
        atomic_write_text(out / "robustness.csv", pd.DataFrame(result.robustness).to_csv(index=False))
    atomic_write_text(
        out / "summary.json",
        json.dumps({"best": result.best, "ranking_split": result.ranking_split, "rows": summary}, indent=2),
    )
    plots = _plots(result, emotions, out)
    markdown, page = _render(result, store, emotions, train_settings, seeds, resamples, plots)
    atomic_write_text(out / "report.md", markdown)
    atomic_write_text(out / "report.html", page)


def _robustness_rows(result: AblationResult, store: FeatureStore, seeds: int) -> list[dict[str, Any]]:
    """Mean ± std over seeds of every fusion setting's score, full and with each of its modalities removed."""
    rows = []
    for setting in result.settings:
        drops = setting.robustness_drops(store)
        if not drops:
            continue
        for split in result.splits:
            for removed in ["none", *drops]:
                values = []
                for seed in range(seeds):
                    run_dir = result.out / "runs" / setting.slug / f"seed{seed}"
                    folder = run_dir / (f"eval-{split}" if removed == "none" else f"eval-{split}-without-{removed}")
                    if (folder / "metrics.json").exists():
                        values.append(json.loads((folder / "metrics.json").read_text())["mean_pearson"])
                if values:
                    rows.append(
                        {
                            "setting": setting.name,
                            "slug": setting.slug,
                            "layout": setting.layout,
                            "modality_dropout": setting.modality_dropout,
                            "split": split,
                            "removed": removed,
                            "runs": len(values),
                            "mean": float(np.mean(values)),
                            "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                        }
                    )
    return rows


def _robustness_table(result: AblationResult, split: str) -> tuple[list[str], list[list[str]]]:
    """One row per fusion setting: its score with every modality, then with each one removed (— where the setting
    does not have it)."""
    rows = [row for row in result.robustness if row["split"] == split]
    removable = list(dict.fromkeys(row["removed"] for row in rows if row["removed"] != "none"))
    header = ["setting", "full", *(f"without {_label(m)}" for m in removable), "worst drop"]
    body = []
    for slug in dict.fromkeys(row["slug"] for row in rows):
        mine = {row["removed"]: row for row in rows if row["slug"] == slug}
        full = mine.get("none")

        def cell(row):
            return "—" if row is None else f"{row['mean']:.3f} ± {row['std']:.3f}"

        without = [mine[m]["mean"] for m in removable if m in mine]
        worst = f"{min(without) - full['mean']:+.3f}" if full and without else "—"
        name = next(row["setting"] for row in rows if row["slug"] == slug)
        body.append([name, cell(full), *(cell(mine.get(m)) for m in removable), worst])
    return header, body


def _notes(
    result: AblationResult, store: FeatureStore, train_settings: dict[str, Any], seeds: int, resamples: int
) -> list[str]:
    notes = [
        f"Store: `{store.root}`; scored on {' and '.join(result.splits)}; {seeds} seed(s) per setting "
        "(the ridge baseline is deterministic: one run).",
        "Perceiver training: "
        + ", ".join(f"{k}={v}" for k, v in train_settings.items() if k != "model_overrides")
        + (f", model_overrides={train_settings['model_overrides']}" if train_settings.get("model_overrides") else "")
        + ".",
        "Cells: mean Pearson r over the emotions, mean ± std over seeds; emotion columns: the per-emotion r averaged "
        "over seeds; top-1: argmax-emotion accuracy.",
        f"**Bold**: the best setting, chosen by mean r on {result.ranking_split}"
        + (
            ""
            if result.ranking_split == "dev"
            else " (the store has no dev split, so settings are ranked on test "
            "itself: an optimistic choice, and every test-set model is the last epoch, not the best by dev)"
        )
        + ".",
        f"p: paired bootstrap over clips ({resamples} resamples, seed 0), two-sided, of the difference in mean "
        "Pearson r between the best setting and that row, using each setting's predictions averaged over seeds; "
        "p = min(1, 2·min(P(d*≤0), P(d*≥0))) over the resampled differences d*. Δ: mean r of the best setting's "
        "seed-averaged predictions minus that of the row's (so it can differ from the difference of the mean columns).",
    ]
    fusions = sorted({(s.layout, s.modality_dropout) for s in result.settings if s.kind == "perceiver"})
    if fusions != [("concat", 0.0)]:
        notes.append(
            "Fusions: "
            + "; ".join(f"layout {layout}, modality dropout {p:g}" for layout, p in fusions)
            + " (a setting's name says which; no suffix is the paper's concatenation without dropout)."
        )
    if result.failed:
        notes.append(
            f"{len(result.failed)} run(s) failed and are missing from the table: "
            + "; ".join(f"{k}: {v}" for k, v in result.failed.items())
        )
    return notes


def _table(result: AblationResult, split: str, emotions: list[str]) -> tuple[list[str], list[list[str]], list[bool]]:
    header = ["setting", "group", "runs", "mean r (± std)", "Δ", "p", "top-1", *emotions]
    body, bold = [], []
    for row in result.summary:
        if row["split"] != split:
            continue
        p = "—" if row["p"] is None else ("<0.001" if row["p"] < 0.001 else f"{row['p']:.3f}")
        diff = "—" if row["diff"] is None else f"{row['diff']:+.3f}"
        mean = f"{row['mean']:.3f} ± {row['std']:.3f}" if row["runs"] > 1 else f"{row['mean']:.3f}"
        body.append(
            [
                row["setting"],
                row["group"],
                str(row["runs"]),
                mean,
                diff,
                p,
                f"{row['top1']:.1%}",
                *(f"{row['pearson'][e]:.3f}" for e in emotions),
            ]
        )
        bold.append(row["slug"] == result.best)
    return header, body, bold


def _render(result, store, emotions, train_settings, seeds, resamples, plots) -> tuple[str, str]:
    notes = _notes(result, store, train_settings, seeds, resamples)
    title = "ViPER modality ablation (the paper's Tables 2–3)"
    md = [f"# {title}", "", *(f"- {note}" for note in notes), ""]
    page = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child,"
        "td:nth-child(2){text-align:left}tr.best{font-weight:bold;background:#eef}img{max-width:100%}"
        f"</style></head><body><h1>{title}</h1><ul>"
    ]
    page += [f"<li>{_md_to_html(note)}</li>" for note in notes] + ["</ul>"]
    for split in result.splits:
        header, body, bold = _table(result, split, emotions)
        n = next((row["n"] for row in result.summary if row["split"] == split), 0)
        md += [
            f"## {split} ({n} clips)",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---", "---"] + ["---:"] * (len(header) - 2)) + "|",
        ]
        page += [
            f"<h2>{split} ({n} clips)</h2><table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
        ]
        for cells, strong in zip(body, bold, strict=True):
            shown = [f"**{cell}**" if strong and i in (0, 3) else cell for i, cell in enumerate(cells)]
            md.append("| " + " | ".join(shown) + " |")
            page.append(
                f"<tr{' class=best' if strong else ''}>"
                + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells)
                + "</tr>"
            )
        md.append("")
        page.append("</table>")
    for split in result.splits if result.robustness else []:
        header, body = _robustness_table(result, split)
        intro = (
            f"Each fusion run scored on {split} with one modality removed (masked in every frame, as a clip that "
            "lacks it); mean r ± std over seeds. Worst drop: the lowest score without one modality minus the full one."
        )
        md += [f"## Robustness to a missing modality: {split}", "", intro, "", "| " + " | ".join(header) + " |",
               "|---|" + "|".join(["---:"] * (len(header) - 1)) + "|"]
        md += ["| " + " | ".join(cells) + " |" for cells in body] + [""]
        page += [f"<h2>Robustness to a missing modality: {split}</h2><p>{html.escape(intro)}</p><table><tr>"
                 + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
        page += ["<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>" for cells in body]
        page.append("</table>")
    md += ["## Plots", ""] + [f"![{name}]({name})" for name in plots] + [""]
    for name, data in plots.items():
        page.append(f"<h2>{name}</h2><img alt='{name}' src='data:image/png;base64,{base64.b64encode(data).decode()}'>")
    page.append("</body></html>")
    return "\n".join(md), "\n".join(page)


def _md_to_html(text: str) -> str:
    import re

    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def _plots(result: AblationResult, emotions: list[str], out: Path) -> dict[str, bytes]:
    """bars.png (mean r ± std per setting and split) and heatmap.png (per-emotion r on the ranking split)."""
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(row["setting"] for row in result.summary))
    plots: dict[str, bytes] = {}
    if not names:
        return plots
    figure = Figure(figsize=(2 + 0.6 * len(names) * len(result.splits), 4.5))
    axis = figure.subplots()
    width = 0.8 / len(result.splits)
    for s, split in enumerate(result.splits):
        rows = {row["setting"]: row for row in result.summary if row["split"] == split}
        xs = [i + (s - (len(result.splits) - 1) / 2) * width for i in range(len(names))]
        means = [rows[n]["mean"] if n in rows else np.nan for n in names]
        stds = [rows[n]["std"] if n in rows else 0 for n in names]
        axis.bar(xs, means, width, yerr=stds, capsize=3, label=split)
    axis.axhline(0, color="grey", linewidth=0.8)
    axis.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
    axis.set_ylabel("mean Pearson r (± std over seeds)")
    axis.legend()
    plots["bars.png"] = _png(figure)

    rows = {row["setting"]: row for row in result.summary if row["split"] == result.ranking_split}
    matrix = np.array([[rows[n]["pearson"][e] if n in rows else np.nan for e in emotions] for n in names])
    figure = Figure(figsize=(2.5 + 0.8 * len(emotions), 1.2 + 0.4 * len(names)))
    axis = figure.subplots()
    limit = max(0.1, float(np.nanmax(np.abs(matrix))) if np.isfinite(matrix).any() else 0.1)
    image = axis.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for (i, j), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            axis.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
    axis.set_xticks(range(len(emotions)), emotions, rotation=40, ha="right", fontsize=8)
    axis.set_yticks(range(len(names)), names, fontsize=8)
    axis.set_title(f"per-emotion r on {result.ranking_split} (mean over seeds)", fontsize=8)
    figure.colorbar(image, ax=axis)
    plots["heatmap.png"] = _png(figure)
    if result.robustness:
        plots["robustness.png"] = _robustness_plot(result)
    for name, data in plots.items():
        atomic_write_bytes(out / name, data)
    return plots


def _robustness_plot(result: AblationResult) -> bytes:
    """A matrix on the ranking split: fusion settings x (full, without each modality), mean r over seeds."""
    from matplotlib.figure import Figure

    rows = [row for row in result.robustness if row["split"] == result.ranking_split]
    slugs = list(dict.fromkeys(row["slug"] for row in rows))
    removed = list(dict.fromkeys(row["removed"] for row in rows))
    cells = {(row["slug"], row["removed"]): row for row in rows}
    matrix = np.array([[cells[s, r]["mean"] if (s, r) in cells else np.nan for r in removed] for s in slugs])
    figure = Figure(figsize=(3.5 + 1.1 * len(removed), 1.0 + 0.32 * len(slugs)))
    axis = figure.subplots()
    image = axis.imshow(matrix, cmap="viridis", aspect="auto")
    low, high = np.nanmin(matrix), np.nanmax(matrix)
    for (i, j), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            row = cells[slugs[i], removed[j]]
            light = high > low and (value - low) / (high - low) > 0.6  # viridis turns yellow: dark text
            axis.text(j, i, f"{value:.2f}±{row['std']:.2f}", ha="center", va="center", fontsize=6.5,
                      color="black" if light else "white")
    names = [next(row["setting"] for row in rows if row["slug"] == slug) for slug in slugs]
    axis.set_xticks(range(len(removed)), ["full" if r == "none" else f"without {_label(r)}" for r in removed],
                    fontsize=8)
    axis.set_yticks(range(len(slugs)), names, fontsize=7)
    axis.set_title(f"mean Pearson r on {result.ranking_split} with a modality removed (± std over seeds)", fontsize=8)
    figure.colorbar(image, ax=axis)
    return _png(figure)


def _png(figure) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
