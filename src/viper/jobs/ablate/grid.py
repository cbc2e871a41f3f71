"""The settings of an ablation: which modality combinations a grid trains, with which fusion, and the sweep's
records."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import SettingError, ViperError
from ...store import FeatureStore
from .baselines import BASELINES

log = logging.getLogger(__name__)


MODALITY_LABELS = {"face_image": "image", "caption": "text", "audio": "audio", "fau": "FAU"}
PAPER_PARTNERS = ("caption", "audio", "fau")  # the paper's order: text, audio, FAU
GRIDS = ("paper", "all")


@dataclass
class Setting:
    name: str  # table label
    slug: str  # folder name under OUT/runs
    keys: list[str]  # store keys, in token order
    kind: str = "perceiver"  # perceiver | ridge | gru
    group: str = "Table 3"  # Table 3 (fusion), Table 2 (visual), baseline
    layout: str = "concat"  # the Perceiver's token layout (viper.model.LAYOUTS)
    modality_dropout: float = 0.0  # training only: probability of masking a whole modality of a clip

    @property
    def seeded(self) -> bool:
        return self.kind == "perceiver" or BASELINES.get(self.kind).seeded

    def robustness_drops(self, store: FeatureStore) -> list[str]:
        """The modalities to remove one at a time when scoring robustness: every one of a fusion setting."""
        if self.kind != "perceiver" or len(self.keys) < 2:
            return []
        return [store.feature_spec(key).modality for key in self.keys]


@dataclass(frozen=True)
class Fusion:
    """A way to train the fusion settings: a token layout and a modality-dropout probability."""

    layout: str = "concat"
    modality_dropout: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Fusion:
        """`concat`, `per_modality`, or either with `:P` for modality dropout P (e.g. `per_modality:0.3`)."""
        from ...model import LAYOUTS

        layout, _, dropout = text.strip().partition(":")
        if layout not in LAYOUTS:
            raise ViperError(f"unknown fusion {text!r}: the layout must be one of {', '.join(LAYOUTS)}")
        try:
            probability = float(dropout) if dropout else 0.0
        except ValueError:
            raise ViperError(f"fusion {text!r}: the modality dropout after ':' must be a number") from None
        if not 0.0 <= probability < 1.0:
            raise ViperError(f"fusion {text!r}: the modality dropout must be in [0, 1)")
        return cls(layout, probability)

    @property
    def is_paper(self) -> bool:
        return self.layout == "concat" and self.modality_dropout == 0.0

    @property
    def label(self) -> str:
        """Suffix of a setting's name and folder; empty for the paper's fusion."""
        if self.is_paper:
            return ""
        dropout = f", dropout {self.modality_dropout:g}" if self.modality_dropout else ""
        return self.layout.replace("_", "-") + dropout


@dataclass
class AblationResult:
    out: Path
    settings: list[Setting]
    splits: list[str]
    ranking_split: str
    best: str | None
    ran: list[str] = field(default_factory=list)  # "slug/seedK" of runs done now
    skipped: list[str] = field(default_factory=list)  # finished before this call
    failed: dict[str, str] = field(default_factory=dict)  # run -> error
    summary: list[dict[str, Any]] = field(default_factory=list)  # one row per setting and split
    robustness: list[dict[str, Any]] = field(default_factory=list)  # per fusion setting, split and removed modality
    seconds: float = 0.0


def _keys_by_modality(store: FeatureStore) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for key in store.extractor_keys():
        keys.setdefault(store.feature_spec(key).modality, []).append(key)
    return keys


def _primary(keys: list[str]) -> str:
    """The key a modality stands for in the grid: the first face-cropped one (a `-nocrop-` key is Table 2)."""
    cropped = [key for key in keys if "-nocrop-" not in key]
    return (cropped or keys)[0]


def label(modality: str) -> str:
    """A modality's name in the tables (the paper's: image, text, audio, FAU)."""
    return MODALITY_LABELS.get(modality, modality)


def grid_settings(
    store: FeatureStore,
    grid: str = "paper",
    baselines: Sequence[str] = ("ridge", "gru"),
    fusions: Sequence[Fusion] = (Fusion(),),
) -> list[Setting]:
    """The settings of a grid on this store: fusion rows (each multi-modality one once per fusion; single modalities
    once), then Table 2's visual rows, then baselines."""
    if grid not in GRIDS:
        raise SettingError("grid", f"{grid!r} is unknown; use {' or '.join(GRIDS)}")
    for name in baselines:
        BASELINES.get(name)  # an unknown name: one message listing the baselines
    by_modality = _keys_by_modality(store)
    if not by_modality:
        raise ViperError(f"{store.root}: the store holds no features; run `viper extract` first")
    for modality, keys in by_modality.items():
        if len(keys) > 1 and modality != "face_image":
            log.warning("%s: several %s keys; the grid uses %s", store.root, modality, _primary(keys))
    primary = {modality: _primary(keys) for modality, keys in by_modality.items()}
    if grid == "paper":
        if "face_image" not in primary:
            raise ViperError(
                f"{store.root}: the paper grid needs face_image features (the store has "
                f"{', '.join(sorted(primary))}); use the `all` grid"
            )
        partners = [m for m in PAPER_PARTNERS if m in primary]
        combos = [("face_image", *c) for r in range(len(partners) + 1) for c in itertools.combinations(partners, r)]
    else:
        names = [m for m in ("face_image", *PAPER_PARTNERS) if m in primary] + sorted(
            m for m in primary if m not in MODALITY_LABELS
        )
        combos = [c for r in range(1, len(names) + 1) for c in itertools.combinations(names, r)]
    settings = []
    for index, fusion in enumerate(fusions):
        for combo in combos:
            if len(combo) == 1 and index > 0:
                continue  # a single modality is trained once, with the first fusion
            name = "+".join(label(m) for m in combo)
            suffix = fusion.label
            settings.append(
                Setting(
                    f"{name} ({suffix})" if suffix else name,
                    f"{name}[{suffix.replace(', ', '-').replace(' ', '')}]" if suffix else name,
                    [primary[m] for m in combo],
                    layout=fusion.layout,
                    modality_dropout=fusion.modality_dropout,
                )
            )
    for key in by_modality.get("face_image", []):
        if key != primary["face_image"]:
            variant = "no crop" if "-nocrop-" in key else key
            settings.append(Setting(f"image ({variant})", f"image[{key}]", [key], group="Table 2"))
    every = [primary[m] for m in combos[-1]]  # the largest combination: every modality of the grid
    for kind in baselines:
        settings.append(
            Setting(f"{kind} baseline ({'+'.join(_short(store, k) for k in every)})", kind, every, kind, "baseline")
        )
    return settings


def _short(store: FeatureStore, key: str) -> str:
    return label(store.feature_spec(key).modality)


def labelled_splits(store: FeatureStore) -> list[str]:
    """dev and test where the store has clips with numeric labels for them (a test split without labels is not
    scored)."""
    from ...tokens import read_labels, split_ids

    splits = []
    for split in ("dev", "test"):
        ids = split_ids(store, split)
        if not ids:
            continue
        try:
            read_labels(store, ids)
        except ViperError as error:
            log.warning("the %s split is not scored: %s", split, error)
            continue
        splits.append(split)
    if not splits:
        raise ViperError(f"{store.root}: neither a labelled dev nor a labelled test split to score the settings on")
    return splits
