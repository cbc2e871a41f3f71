"""What a training run reports besides its weights: RUN/history.csv (always), TensorBoard scalars (only when asked
for: tensorboard is an optional package), and how far an anchored model moved from the general model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_text
from ..errors import SettingError

TENSORBOARD_TAGS = {
    "lr": "lr",
    "train_loss": "loss/train",
    "dev_loss": "loss/dev",
    "dev_mean_pearson": "pearson/dev_mean",
}
# below this share of the general model's own error the model is, for a user, the general model still
BARELY_MOVED = 0.05
SMALL_DATA_RECIPE = "--lr 1e-3 --lr-step-epochs 20 --epochs 60 --batch-size 8"


def write_history(history: list[dict[str, Any]], path: Path) -> None:
    import pandas as pd

    atomic_write_text(path, pd.DataFrame(history).to_csv(index=False))


def summary_writer():
    """TensorBoard's SummaryWriter class, imported only when asked for; without the tensorboard package a
    SettingError says how to get it, before the run folder is made."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise SettingError("tensorboard", "needs the tensorboard package: pip install 'viper-emotion[tensorboard]' "
                           "(RUN/history.csv holds the same numbers without it)") from None
    return SummaryWriter


def log_scalars(writer, row: dict[str, Any], epoch: int) -> None:
    """One epoch's row of history.csv as TensorBoard scalars (`loss/train`, `pearson/dev_<emotion>`, ...)."""
    for name, value in row.items():
        if name in TENSORBOARD_TAGS or name.startswith("dev_pearson_"):
            writer.add_scalar(TENSORBOARD_TAGS.get(name, name.replace("dev_pearson_", "pearson/dev_")), value, epoch)
    writer.flush()


@dataclass
class AnchorMovement:
    """How far an anchored model's scores are from its anchor's (the general model's) on one split's clips."""

    split: str
    change: float  # mean |model - general model| over the clips and the outputs that have a prior
    anchor_error: float  # mean |general model - label| there: the scale of what training could correct

    @property
    def share(self) -> float:
        return self.change / self.anchor_error if self.anchor_error else 0.0

    def line(self) -> str:
        """One line for the end of `viper train`; when the model barely moved, what to change."""
        text = (f"moved from the general model (its anchor) by {self.change:.4f} on average on {self.split}, "
                f"{self.share:.1%} of the general model's own mean error there ({self.anchor_error:.4f})")
        if self.share >= BARELY_MOVED:
            return text
        return (f"{text}: barely, so it scores almost as the general model does. To learn more from small data: "
                f"{SMALL_DATA_RECIPE} (the README's recipe), or a lower --anchor-shrink")


def anchor_movement(model, data, split: str, batch_size: int = 256) -> AnchorMovement | None:
    """The AnchorMovement of `model` (a Perceiver) on `data` (tokens.load_split's), or None when not anchored."""
    import torch

    from ..checkpoint import predict_model

    if model.config.anchor_start < 0:
        return None
    scores = predict_model(model, data.tokens, data.modality_masks)
    with torch.no_grad():
        prior = np.concatenate([model.prior(torch.as_tensor(np.asarray(data.tokens[start : start + batch_size]),
                                                            device=model.anchor_used.device)).cpu().numpy()
                                for start in range(0, len(data.tokens), batch_size)])
    used = model.anchor_used.bool().cpu().numpy()
    return AnchorMovement(split, float(np.abs(scores - prior)[:, used].mean()),
                          float(np.abs(prior - data.labels)[:, used].mean()))
