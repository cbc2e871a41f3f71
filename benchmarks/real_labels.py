"""Real-label figures of the README: ViPER on RAVDESS actor 05 vs clip-average baselines and chance.

Data: the 60 face-crop takes of RAVDESS actor 05 (CC BY-NC-SA 4.0, see their SOURCE.md): those of
../shared/data/ravdess-actor05/clips beside the repository where it is, else the same takes bundled inside the
package; with --include-full also the 14 full-frame takes of ../shared/data/ravdess-actor05/full (not bundled).
Labels from the file names (viper.datasets.ravdess: one column per emotion, 1.0 strong, 0.5 normal, 0 otherwise);
train on statement 01, test on statement 02. Features are extracted once (32 frames, 2 workers) into WORK/store-*
and reused.

Settings: each single modality, face_image+fau, and the full fusion of all four. ViPER (the Perceiver) is
trained with viper.jobs.demo.DEMO_TRAIN per seed and scored on test: mean Pearson over the 8 emotions, and top-1
accuracy of the argmax emotion. Baselines on the same features averaged over each clip's valid frames
(standardised with train statistics): ridge regression (alpha by grouped CV on train) and logistic regression
on the argmax class (C by grouped CV on train). Chance: uniform 1/8 and the test split's majority class.

    python benchmarks/real_labels.py                 # 5 seeds: about 2.5 min on 2 idle cores (4.5 when busy)
    python benchmarks/real_labels.py --quick         # 2 seeds, 20 epochs: a smoke test
    python benchmarks/real_labels.py --lr 3e-4 --overrides '{"ff_dropout": 0.3}'   # a TrainConfig variant
    python benchmarks/real_labels.py --person-norm   # tokens (and the baselines' clip means) centred per person,
                                                     # compared seed by seed with the runs without

Prints the Markdown table (setting | mean Pearson ± std | top-1 accuracy ± std, std over seeds), whether the
full fusion beats every single modality and the ridge baseline, and per-emotion Pearson; writes
WORK/real_labels.{md,json,png} (default WORK: benchmarks/out/real_labels, git-ignored by a .gitignore it
writes). Runs are cached in WORK/runs/<config hash>/, so a rerun with the same settings only re-evaluates.
With the default settings (5 seeds, or --quick; --fau allowed) the table is also recorded as the figure
`real-labels` (`real-labels-fau-mesh` with --fau mesh, `-quick` after it with --quick), docs/figures/*.json, shown
in docs/demo.md; a variant (--lr, --epochs, --seeds, --overrides, ...) is not. --person-norm records instead the
figure `person-norm` (docs/training.md): per setting, mean Pearson without and with, their paired difference over
seeds, top-1, and the largest change of the final train loss, which tells whether centring changed the training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import figures
import numpy as np
from shared_data import needs, ravdess_takes

REPO = Path(__file__).resolve().parents[1]
FULL_TAKES = "data/ravdess-actor05/full"
MODALITIES = ["face_image", "fau", "caption", "audio"]
FUSION = "all four"
SETTINGS = {name: [name] for name in MODALITIES} | {"face_image+fau": MODALITIES[:2], FUSION: MODALITIES}
Runs = dict[str, list[dict[str, Any]]]  # setting -> one record per seed
Baselines = dict[str, dict[str, Any]]  # setting -> ridge / logistic / chance
# what the figures measure: the extractors, the training and scoring of the Perceiver, DEMO_TRAIN
MEASURES = ["src/viper/extractors", "src/viper/jobs/extract.py", "src/viper/model.py", "src/viper/jobs/train.py",
            "src/viper/jobs/evaluate.py", "src/viper/jobs/demo.py", "src/viper/tokens.py", "src/viper/metrics.py"]


def takes_folder(include_full: bool) -> Path:
    """The folder the manifest lists: the 60 face crops (../shared's, or the same takes bundled with viper), or with
    --include-full ../shared's folder holding them and the 14 full-frame takes."""
    if include_full:
        why = "the 14 full-frame takes of --include-full; viper bundles only the 60 face crops"
        return needs(FULL_TAKES, why).parent
    return ravdess_takes()


def build_store(work: Path, takes: Path, include_full: bool, fau: str | None = None,
                more: tuple[str, ...] = ()) -> Path:
    """Manifest of the clips (and full-frame takes) and their features, extracted once (`fau`: a backend other
    than the default for the fau modality, in a store of its own; `more`: extractors beyond the four)."""
    from viper.datasets.ravdess import write_ravdess_manifest
    from viper.jobs.extract import extract

    name = "clips+full" if include_full else "clips"
    manifest, store = work / f"manifest-{name}.csv", work / (f"store-{name}" + (f"-fau-{fau}" if fau else ""))
    rows = write_ravdess_manifest(takes, manifest)
    print(f"{rows} RAVDESS clips -> {manifest}; extracting into {store} (cached) ...")
    extractors = [f"fau:{fau}" if modality == "fau" and fau else modality for modality in MODALITIES] + list(more)
    summary = extract(manifest, store, frames=32, workers=2, extractors=extractors)
    print("  " + "\n  ".join(summary.lines()))
    return store


def _one_run(store: Path, run_dir: Path, config: Any, drops: list[str]) -> dict[str, Any]:
    """Train (or resume a finished run) and score it on test, and again with each of `drops` masked; runs in a
    worker process with one torch thread."""
    import logging

    import torch

    from viper.jobs.evaluate import evaluate
    from viper.jobs.train import train

    logging.disable(logging.WARNING)  # "no dev split: best.pt is the last epoch" is expected here
    torch.set_num_threads(1)  # measured: a 2nd thread speeds a run up ~5 %, a 2nd run in parallel ~70 %
    started = time.perf_counter()
    result = train(store, run_dir, config)
    metrics = evaluate(run_dir, store, "test", run_dir / "eval-test", plots=False)
    without = {drop: evaluate(run_dir, store, "test", run_dir / f"eval-test-without-{drop}", plots=False,
                              drop=[drop])["mean_pearson"] for drop in drops}
    return {"seed": config.seed, "mean_pearson": metrics["mean_pearson"], "top1": metrics["top1_accuracy"],
            "pearson": metrics["pearson"], "final_train_loss": result.history[-1]["train_loss"],
            "without": without, "seconds": round(time.perf_counter() - started, 1), "run_dir": str(run_dir)}


def perceiver_runs(store: Path, work: Path, base: Any, seeds: list[int], settings: dict[str, dict] | None = None,
                   dropping: tuple[str, ...] = ()) -> Runs:
    """Every setting x seed, two runs at a time. `settings`: per name, the TrainConfig fields that differ from
    `base` (default: SETTINGS' modalities); the settings named in `dropping` are also scored with each of their
    modalities masked. Runs live in WORK/runs/<hash of base and store>/<name>/seed<k>/, so another benchmark with
    the same base and a setting of the same name reuses them."""
    from viper.config import config_hash, to_dict

    settings = settings or {name: {"modalities": modalities} for name, modalities in SETTINGS.items()}
    folder = work / "runs" / config_hash({**to_dict(base), "store": store.name})
    (folder / "train_config.json").parent.mkdir(parents=True, exist_ok=True)
    (folder / "train_config.json").write_text(json.dumps(to_dict(base), indent=2))
    jobs = {(name, seed): dataclasses.replace(base, **changes, seed=seed)
            for name, changes in settings.items() for seed in seeds}
    with ProcessPoolExecutor(2) as pool:
        futures = {key: pool.submit(_one_run, store, folder / key[0].replace(" ", "_") / f"seed{key[1]}", config,
                                    list(config.modalities) if key[0] in dropping else [])
                   for key, config in jobs.items()}
        return {name: [futures[(name, seed)].result() for seed in seeds] for name in settings}


def clip_means(
    store: Path, modalities: list[str], split: str, person_norm: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Per clip: each modality's mean over its valid frames, concatenated; labels; ids; emotions."""
    from viper.store import FeatureStore
    from viper.tokens import load_split

    data = load_split(FeatureStore.open(store), modalities, split, person_norm=person_norm)
    parts, start = [], 0
    for m, dim in enumerate(data.dims):
        mask = data.modality_masks[..., m][..., None]
        parts.append((data.tokens[..., start:start + dim] * mask).sum(1) / np.maximum(mask.sum(1), 1))
        start += dim
    return np.concatenate(parts, axis=1), data.labels, data.video_ids, data.emotions


def baselines(store: Path, modalities: list[str], person_norm: bool = False) -> dict[str, dict[str, Any]]:
    """Ridge (alpha by CV) and logistic regression (C by CV) on clip means, standardised with train statistics.

    CV folds keep the two repetitions of a take together (they are near-duplicates), so CV does not pick the
    least regularised model because a clip's twin sits in its training fold."""
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from viper.metrics import pearson_scores, top1

    x_train, y_train, train_ids, emotions = clip_means(store, modalities, "train", person_norm)
    x_test, y_test, _, _ = clip_means(store, modalities, "test", person_norm)
    groups = [video_id[:11] for video_id in train_ids]  # modality-channel-emotion-intensity: one take
    folds = list(GroupKFold(5).split(x_train, y_train, groups))
    ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 5, 29), cv=folds))
    scores = ridge.fit(x_train, y_train).predict(x_test)
    per_emotion, mean_r, _ = pearson_scores(scores, y_test, emotions)
    logistic = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=np.logspace(-4, 2, 13), cv=folds,
                                                                    max_iter=5000))
    with warnings.catch_warnings():  # sklearn 1.9 announces changes of defaults that do not affect this fit
        warnings.simplefilter("ignore", FutureWarning)
        logistic.fit(x_train, y_train.argmax(1))
    probabilities = np.zeros_like(y_test)
    probabilities[:, logistic.classes_] = logistic.predict_proba(x_test)
    return {
        "ridge": {"mean_pearson": mean_r, "top1": top1(scores, y_test)[0], "pearson": per_emotion,
                  "alpha": float(ridge[-1].alpha_)},
        "logistic": {"mean_pearson": pearson_scores(probabilities, y_test, emotions)[1],
                     "top1": top1(probabilities, y_test)[0], "C": float(logistic[-1].C_[0])},
        "chance": {"uniform": 1 / len(emotions), "majority class of test": top1(y_test, y_test)[1]},
    }


def summarise(runs: list[dict[str, Any]], key: str) -> tuple[float, float]:
    values = [run[key] for run in runs]
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def rows(perceiver: Runs, base: Baselines) -> list[tuple[str, str, tuple[float, float] | None, tuple[float, float]]]:
    """(method, setting, (mean, std) Pearson or None, (mean, std) top-1) for every table row."""
    table = [("ViPER", name, summarise(runs, "mean_pearson"), summarise(runs, "top1")) for name, runs in
             perceiver.items()]
    for method in ("ridge", "logistic"):
        table += [(method, name, (b[method]["mean_pearson"], 0.0), (b[method]["top1"], 0.0)) for name, b in
                  base.items()]
    return table + [("chance", name, None, (rate, 0.0)) for name, rate in base[FUSION]["chance"].items()]


def markdown(perceiver: Runs, base: Baselines, seeds: int) -> str:
    lines = ["| setting | mean Pearson ± std | top-1 accuracy ± std |", "|---|---|---|"]
    for method, name, pearson, accuracy in rows(perceiver, base):
        label = f"ViPER {name} ({seeds} seeds)" if method == "ViPER" else f"{method} on clip means: {name}"
        label = f"chance: {name}" if method == "chance" else label
        r = "—" if pearson is None else f"{pearson[0]:.3f}" + (f" ± {pearson[1]:.3f}" if method == "ViPER" else "")
        acc = f"{accuracy[0]:.3f}" + (f" ± {accuracy[1]:.3f}" if method == "ViPER" else "")
        lines.append(f"| {label} | {r} | {acc} |")
    return "\n".join(lines)


def recorded_name(args: argparse.Namespace, figure: str) -> str | None:
    """The figure's name for the default settings (or --quick's), with or without --fau; None for a variant."""
    variant = [name for name in ("epochs", "lr", "overrides", "modality_dropout", "no_standardise", "include_full")
               if getattr(args, name)]
    if variant or (args.seeds != 5 and not args.quick):
        print(f"not recorded as a figure: a variant ({', '.join(variant) or 'seeds'})")
        return None
    return figure + (f"-fau-{args.fau}" if args.fau else "") + ("-quick" if args.quick else "")


def notes(args: argparse.Namespace, seeds: int) -> str:
    return (f"RAVDESS actor 05, train statement 01, test statement 02 (30 clips); ViPER: mean and std over seeds "
            f"0–{seeds - 1}, the demo's training settings" + (" but 20 epochs" if args.quick else "")
            + (f", fau:{args.fau}" if args.fau else "")
            + f"; a run already in {args.work.name}/runs/ is scored again, not retrained")


def record(args: argparse.Namespace, began: dict, perceiver: Runs, base: Baselines, seeds: int) -> None:
    """The table as the figure `real-labels`."""
    name = recorded_name(args, "real-labels")
    if name is None:
        return
    table = []
    for method, setting, pearson, accuracy in rows(perceiver, base):
        label = f"ViPER {setting}" if method == "ViPER" else f"{method} on clip means: {setting}"
        spread = method == "ViPER" and seeds > 1
        table.append({"setting": f"chance: {setting}" if method == "chance" else label,
                      "pearson": None if pearson is None else pearson[0],
                      "pearson_std": pearson[1] if spread else None, "top1": accuracy[0],
                      "top1_std": accuracy[1] if spread else None})
    figures.record(name, table, began=began, measures=MEASURES,
                   columns=[("setting", "setting"), ("pearson", "mean Pearson", "{:.3f}"),
                            ("pearson_std", "± std", "{:.3f}"), ("top1", "top-1 accuracy", "{:.3f}"),
                            ("top1_std", "± std", "{:.3f}")],
                   notes=notes(args, seeds))


def record_person_norm(args: argparse.Namespace, began: dict, plain: Runs, normed: Runs,
                       ridge: tuple[dict, dict]) -> None:
    """Without -> with person_norm per setting, seed by seed, as the figure `person-norm`; the ridge row shows a
    linear model's Pearson, which a per-split offset cannot move."""
    name = recorded_name(args, "person-norm")
    table = []
    for setting in plain:
        differences = [b["mean_pearson"] - a["mean_pearson"] for a, b in zip(plain[setting], normed[setting],
                                                                             strict=True)]
        losses = [abs(b["final_train_loss"] - a["final_train_loss"]) for a, b in zip(plain[setting],
                                                                                    normed[setting], strict=True)]
        table.append({"setting": f"ViPER {setting}", "without": summarise(plain[setting], "mean_pearson")[0],
                      "with": summarise(normed[setting], "mean_pearson")[0], "difference": float(np.mean(differences)),
                      "difference_std": float(np.std(differences, ddof=1)) if len(differences) > 1 else None,
                      "top1_without": summarise(plain[setting], "top1")[0],
                      "top1_with": summarise(normed[setting], "top1")[0], "loss": max(losses)})
    without, with_ = ridge
    table.append({"setting": f"ridge on clip means: {FUSION}", "without": without["mean_pearson"],
                  "with": with_["mean_pearson"], "difference": with_["mean_pearson"] - without["mean_pearson"],
                  "difference_std": None, "top1_without": without["top1"], "top1_with": with_["top1"], "loss": None})
    print("\n".join(f"{row['setting']}: {row['without']:.3f} -> {row['with']:.3f}" for row in table))
    if name is not None:
        figures.record(name, table, began=began, measures=MEASURES + ["src/viper/persons.py"],
                       columns=[("setting", "setting"), ("without", "mean Pearson without", "{:.3f}"),
                                ("with", "with person_norm", "{:.3f}"), ("difference", "paired difference", "{:+.3f}"),
                                ("difference_std", "± std", "{:.3f}"), ("top1_without", "top-1 without", "{:.3f}"),
                                ("top1_with", "top-1 with", "{:.3f}"),
                                ("loss", "largest change of the final train loss", "{:.1e}")],
                       notes=notes(args, len(next(iter(plain.values()))))
                       + "; paired difference: with minus without, seed by seed")


def verdict(perceiver: Runs, base: Baselines) -> list[str]:
    """Does the full fusion beat every single modality and the ridge baseline, on both metrics (seed means)?"""
    fusion = {key: summarise(perceiver[FUSION], key)[0] for key in ("mean_pearson", "top1")}
    rivals = {f"ViPER {name}": {key: summarise(perceiver[name], key)[0] for key in fusion} for name in MODALITIES}
    rivals["the ridge baseline (all four)"] = base[FUSION]["ridge"]
    lines = [f"full fusion does NOT beat {rival} on {key}: {fusion[key]:.3f} vs {row[key]:.3f}"
             for rival, row in rivals.items() for key in fusion if fusion[key] <= row[key]]
    return lines or ["full fusion beats every single modality and the ridge baseline on both metrics"]


def per_emotion(perceiver: Runs, base: Baselines) -> str:
    """Test Pearson per emotion: ViPER (mean over seeds) and ridge, for every setting."""
    emotions = list(perceiver[FUSION][0]["pearson"])
    lines = ["per-emotion test Pearson:", f"{'':>22} " + " ".join(f"{e[:8]:>8}" for e in emotions)]
    for name, runs in perceiver.items():
        viper = [np.mean([run["pearson"][e] for run in runs]) for e in emotions]
        ridge = [base[name]["ridge"]["pearson"][e] for e in emotions]
        lines += [f"{method + ' ' + name:>22} " + " ".join(f"{v:8.3f}" for v in values)
                  for method, values in (("ViPER", viper), ("ridge", ridge))]
    return "\n".join(lines)


def plot(perceiver: Runs, base: Baselines, path: Path) -> None:
    from matplotlib.figure import Figure

    table = rows(perceiver, base)
    figure = Figure(figsize=(11, 4))
    for axis, column, label in zip(figure.subplots(1, 2), (2, 3), ("mean Pearson r", "top-1 accuracy"), strict=True):
        for offset, method in enumerate(("ViPER", "ridge", "logistic")):
            values = [row[column] for row in table if row[0] == method]
            axis.bar(np.arange(len(values)) + 0.27 * (offset - 1), [v[0] for v in values], width=0.27,
                     yerr=[v[1] for v in values] if method == "ViPER" else None, capsize=3, label=method)
        if column == 3:
            for name, style in zip(base[FUSION]["chance"], (":", "--"), strict=True):
                axis.axhline(base[FUSION]["chance"][name], color="tab:red", linestyle=style, label=f"chance: {name}")
        axis.set_xticks(range(len(perceiver)), list(perceiver), rotation=20, ha="right", fontsize=8)
        axis.set_ylabel(label)
        axis.set_ylim(0, 1.22)
        axis.legend(fontsize=7, ncol=3, loc="upper left")
    figure.suptitle("RAVDESS actor 05, test = statement 02 (ViPER: mean ± std over seeds)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    from viper.jobs.demo import DEMO_TRAIN

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks/out/real_labels")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per setting")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 20 epochs")
    parser.add_argument("--include-full", action="store_true", help="also the 14 full-frame takes in full/")
    parser.add_argument("--epochs", type=int, help=f"default DEMO_TRAIN's {DEMO_TRAIN.epochs}")
    parser.add_argument("--lr", type=float, help=f"default DEMO_TRAIN's {DEMO_TRAIN.lr}")
    parser.add_argument("--overrides", type=json.loads, default={}, help="model_overrides as JSON")
    parser.add_argument("--modality-dropout", type=float, default=0.0, help="TrainConfig.modality_dropout")
    parser.add_argument("--no-standardise", action="store_true")
    parser.add_argument("--person-norm", action="store_true", help="TrainConfig.person_norm (baselines too)")
    parser.add_argument("--fau", help="a fau backend other than the default, e.g. mesh (its own store)")
    args = parser.parse_args()
    takes = takes_folder(args.include_full)  # before any work: a take folder this clone lacks is named at once
    started, began = time.perf_counter(), figures.begin()
    args.work.mkdir(parents=True, exist_ok=True)
    if not (args.work / ".gitignore").exists():
        (args.work / ".gitignore").write_text("*\n")  # benchmark output: never committed
    seeds = list(range(2 if args.quick else args.seeds))
    config = dataclasses.replace(
        DEMO_TRAIN, epochs=args.epochs or (20 if args.quick else DEMO_TRAIN.epochs), lr=args.lr or DEMO_TRAIN.lr,
        model_overrides=args.overrides, standardise=not args.no_standardise, modality_dropout=args.modality_dropout,
        person_norm=args.person_norm)
    store = build_store(args.work, takes, args.include_full, args.fau)
    print(f"training {len(SETTINGS)} settings x {len(seeds)} seeds: {config}")
    perceiver = perceiver_runs(store, args.work, config, seeds)
    base = {name: baselines(store, modalities, config.person_norm) for name, modalities in SETTINGS.items()}
    table, verdicts = markdown(perceiver, base, len(seeds)), verdict(perceiver, base)
    print("\n" + table + "\n\n" + "\n".join(verdicts) + "\n\n" + per_emotion(perceiver, base))
    note = f"\n\nTrain config: `{config}`; data: {store.name}."
    (args.work / "real_labels.md").write_text(table + "\n\n" + "\n".join(verdicts) + note + "\n")
    payload = {"config": dataclasses.asdict(config), "store": str(store), "seeds": seeds,
               "perceiver": perceiver, "baselines": base}
    (args.work / "real_labels.json").write_text(json.dumps(payload, indent=2))
    plot(perceiver, base, args.work / "real_labels.png")
    if args.person_norm:
        plain = perceiver_runs(store, args.work, dataclasses.replace(config, person_norm=False), seeds)
        ridge = (baselines(store, MODALITIES)["ridge"], base[FUSION]["ridge"])
        record_person_norm(args, began, plain, perceiver, ridge)
    else:
        record(args, began, perceiver, base, len(seeds))
    print(f"\nwrote {args.work}/real_labels.{{md,json,png}} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
