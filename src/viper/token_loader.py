"""Batches of a split's tokens for training, in torch (viper.tokens itself stays torch-free: prediction and
evaluation build tokens there without importing torch)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from .errors import ViperError
from .tokens import SplitData


class TokenDataset(Dataset):
    """(tokens (N, Σdim), modality masks (N, M), labels (E,)) per clip, as tensors over the split's arrays."""

    def __init__(self, data: SplitData) -> None:
        if data.labels is None:
            raise ViperError("a training dataset needs labels")
        self.tokens = torch.from_numpy(data.tokens)
        self.masks = torch.from_numpy(data.modality_masks)
        self.labels = torch.from_numpy(data.labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.tokens[index], self.masks[index], self.labels[index]


def make_loader(data: SplitData, *, batch_size: int, shuffle_seed: int | None = None) -> DataLoader:
    """Batches of a split; with `shuffle_seed` the order is a function of that seed alone (resumable)."""
    generator = None if shuffle_seed is None else torch.Generator().manual_seed(shuffle_seed)
    return DataLoader(TokenDataset(data), batch_size=batch_size, shuffle=shuffle_seed is not None, generator=generator)
