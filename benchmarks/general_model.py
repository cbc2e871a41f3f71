"""viper's general model zero-shot on people it never saw fitted to: figures and each component's contribution.

    python benchmarks/general_model.py            # about 3 min on 2 idle cores
    python benchmarks/general_model.py --quick    # 12 clips: a smoke test

Data: the 60 RAVDESS actor-05 takes bundled with viper (nothing in the general model was fitted to them; a few
of its settings were chosen on them, see the README) and the four labelled posed images of
../shared/data/pyfeat-samples (other people; skipped when absent). Scored: top-1 over the 7 basic emotions on
the 52 takes that are not `calm`, and over 8 classes on all 60 with `calm` scored as `neutral` (the general model
has no calm); per-class recall. Components, each switched off in turn from the shipped setting: the flip
test-time augmentation, the FER2013 prior shift (0, the shipped 0.5, full 1), the face margin (0, 0.05, 0.1), the
AffectNet expert (0, the shipped 0.25, 0.5), the pooling (plain mean vs the expressive half). Then `viper
predict` itself, as a user runs it, on every clip: seconds per clip (models loaded once) and the process's peak
memory. Writes WORK/general_model.{md,json}
(default WORK: benchmarks/out/general_model).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PYFEAT = REPO.parent / "shared/data/pyfeat-samples"
IMAGE_CODES = {"su": "surprised", "hao": "happy", "anc": "angry", "di": "disgust"}  # see its SOURCE.md
SHIPPED = "shipped (flip, prior 0.5, AffectNet 0.25, margin 0.05, expressive half)"


def labelled_media(quick: bool) -> list[tuple[Path, str, str]]:
    """(path, emotion, kind) of the bundled actor-05 takes and, where ../shared has them, the posed images."""
    from viper.datasets.ravdess import parse_name
    from viper.jobs.demo import demo_clips

    takes = sorted(demo_clips().glob("*.mp4"))
    media = [(path, parse_name(path.stem)["emotion"], "actor05") for path in takes]
    if quick:
        media = media[::5]
    if PYFEAT.is_dir():
        for image in sorted(PYFEAT.glob("*-ph.jpg")):
            media.append((image, IMAGE_CODES[image.stem.split("-")[2]], "image"))
    return media


def decode(media, frames: int = 32):
    """Each clip decoded once with its faces (images: a still frame repeated N times)."""
    from PIL import Image

    from viper.extraction import ExtractConfig, Extraction
    from viper.faces import crop_square
    from viper.sampled_video import SampledVideo

    extraction = Extraction(ExtractConfig(frames=frames, extractors=[]))
    extraction.load()
    clips = []
    for path, _, kind in media:
        if kind != "image":
            clips.append(extraction.clip(path))
            continue
        frame = np.asarray(Image.open(path).convert("RGB"))
        face = extraction.detector.detect([frame])[0]
        box = np.array(face.box if face else [np.nan] * 4, float)
        clips.append(SampledVideo(
            video_id=path.stem, path=path, times=np.zeros(frames), frame_times=np.zeros(frames), repeated=frames - 1,
            frames=[frame] * frames, face_boxes=np.repeat(box[None], frames, 0),
            face_eyes=np.full((frames, 2, 2), np.nan), face_mask=np.full(frames, face is not None),
            face_crops=[crop_square(frame, box) if face else None] * frames, audio=None))
    return clips


def clip_probabilities(clips, options: dict, pooling: str) -> np.ndarray:
    """(clips, 7) general-model probabilities with `expression:general` options and a pooling."""
    import torch

    from viper.extractors import create_extractor
    from viper.general_model import expression_validity, pool_expressions

    extractor = create_extractor("expression:general", options)
    values = torch.from_numpy(np.stack([features.values for features in extractor.extract_batch(clips)]))
    valid = expression_validity(values)
    if pooling == "mean":
        weights = valid.float()[..., None]
        return ((values * weights).sum(1) / weights.sum(1).clamp(min=1)).numpy()
    return pool_expressions(values, valid).numpy()


def score(probs: np.ndarray, media, calm_as_neutral: bool) -> dict:
    """Top-1 and per-class recall of the argmax basic emotion."""
    from viper.extractors.expression_general import BASIC_EMOTIONS

    hits, totals = {}, {}
    for row, (_, emotion, _) in zip(probs, media, strict=True):
        if emotion == "calm" and not calm_as_neutral:
            continue
        truth = "neutral" if emotion == "calm" else emotion
        totals[truth] = totals.get(truth, 0) + 1
        hits[truth] = hits.get(truth, 0) + int(BASIC_EMOTIONS[int(np.argmax(row))] == truth)
    n, correct = sum(totals.values()), sum(hits.values())
    recall = {emotion: f"{hits[emotion]}/{totals[emotion]}" for emotion in BASIC_EMOTIONS if emotion in totals}
    return {"correct": correct, "n": n, "top1": correct / max(n, 1), "recall": recall}


def components(clips, media) -> list[dict]:
    """Every variant scored on the actor-05 takes (7 and 8 classes) and on the images."""
    from viper.extractors.expression_general import ExpressionConfig

    shipped = dataclasses.asdict(ExpressionConfig())
    variants = [(SHIPPED, {}, "half"), ("no flip", {"flip": False}, "half"),
                ("prior shift 0", {"prior_shift": 0.0}, "half"), ("prior shift 1 (full)", {"prior_shift": 1.0}, "half"),
                ("margin 0", {"margin": 0.0}, "half"), ("margin 0.1", {"margin": 0.1}, "half"),
                ("no AffectNet (mini-Xception alone)", {"affectnet": 0.0}, "half"),
                ("AffectNet weight 0.5", {"affectnet": 0.5}, "half"), ("plain mean pooling", {}, "mean"),
                ("mini-Xception as viper had it (no flip, prior 0, mean)",
                 {"flip": False, "prior_shift": 0.0, "affectnet": 0.0}, "mean")]
    takes = [i for i, (_, _, kind) in enumerate(media) if kind == "actor05"]
    images = [i for i, (_, _, kind) in enumerate(media) if kind == "image"]
    rows = []
    for name, changes, pooling in variants:
        probs = clip_probabilities(clips, {**shipped, **changes}, pooling)
        row = {"variant": name, "options": {**shipped, **changes}, "pooling": pooling,
               "actor05_7": score(probs[takes], [media[i] for i in takes], False),
               "actor05_8": score(probs[takes], [media[i] for i in takes], True)}
        if images:
            row["images"] = score(probs[images], [media[i] for i in images], False)
        rows.append(row)
        print(f"{name}: {row['actor05_7']['correct']}/{row['actor05_7']['n']}", flush=True)
    return rows


def checkpoint_on_images(run: Path, clips, media) -> dict:
    """A trained checkpoint on the posed images of other people, beside the general model: the argmax over its
    outputs that are basic emotions (a RAVDESS run also predicts `calm`, which no image is)."""
    from viper.checkpoint import predict_arrays
    from viper.extractors.expression_general import BASIC_EMOTIONS
    from viper.jobs.predict import Predictor
    from viper.tokens import build_tokens

    predictor = Predictor(run)  # the checkpoint's own extractors, on the clips decoded with the default face settings
    bundle = predictor.bundle
    images = [clips[i] for i, (_, _, kind) in enumerate(media) if kind == "image"]
    chosen = [media[i] for i, (_, _, kind) in enumerate(media) if kind == "image"]
    features = {key: extractor.extract_batch(images)
                for _, keys in predictor.extractions for key, extractor in keys.items()}
    tokens, _, masks = zip(*(build_tokens({key: features[key][j] for key in bundle.keys}, bundle.keys)
                             for j in range(len(images))), strict=True)
    scores = predict_arrays(bundle, np.stack(tokens), np.stack(masks))
    basic = [i for i, emotion in enumerate(bundle.emotions) if emotion in BASIC_EMOTIONS]
    probs = np.full((len(chosen), len(BASIC_EMOTIONS)), -np.inf)  # emotions the checkpoint lacks never win
    for column in basic:
        probs[:, BASIC_EMOTIONS.index(bundle.emotions[column])] = scores[:, column]
    return score(probs, chosen, False)


def predict_cost(paths: list[Path]) -> dict:
    """`viper.predict` on every clip in a fresh process: seconds per clip after loading, and peak memory."""
    code = (
        "import json, resource, sys, time\n"
        "from viper.jobs.predict import Predictor\n"
        "t0 = time.perf_counter(); predictor = Predictor(None); loaded = time.perf_counter() - t0\n"
        "t1 = time.perf_counter(); done = sum(1 for _ in predictor.many(sys.argv[1:]))\n"
        "run = time.perf_counter() - t1\n"
        "print(json.dumps({'load_s': loaded, 'per_clip_s': run / done, 'clips': done,\n"
        "                  'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", code, *map(str, paths)], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown(rows: list[dict], cost: dict, load: str) -> str:
    lines = ["| variant | actor 05, 7 classes | actor 05, 8 with calm as neutral | posed images (other people) |",
             "|---|---|---|---|"]
    for row in rows:
        a7, a8, image = row["actor05_7"], row["actor05_8"], row.get("images")
        shown = f"{image['correct']}/{image['n']}" if image else "n/a"
        lines.append(f"| {row['variant']} | {a7['correct']}/{a7['n']} ({a7['top1']:.1%}) | "
                     f"{a8['correct']}/{a8['n']} ({a8['top1']:.1%}) | {shown} |")
    recall = rows[0]["actor05_7"]["recall"]
    lines += ["", "Per-class recall, shipped setting, actor 05: " + ", ".join(f"{k} {v}" for k, v in recall.items()),
              "", f"`viper predict` (general model): {cost['per_clip_s']:.2f} s per clip after {cost['load_s']:.1f} s "
              f"of loading, peak memory {cost['peak_mb']:.0f} MB, {cost['clips']} clips; load average {load}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks/out/general_model")
    parser.add_argument("--checkpoint", type=Path, help="a trained run to score on the posed images too")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    media = labelled_media(args.quick)
    clips = decode(media)
    rows = components(clips, media)
    cost = predict_cost([path for path, _, kind in media if kind == "actor05"])
    load = os.getloadavg()
    table = markdown(rows, cost, f"{load[0]:.1f}")
    if args.checkpoint and any(kind == "image" for _, _, kind in media):
        trained = checkpoint_on_images(args.checkpoint, clips, media)
        table += (f"\n\nOn the posed images of other people: {args.checkpoint} {trained['correct']}/{trained['n']} "
                  f"({trained['recall']}), the general model {rows[0]['images']['correct']}/{rows[0]['images']['n']} "
                  f"({rows[0]['images']['recall']})")
    print(table)
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "general_model.md").write_text(table + "\n")
    (args.work / "general_model.json").write_text(json.dumps({"variants": rows, "predict": cost}, indent=1))
    print(f"[{time.perf_counter() - started:.0f} s] {args.work / 'general_model.md'}")


if __name__ == "__main__":
    main()
