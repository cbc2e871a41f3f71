"""`viper demo`: the whole method on real labelled clips that ship with viper (RAVDESS actor 05, 60 takes).

Labels are the emotions the actor portrayed (from RAVDESS file names): one column per emotion, 1.0 at strong
intensity, 0.5 at normal, 0 otherwise. Train on statement 01, test on statement 02 (never the same take on
both sides, always the same person). No dev split: the last epoch is kept.
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

from ..progress import Hook, notify
from .train import TrainConfig

# Tiny data of one person: lr and epochs for 30 clips, and the recipe for few people (see README): only the
# person-general evidence (blendshapes + expression networks trained on many people), anchored on the general model.
# One actor cannot be split by person, so train and test share actor 05 on purpose: the demo's scores say how well
# the model reads this actor's emotions in a sentence it was not trained on, not how it does on someone new.
DEMO_TRAIN = TrainConfig(modalities=["fau", "expression"], epochs=60, lr=1e-3, lr_step_epochs=20, batch_size=8,
                         allow_shared_people=True)


def demo_clips() -> Path:
    return Path(str(resources.files("viper") / "demo_data" / "ravdess-actor05"))


def run_demo(out: Path, workers: int = 2, frames: int = 32, config: TrainConfig = DEMO_TRAIN,
             hook: Hook | None = None) -> dict:
    """Extract -> train -> evaluate on the bundled clips; the hook hears each stage, the results table and where
    the report is (the CLI prints them)."""
    from ..datasets.ravdess import write_ravdess_manifest
    from ..metrics import metrics_table
    from .evaluate import evaluate
    from .extract import extract
    from .train import train

    def say(text: str) -> None:
        notify(hook, "demo", message=text)

    out = Path(out)
    started = time.perf_counter()
    manifest = out / "manifest.csv"
    rows = write_ravdess_manifest(demo_clips(), manifest)
    say(f"[1/3] {rows} real RAVDESS clips (actor 05) -> {manifest}; extracting features ...")
    summary = extract(manifest, out / "store", frames=frames, workers=workers, hook=hook)
    for line in summary.lines():
        say("      " + line)
    say(f"[2/3] training the Perceiver (compact preset) on statement 01 ({', '.join(config.modalities or ['all'])}"
        f"{', anchored on the general model' if config.anchor else ''}) ...")
    train(out / "store", out / "run", config, hook=hook)
    say("[3/3] evaluating on statement 02 (test) ...")
    metrics = evaluate(out / "run", out / "store", "test", out / "report")
    say(metrics_table(metrics))
    say(f"report (metrics.json, predictions.csv, plots): {out / 'report'}  [{time.perf_counter() - started:.0f} s]")
    say(f"next: viper predict VIDEO --checkpoint {out / 'run'}   (or without --checkpoint: viper's general model)")
    return metrics
