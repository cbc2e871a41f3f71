"""The ablation's baselines beside the Perceiver: ridge on per-clip means, and a small bidirectional GRU."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic import atomic_write_text
from ...registry import Registry
from ...store import FeatureStore
from ..evaluate import write_evaluation


@dataclass(frozen=True)
class Baseline:
    """A model trained beside the Perceiver: `run(features, keys, run_dir, splits, seed, config, epochs)` writes
    OUT/eval-SPLIT/ for every split; `seeded` says whether seeds change it (one run otherwise)."""

    run: Callable[..., None]
    seeded: bool


BASELINES: Registry[Baseline] = Registry("baseline")


def clip_means(data) -> np.ndarray:
    """Per clip, each modality's mean over its valid frames (0 where none) and its share of valid frames."""
    parts, start = [], 0
    for m, dim in enumerate(data.dims):
        mask = data.modality_masks[..., m]  # (V, N)
        values = data.tokens[..., start : start + dim]  # masked frames are 0 already
        start += dim
        count = mask.sum(1, keepdims=True)
        parts += [values.sum(1) / np.maximum(count, 1), count / mask.shape[1]]
    return np.concatenate(parts, axis=1).astype(np.float64)


def ridge(features: Path, keys: list[str], run_dir: Path, splits: Sequence[str], _seed, config, *_unused) -> None:
    """sklearn RidgeCV on per-clip means (deterministic, so one run); centred per person as the Perceiver's tokens
    when the sweep's config asks for `person_norm`."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ...tokens import load_split

    store = FeatureStore.open(features)
    person_norm = bool(config.get("person_norm", False))
    train = load_split(store, keys, "train", person_norm=person_norm)
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 5, 15), alpha_per_target=True))
    model.fit(clip_means(train), train.labels)
    alphas = np.atleast_1d(model[-1].alpha_).tolist()
    atomic_write_text(run_dir / "config.json", json.dumps({"kind": "ridge", "keys": keys, "alphas": alphas}, indent=2))
    for split in splits:
        data = load_split(store, keys, split, person_norm=person_norm)
        predictions = model.predict(clip_means(data)).astype(np.float32)
        write_evaluation(run_dir / f"eval-{split}", predictions, data, split, plots=False)


def gru(features, keys, run_dir, splits, seed, config, epochs=None, hidden: int = 64, lr: float = 1e-3) -> None:
    """A small bidirectional GRU over the standardised frame tokens, masked mean pooling (the MuSe baselines')."""
    import torch

    from ...metrics import pearson_scores
    from ...tokens import load_split, split_ids, standardisation_stats

    store = FeatureStore.open(features)
    person_norm = bool(config.get("person_norm", False))
    train = load_split(store, keys, "train", person_norm=person_norm)
    mean, std = standardisation_stats(train)

    def inputs(data) -> tuple[torch.Tensor, torch.Tensor]:
        valid = np.repeat(data.modality_masks, data.dims, axis=-1)
        x = np.where(valid, (data.tokens - mean) / std, 0).astype(np.float32)
        x = np.concatenate([x, data.modality_masks.astype(np.float32)], axis=-1)
        return torch.from_numpy(x), torch.from_numpy(data.mask)

    class GRU(torch.nn.Module):
        def __init__(self, dim: int, outputs: int) -> None:
            super().__init__()
            self.gru = torch.nn.GRU(dim, hidden, batch_first=True, bidirectional=True)
            self.head = torch.nn.Linear(2 * hidden, outputs)

        def forward(self, x, mask):
            states, _ = self.gru(x)
            weight = mask.float().unsqueeze(-1)
            return self.head((states * weight).sum(1) / weight.sum(1).clamp(min=1))

    torch.manual_seed(seed)
    x_train, m_train = inputs(train)
    y_train = torch.from_numpy(train.labels)
    model = GRU(x_train.shape[-1], y_train.shape[1])
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    has_dev = "dev" in splits and split_ids(store, "dev")
    dev = load_split(store, keys, "dev", person_norm=person_norm) if has_dev else None
    dev_inputs = inputs(dev) if dev is not None else None
    batch = int(config.get("batch_size", 16))
    generator = torch.Generator().manual_seed(seed)
    best_r, best_state, history = -np.inf, None, []
    for epoch in range(1, int(epochs or config.get("epochs", 50)) + 1):
        model.train()
        order = torch.randperm(len(y_train), generator=generator)
        for start in range(0, len(order), batch):
            index = order[start : start + batch]
            loss = torch.nn.functional.mse_loss(model(x_train[index], m_train[index]), y_train[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        row: dict[str, Any] = {"epoch": epoch, "train_loss": loss.item()}
        if dev_inputs is not None:
            model.eval()
            with torch.no_grad():
                row["dev_mean_pearson"] = pearson_scores(model(*dev_inputs).numpy(), dev.labels, dev.emotions)[1]
        history.append(row)
        if dev_inputs is None or row["dev_mean_pearson"] > best_r:
            best_r = row.get("dev_mean_pearson", best_r)
            best_state = {name: value.clone() for name, value in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    info = {"kind": "gru", "keys": keys, "seed": seed, "hidden": hidden, "lr": lr, "history": history}
    atomic_write_text(run_dir / "config.json", json.dumps(info, indent=2))
    for split in splits:
        data = dev if split == "dev" and dev is not None else load_split(store, keys, split, person_norm=person_norm)
        with torch.no_grad():
            predictions = model(*inputs(data)).numpy()
        write_evaluation(run_dir / f"eval-{split}", predictions, data, split, plots=False)


BASELINES.register("ridge", Baseline(ridge, seeded=False))
BASELINES.register("gru", Baseline(gru, seeded=True))
