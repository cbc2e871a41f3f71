"""The numbers viper reports: per-emotion Pearson and CCC, top-1 against chance, macro-F1 and UAR of the argmax
emotion, a terminal table of them, and a paired bootstrap test between two models.

Paired bootstrap: both models' predictions (V, E) are scored on the same V clips. Each of B resamples draws V
clips with replacement (the same draw for both models), recomputes each model's mean-over-emotions Pearson r (an
undefined r counts as 0, as in `pearson_scores`), and keeps the difference. The two-sided p-value is
`min(1, 2 * min(P(d* <= 0), P(d* >= 0)))` over the resampled differences d*: identical predictions give d* = 0
every time and p = 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def pearson_scores(predictions: np.ndarray, truth: np.ndarray, emotions: Sequence[str]):
    """Per-emotion Pearson r (scipy.stats.pearsonr) and their mean.

    r is undefined for a constant column (or fewer than two clips); it counts as 0, and those emotions are
    returned so the caller can say so. Returns ({emotion: r}, mean r, [undefined emotions]).
    """
    from scipy.stats import pearsonr

    scores, undefined = {}, []
    for column, emotion in enumerate(emotions):
        pred, true = predictions[:, column].astype(np.float64), truth[:, column].astype(np.float64)
        r = np.nan
        if len(pred) >= 2 and np.ptp(pred) > 0 and np.ptp(true) > 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = float(pearsonr(pred, true).statistic)
        if not np.isfinite(r):
            undefined.append(emotion)
            r = 0.0
        scores[emotion] = r
    return scores, float(np.mean(list(scores.values()))), undefined


def top1(predictions: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Accuracy of argmax(predicted) vs argmax(true), and the rate of the most frequent true class (chance)."""
    true_class = truth.argmax(1)
    accuracy = float((predictions.argmax(1) == true_class).mean())
    chance = float(np.bincount(true_class).max() / len(true_class))
    return accuracy, chance


def ccc_scores(predictions: np.ndarray, truth: np.ndarray, emotions: Sequence[str]) -> tuple[dict[str, float], float]:
    """Per-emotion concordance correlation (Lin 1989: 2 cov / (var_p + var_t + (mean_p - mean_t)^2), population
    moments; the continuous-emotion challenges' metric) and their mean. Unlike Pearson it also punishes a shifted or
    rescaled prediction; a column where both are constant and equal counts as 1, constant and different as 0."""
    scores = {}
    for column, emotion in enumerate(emotions):
        pred, true = predictions[:, column].astype(np.float64), truth[:, column].astype(np.float64)
        denominator = pred.var() + true.var() + (pred.mean() - true.mean()) ** 2
        covariance = ((pred - pred.mean()) * (true - true.mean())).mean()
        scores[emotion] = float(2 * covariance / denominator) if denominator > 1e-12 else 1.0
    return scores, float(np.mean(list(scores.values())))


def class_scores(predictions: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """For class labels (the argmax emotion): macro-F1 over the classes that occur in truth or predictions, and
    UAR (unweighted average recall: the mean recall of the true classes), as the categorical challenges report."""
    from sklearn.metrics import f1_score, recall_score

    true_class, predicted = truth.argmax(1), predictions.argmax(1)
    present = np.unique(true_class)
    return {"macro_f1": float(f1_score(true_class, predicted, average="macro", zero_division=0)),
            "uar": float(recall_score(true_class, predicted, labels=present, average="macro", zero_division=0))}


def metrics_table(metrics: dict[str, Any]) -> str:
    """Per-emotion Pearson (and CCC), their means, top-1 accuracy against chance, macro-F1 and UAR, as a table."""
    ccc = metrics.get("ccc")  # reports written before CCC have none
    width = max(len("mean"), len("emotion"), *(len(emotion) for emotion in metrics["pearson"]))

    def row(name: str, pearson: str, concordance: str) -> str:
        return f"{name:{width}s}  {pearson:>9s}" + (f"  {concordance:>7s}" if ccc else "")

    rule = row("-" * width, "-" * 9, "-" * 7)
    lines = [row("emotion", "Pearson r", "CCC"), rule]
    lines += [row(emotion, f"{r:+.3f}", f"{ccc[emotion]:+.3f}" if ccc else "")
              for emotion, r in metrics["pearson"].items()]
    lines += [rule, row("mean", f"{metrics['mean_pearson']:+.3f}", f"{metrics['mean_ccc']:+.3f}" if ccc else "")]
    if "top1_accuracy" in metrics:
        lines.append(
            f"top-1 accuracy {metrics['top1_accuracy']:.1%} (chance: {metrics['chance_top1']:.1%}, the most frequent "
            f"class; {1 / len(metrics['pearson']):.1%} uniform) on {metrics['n']} clips"
        )
    if "macro_f1" in metrics:
        lines.append(f"macro-F1 {metrics['macro_f1']:.3f}, UAR {metrics['uar']:.3f} (of the argmax emotion)")
    return "\n".join(lines)

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0


@dataclass
class BootstrapResult:
    difference: float  # observed mean Pearson of a minus that of b
    ci_low: float  # 2.5 % and 97.5 % percentiles of the resampled differences
    ci_high: float
    p_value: float  # two-sided
    resamples: int


def mean_pearson_rows(predictions: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean-over-emotions Pearson r for a batch of resamples: predictions and truth (B, V, E) -> (B,)."""
    pred = predictions - predictions.mean(axis=1, keepdims=True)
    true = truth - truth.mean(axis=1, keepdims=True)
    cov = (pred * true).sum(axis=1)
    scale = np.sqrt((pred**2).sum(axis=1) * (true**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(scale > 1e-12, cov / np.where(scale > 1e-12, scale, 1.0), 0.0)
    return r.mean(axis=-1)


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    truth: np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    chunk: int = 250,
) -> BootstrapResult:
    """Paired bootstrap of mean Pearson(a) - mean Pearson(b) over clips; a, b, truth are (V, E) on the same clips."""
    a, b, truth = (np.asarray(x, np.float64) for x in (a, b, truth))
    if a.shape != b.shape or a.shape != truth.shape or a.ndim != 2:
        raise ValueError(f"predictions and truth must be (V, E) of one shape, got {a.shape}, {b.shape}, {truth.shape}")
    clips = len(truth)
    observed = float(mean_pearson_rows(a[None], truth[None])[0] - mean_pearson_rows(b[None], truth[None])[0])
    rng = np.random.default_rng(seed)
    differences = []
    for start in range(0, resamples, chunk):
        index = rng.integers(0, clips, size=(min(chunk, resamples - start), clips))
        t = truth[index]
        differences.append(mean_pearson_rows(a[index], t) - mean_pearson_rows(b[index], t))
    d = np.concatenate(differences) if differences else np.zeros(0)
    if len(d) == 0:
        return BootstrapResult(observed, float("nan"), float("nan"), float("nan"), 0)
    d = np.where(np.abs(d) < 1e-12, 0.0, d)  # float noise of identical predictions is no difference
    p = min(1.0, 2.0 * min(float(np.mean(d <= 0)), float(np.mean(d >= 0))))
    low, high = np.percentile(d, [2.5, 97.5])
    return BootstrapResult(observed, float(low), float(high), p, len(d))
