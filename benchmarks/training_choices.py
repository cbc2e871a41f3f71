"""Two training choices measured on real labels: the fusion that survives a missing modality, and the recipe for
few people (docs/training.md).

Data, training and scoring as benchmarks/real_labels.py, whose functions this shares, and whose WORK folder it uses
by default: the same store of the 60 RAVDESS actor-05 takes (the `expression` features added to it) and the same
cached runs. Train statement 01, test statement 02 (30 clips); every setting is viper.jobs.demo.DEMO_TRAIN with the
modalities, fusion and anchoring named, trained for seeds 0..N-1 and scored on test.

- `missing-modalities`: the four modalities (face_image, caption, audio, fau) with the paper's concatenation, with
  modality dropout 0.3, and with the per_modality layout and dropout 0.3; each run scored whole and with each
  modality masked in every frame (what `viper evaluate --drop` does).
- `few-people-recipe`: the general model untrained (its clip probabilities from the `expression` features: 7
  outputs, none for calm), the four modalities (no expression, so not anchored), all five anchored, fau + expression
  not anchored and anchored (the demo).

    python benchmarks/training_choices.py            # 5 seeds; records both figures
    python benchmarks/training_choices.py --quick    # 2 seeds, 20 epochs: a smoke test, not recorded
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import figures
import numpy as np
from real_labels import FUSION, MEASURES, MODALITIES, REPO, Runs, build_store, perceiver_runs, summarise, takes_folder

FOUR = {"modalities": MODALITIES}
MISSING = {  # fusion -> TrainConfig fields; the first is real_labels' `all four` (its runs are reused)
    FUSION: FOUR,
    "all four, modality dropout 0.3": FOUR | {"modality_dropout": 0.3},
    "all four, per_modality, modality dropout 0.3": FOUR | {"modality_dropout": 0.3,
                                                            "model_overrides": {"layout": "per_modality"}},
}
FUSION_LABELS = {FUSION: "`concat` (the paper's)", "all four, modality dropout 0.3": "`concat`, modality dropout 0.3",
                 "all four, per_modality, modality dropout 0.3": "`per_modality`, modality dropout 0.3"}
PERSON_GENERAL = {"modalities": ["fau", "expression"]}
RECIPE = {  # table label -> TrainConfig fields (anchor defaults to True: anchored where expression is among them)
    "the paper's four modalities, not anchored (no expression)": FOUR,
    "all five (the four + expression), anchored": {"modalities": [*MODALITIES, "expression"]},
    "fau + expression, not anchored": PERSON_GENERAL | {"anchor": False},
    "fau + expression, anchored (the demo)": PERSON_GENERAL,
}
SAME_RUNS = {"the paper's four modalities, not anchored (no expression)": FUSION}  # one setting, trained once


def general_model(store: Path) -> dict[str, float]:
    """The general model on test, untrained: its probability of each output's basic emotion (calm has none and
    stays 0, so it is never the argmax); Pearson over the 7 outputs it has."""
    from viper.general_model import GeneralModel, anchoring
    from viper.metrics import pearson_scores, top1
    from viper.store import FeatureStore
    from viper.tokens import load_split

    data = load_split(FeatureStore.open(store), ["expression"], "test")
    probabilities = GeneralModel()(data.tokens, data.modality_masks)
    mapped = np.array(anchoring(["expression"], data.dims, data.emotions)["anchor_map"])
    scores = np.zeros_like(data.labels)
    scores[:, mapped >= 0] = probabilities[:, mapped[mapped >= 0]]
    kept = [emotion for emotion, index in zip(data.emotions, mapped, strict=True) if index >= 0]
    return {"pearson": pearson_scores(scores[:, mapped >= 0], data.labels[:, mapped >= 0], kept)[1],
            "top1": top1(scores, data.labels)[0]}


def missing_rows(runs: Runs) -> list[dict]:
    """Per fusion: the mean full score (± std over seeds), the mean without each modality and the worst drop."""
    from viper.jobs.ablate.grid import label

    table = []
    for name in MISSING:
        full, spread = summarise(runs[name], "mean_pearson")
        without = {m: float(np.mean([run["without"][m] for run in runs[name]])) for m in MODALITIES}
        table.append({"fusion": FUSION_LABELS[name], "full": full, "full_std": spread,
                      **{f"without_{label(m)}": value for m, value in without.items()},
                      "worst": min(without.values()) - full})
    return table


def recipe_rows(runs: Runs, general: dict[str, float]) -> list[dict]:
    table = [{"setting": "the general model, untrained (7 outputs, no calm; Pearson over those 7)",
              "pearson": general["pearson"], "pearson_std": None, "top1": general["top1"], "top1_std": None}]
    for name in RECIPE:
        (pearson, pearson_std), (accuracy, top1_std) = (summarise(runs[SAME_RUNS.get(name, name)], key)
                                                        for key in ("mean_pearson", "top1"))
        table.append({"setting": name, "pearson": pearson, "pearson_std": pearson_std, "top1": accuracy,
                      "top1_std": top1_std})
    return table


def record(began: dict, seeds: int, missing: list[dict], recipe: list[dict]) -> None:
    from viper.jobs.ablate.grid import label

    notes = (f"RAVDESS actor 05, train statement 01, test statement 02 (30 clips); mean over seeds 0–{seeds - 1}, "
             "the demo's training settings; a run already in real_labels/runs/ is scored again, not retrained")
    figures.record("missing-modalities", missing, began=began, measures=MEASURES,
                   columns=[("fusion", "all four modalities"), ("full", "full", "{:.3f}"),
                            ("full_std", "± std", "{:.3f}"),
                            *[(f"without_{label(m)}", f"without {label(m)}", "{:.3f}") for m in MODALITIES],
                            ("worst", "worst drop", "{:+.3f}")],
                   notes=notes + "; test mean Pearson, with one modality masked in every test frame")
    figures.record("few-people-recipe", recipe, began=began, measures=[*MEASURES, "src/viper/general_model.py"],
                   columns=[("setting", "setting (`viper train`, demo settings)"),
                            ("pearson", "mean Pearson", "{:.3f}"), ("pearson_std", "± std", "{:.3f}"),
                            ("top1", "top-1 (8 classes)", "{:.3f}"), ("top1_std", "± std", "{:.3f}")],
                   notes=notes + "; the general model has no seed")


def main() -> None:
    from viper.jobs.demo import DEMO_TRAIN

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks/out/real_labels",
                        help="real_labels.py's folder by default: its store and runs are reused")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per setting")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 20 epochs; not recorded")
    args = parser.parse_args()
    takes = takes_folder(include_full=False)
    started, began = time.perf_counter(), figures.begin()
    args.work.mkdir(parents=True, exist_ok=True)
    if not (args.work / ".gitignore").exists():
        (args.work / ".gitignore").write_text("*\n")  # benchmark output: never committed
    seeds = list(range(2 if args.quick else args.seeds))
    base = dataclasses.replace(DEMO_TRAIN, epochs=20) if args.quick else DEMO_TRAIN
    store = build_store(args.work, takes, include_full=False, more=("expression",))
    settings = MISSING | {name: changes for name, changes in RECIPE.items() if name not in SAME_RUNS}
    print(f"training {len(settings)} settings x {len(seeds)} seeds: {base}")
    runs = perceiver_runs(store, args.work, base, seeds, settings, dropping=tuple(MISSING))
    missing, recipe = missing_rows(runs), recipe_rows(runs, general_model(store))
    for table in (missing, recipe):
        print("\n" + "\n".join(" | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values())
                               for row in table))
    (args.work / "training_choices.json").write_text(json.dumps(
        {"config": dataclasses.asdict(base), "seeds": seeds, "runs": runs, "missing": missing, "recipe": recipe},
        indent=2))
    if args.quick or args.seeds != 5:
        print("not recorded as figures: --quick or --seeds")
    else:
        record(began, len(seeds), missing, recipe)
    print(f"\nwrote {args.work}/training_choices.json in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
