"""The sweep's outputs: runs.csv/json, report.md/html with significance tests, and plots."""

from __future__ import annotations

import base64
import html
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic import atomic_write_bytes, atomic_write_text
from ...store import FeatureStore
from .grid import AblationResult, label

log = logging.getLogger(__name__)


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
                        # runs scored before these metrics existed have none: NaN, shown as "—"
                        **{name: metrics.get(name, float("nan")) for name in ("mean_ccc", "macro_f1", "uar")},
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

    from ...metrics import DEFAULT_SEED, paired_bootstrap
    from ...tokens import read_labels

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
                    **{name: float(np.mean([row[name] for row in mine])) for name in ("mean_ccc", "macro_f1", "uar")},
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
    header = ["setting", "full", *(f"without {label(m)}" for m in removable), "worst drop"]
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
        "over seeds; CCC: mean concordance correlation over the emotions; top-1, macro-F1, UAR (unweighted "
        "average recall): of the argmax emotion, means over seeds.",
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
    header = ["setting", "group", "runs", "mean r (± std)", "Δ", "p", "CCC", "top-1", "macro-F1", "UAR", *emotions]
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
                _number(row["mean_ccc"], "{:.3f}"),
                f"{row['top1']:.1%}",
                _number(row["macro_f1"], "{:.3f}"),
                _number(row["uar"], "{:.3f}"),
                *(f"{row['pearson'][e]:.3f}" for e in emotions),
            ]
        )
        bold.append(row["slug"] == result.best)
    return header, body, bold


def _number(value: float, form: str) -> str:
    return "—" if np.isnan(value) else form.format(value)


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
    axis.set_xticks(range(len(removed)), ["full" if r == "none" else f"without {label(r)}" for r in removed],
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
