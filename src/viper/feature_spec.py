"""What a stored modality is, as one typed record: the store keys its features by it, checkpoints carry it, and
prediction, inspection and ablation read it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FeatureSpec:
    """The extractor that made a modality (modality, backend, version, config), how its clips were sampled
    (frames, face settings), its width and its store key. Saved as `extractor.json` beside the features and in
    every checkpoint; fields a record does not have (older stores, imported features) stay None and are not
    written back, so records round-trip unchanged."""

    modality: str
    backend: str | None = None
    version: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    frames: int | None = None
    face_crop: bool | None = None
    face_detector: str | None = None
    face_margin: float | None = None
    faces: str | None = None  # whose face (face_choice): recorded only when not the largest, so older keys hold
    dim: int | None = None
    key: str | None = None

    @property
    def name(self) -> str:
        """`modality:backend`, as `viper extract --extractors` takes it."""
        return f"{self.modality}:{self.backend}"

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> FeatureSpec:
        names = {option.name for option in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in record.items() if name in names})

    def to_dict(self) -> dict[str, Any]:
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}

    def identity(self) -> dict[str, Any]:
        """What the store key hashes: everything but the width and the key itself."""
        return {name: value for name, value in self.to_dict().items() if name not in ("dim", "key")}

    def describe(self) -> str:
        return f"{self.key} ({self.name} v{self.version}, config {self.config}, dim {self.dim})"
