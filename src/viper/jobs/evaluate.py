"""Scores of a trained run on a split of a feature store: per-emotion Pearson, predictions CSV and plots."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_bytes, atomic_write_text
from ..checkpoint import ModelBundle, check_store, load_checkpoint, predict_arrays
from ..errors import ViperError
from ..metrics import ccc_scores, class_scores, pearson_scores, top1
from ..store import FeatureStore
from ..tokens import load_split, normalise_split

log = logging.getLogger(__name__)


def resolve_drop(bundle: ModelBundle, drop: Sequence[str] | None) -> tuple[list[int], list[str]]:
    """Token positions and modality names of the modalities to mask, given as modality names or store keys."""
    positions: list[int] = []
    for name in drop or []:
        found = [i for i, feature in enumerate(bundle.features) if name in (feature.key, feature.modality)]
        if not found:
            have = ", ".join(f"{feature.modality} ({feature.key})" for feature in bundle.features)
            raise ViperError(f"cannot drop {name!r}: {bundle.path} was trained on {have}")
        positions += [i for i in found if i not in positions]
    positions.sort()
    return positions, [bundle.features[i].modality or bundle.features[i].key for i in positions]


def eval_folder(run_dir: Path, split: str, dropped: Sequence[str] | None = None) -> Path:
    """The default report folder: RUN/eval-SPLIT, or RUN/eval-SPLIT-without-A-B with modalities dropped (one
    folder name whatever the checkpoint calls its modalities)."""
    from ..filenames import safe_name

    return run_dir / safe_name(f"eval-{split}" + (f"-without-{'-'.join(dropped)}" if dropped else ""))


def evaluate(
    run: Path | str,
    features: Path | str,
    split: str = "test",
    out: Path | str | None = None,
    *,
    plots: bool = True,
    drop: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Score a run on a split; writes metrics.json, predictions.csv and plots to `out` (default RUN/eval-SPLIT).

    metrics.json is `{"pearson": {emotion: r}, "mean_pearson": r, "n": clips}` plus top-1 accuracy of the argmax
    emotion, its chance level (most frequent true class), and the emotions whose r was undefined (counted as 0).
    `drop` (modality names or store keys) scores with those modalities masked in every frame, as if they were
    missing; metrics.json then says which under "dropped" and the default folder is RUN/eval-SPLIT-without-NAMES.
    A run trained with `person_norm` is scored on tokens centred on each person's mean over the split's clips.
    """
    bundle = load_checkpoint(run)
    positions, dropped = resolve_drop(bundle, drop)
    store = FeatureStore.open(features)
    check_store(bundle, store)
    split = normalise_split(split)
    data = load_split(store, bundle.keys, split, person_norm=bundle.train_config.get("person_norm", False))
    if data.emotions != bundle.emotions:
        raise ViperError(f"{store.root}: emotions {data.emotions} differ from the model's {bundle.emotions}")
    if positions:
        data.modality_masks[..., positions] = False
        data.mask = data.modality_masks.any(-1)
    predictions = predict_arrays(bundle, data.tokens, data.modality_masks)
    folder = Path(out) if out is not None else eval_folder(bundle.path.parent, split, dropped)
    return write_evaluation(folder, predictions, data, split, plots=plots, dropped=dropped or None)


def write_evaluation(
    folder: Path, predictions: np.ndarray, data, split: str, *, plots: bool = True, dropped: list[str] | None = None
) -> dict[str, Any]:
    """metrics.json, predictions.csv (and plots) of predictions (V, E) for a split's `SplitData`; `dropped`: the
    modalities that were masked, recorded in metrics.json when given."""
    import pandas as pd

    scores, mean_r, undefined = pearson_scores(predictions, data.labels, data.emotions)
    if undefined:
        log.warning("Pearson r undefined (constant predictions or labels) for %s; counted as 0", ", ".join(undefined))
    accuracy, chance = top1(predictions, data.labels)
    ccc, mean_ccc = ccc_scores(predictions, data.labels, data.emotions)
    metrics = {
        "pearson": scores,
        "mean_pearson": mean_r,
        "ccc": ccc,
        "mean_ccc": mean_ccc,
        "n": len(data),
        "top1_accuracy": accuracy,
        "chance_top1": chance,
        **class_scores(predictions, data.labels),
        "undefined_pearson": undefined,
        "split": split,
    }
    if dropped:
        metrics["dropped"] = list(dropped)
    table = pd.DataFrame(predictions, columns=data.emotions)
    table.insert(0, "video_id", data.video_ids)
    atomic_write_text(folder / "predictions.csv", table.to_csv(index=False))
    atomic_write_text(folder / "metrics.json", json.dumps(metrics, indent=2))
    if plots:
        plot_results(predictions, data.labels, data.emotions, scores, folder)
    return metrics


def plot_results(
    predictions: np.ndarray, truth: np.ndarray, emotions: Sequence[str], scores: dict[str, float], folder: Path
) -> None:
    """scatter.png (predicted vs true per emotion), pearson.png (bars), confusion.png (argmax classes).

    Figures are drawn without pyplot, so no global matplotlib backend is switched in the caller's process."""
    from matplotlib.figure import Figure

    columns = min(4, len(emotions))
    rows = -(-len(emotions) // columns)
    figure = Figure(figsize=(3.2 * columns, 3.0 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis, (column, emotion) in zip(axes.flat, enumerate(emotions), strict=False):
        axis.scatter(truth[:, column], predictions[:, column], s=10, alpha=0.6)
        low = min(truth[:, column].min(), predictions[:, column].min())
        high = max(truth[:, column].max(), predictions[:, column].max())
        axis.plot([low, high], [low, high], color="grey", linewidth=0.8)
        axis.set_title(f"{emotion} (r = {scores[emotion]:.2f})", fontsize=9)
        axis.set_xlabel("true", fontsize=8)
        axis.set_ylabel("predicted", fontsize=8)
    for axis in list(axes.flat)[len(emotions) :]:
        axis.set_visible(False)
    _save(figure, folder / "scatter.png")

    figure = Figure(figsize=(1.0 + 0.7 * len(emotions), 3.5))
    axis = figure.subplots()
    axis.bar(list(emotions), [scores[emotion] for emotion in emotions])
    axis.axhline(0, color="grey", linewidth=0.8)
    axis.set_ylabel("Pearson r")
    axis.set_title(f"mean r = {np.mean(list(scores.values())):.3f}")
    axis.tick_params(axis="x", rotation=45)
    _save(figure, folder / "pearson.png")

    count = len(emotions)
    matrix = np.zeros((count, count), int)
    np.add.at(matrix, (truth.argmax(1), predictions.argmax(1)), 1)
    figure = Figure(figsize=(1.5 + 0.6 * count, 1.2 + 0.6 * count))
    axis = figure.subplots()
    axis.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        color = "white" if value > matrix.max() / 2 else "black"
        axis.text(j, i, str(value), ha="center", va="center", fontsize=8, color=color)
    axis.set_xticks(range(count), emotions, rotation=45, ha="right")
    axis.set_yticks(range(count), emotions)
    axis.set_xlabel("predicted (argmax)")
    axis.set_ylabel("true (argmax)")
    axis.set_title("argmax emotion: counts")
    _save(figure, folder / "confusion.png")


def _save(figure, path: Path) -> None:
    import io

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=120)
    atomic_write_bytes(path, buffer.getvalue())
