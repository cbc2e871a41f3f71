"""A MuSe 2022 Reaction submission: a trained run's scores for the test clips, in the challenge's own format.

Format (EIHW/MuSe2022 eval.py `write_reaction_predictions`): CSV with `File_ID` as partition.csv writes it (in
brackets, `[00001]`), then one column per emotion in the challenge's order (Adoration ... Surprise), no index.
The test split has no labels, so unlike `viper evaluate` nothing is scored.
"""

from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_write_text
from ..checkpoint import check_store, load_checkpoint, predict_arrays
from ..datasets.hume_reaction import EMOTIONS
from ..errors import ViperError
from ..store import FeatureStore
from ..tokens import load_split


def write_submission(run: Path | str, features: Path | str, out: Path | str, split: str = "test") -> int:
    """Write the run's predictions for a split of the store to `out`; returns the number of clips."""
    import pandas as pd

    bundle = load_checkpoint(run)
    if list(bundle.emotions) != list(EMOTIONS):
        raise ViperError(
            f"{bundle.path} predicts {', '.join(bundle.emotions)}; a Hume-Reaction submission needs "
            f"{', '.join(EMOTIONS)} (train on a store made from the challenge data)"
        )
    store = FeatureStore.open(features)
    check_store(bundle, store)
    data = load_split(store, bundle.keys, split, labels=False,
                      person_norm=bundle.train_config.get("person_norm", False))
    predictions = predict_arrays(bundle, data.tokens, data.modality_masks)
    table = pd.DataFrame(predictions, columns=list(EMOTIONS))
    table.insert(0, "File_ID", [f"[{video_id}]" for video_id in data.video_ids])
    atomic_write_text(Path(out), table.to_csv(index=False))
    return len(table)
