"""Plain-text tables of results for the terminal (the plots are written by evaluate)."""

from __future__ import annotations

from typing import Any


def metrics_table(metrics: dict[str, Any]) -> str:
    """Per-emotion Pearson, their mean, and top-1 accuracy against chance, as an aligned table."""
    width = max(len("mean Pearson"), *(len(emotion) for emotion in metrics["pearson"]))
    lines = [f"{'emotion':{width}s}  Pearson r", f"{'-' * width}  ---------"]
    lines += [f"{emotion:{width}s}  {r:+.3f}" for emotion, r in metrics["pearson"].items()]
    lines += [f"{'-' * width}  ---------", f"{'mean Pearson':{width}s}  {metrics['mean_pearson']:+.3f}"]
    if "top1_accuracy" in metrics:
        lines.append(
            f"top-1 accuracy {metrics['top1_accuracy']:.1%} (chance: {metrics['chance_top1']:.1%}, the most frequent "
            f"class; {1 / len(metrics['pearson']):.1%} uniform) on {metrics['n']} clips"
        )
    return "\n".join(lines)
