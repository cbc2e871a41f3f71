"""The extractor contract and its registry: a new modality or backend is one new file with one decorator."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..config import from_dict, to_dict
from ..errors import ViperError
from ..registry import Registry

if TYPE_CHECKING:
    from ..sampled_video import SampledVideo


@dataclass
class Features:
    """Per-frame vectors of one modality: values (N, dim) float32, zero where mask (N,) is False."""

    values: np.ndarray
    mask: np.ndarray

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        self.mask = np.asarray(self.mask, dtype=bool)
        if self.values.ndim != 2 or self.mask.shape != (self.values.shape[0],):
            raise ValueError(f"need values (N, dim) and mask (N,), not {self.values.shape} / {self.mask.shape}")
        self.values[~self.mask] = 0.0  # masked frames carry no invented values


@dataclass
class NoOptions:
    """Config of an extractor without options."""


class Extractor(ABC):
    """One modality computed by one backend: name, version, dim, config, and `extract(clip) -> Features`.

    Models load in `load()` (called once per process, before the first clip), never at import or construction,
    so listing or hashing extractors is free.
    """

    modality: ClassVar[str]
    backend: ClassVar[str]
    version: ClassVar[str] = "1"
    Config: ClassVar[type] = NoOptions

    def __init__(self, config: Any = None, device: str = "cpu") -> None:
        self.config = config if config is not None else self.Config()
        self.device = device
        self._loaded = False

    @property
    def name(self) -> str:
        return f"{self.modality}:{self.backend}"

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of each per-frame vector."""

    def identity(self) -> dict[str, Any]:
        """What makes features comparable: cached features are keyed by it, checkpoints record it."""
        config = to_dict(self.config)
        for option in dataclasses.fields(self.config):
            if not option.metadata.get("identity", True):
                config.pop(option.name)  # e.g. batch size: how features are computed, not what they are
        return {"modality": self.modality, "backend": self.backend, "version": self.version, "config": config}

    def ensure_loaded(self) -> None:
        if not self._loaded:
            self.load()
            self._loaded = True

    def load(self) -> None:
        """Load weights (once per process)."""

    def extract(self, clip: SampledVideo) -> Features:
        """Per-frame features of one clip."""
        return self.extract_batch([clip])[0]

    @abstractmethod
    def extract_batch(self, clips: list[SampledVideo]) -> list[Features]:
        """Per-frame features of several clips; backends with a model batch their forward passes across them."""


EXTRACTORS: Registry[type[Extractor]] = Registry("extractor", "viper.extractors")  # by "modality:backend"
DEFAULT_BACKENDS: dict[str, str] = {}


def register_extractor(cls: type[Extractor], default: bool = False):
    """Class decorator: `@register_extractor` (or `register_extractor(default=True)` for the offline default)."""
    EXTRACTORS.register(f"{cls.modality}:{cls.backend}", cls)
    if default:
        DEFAULT_BACKENDS[cls.modality] = cls.backend
    return cls


def register_default(cls: type[Extractor]) -> type[Extractor]:
    return register_extractor(cls, default=True)


def available() -> list[str]:
    """Every registered `modality:backend`, defaults first."""
    pairs = [tuple(name.split(":")) for name in EXTRACTORS.names()]
    pairs.sort(key=lambda item: (item[0], DEFAULT_BACKENDS.get(item[0]) != item[1], item[1]))
    return [f"{modality}:{backend}" for modality, backend in pairs]


def parse_spec(spec: str) -> tuple[str, str]:
    """`face_image` -> its default backend; `face_image:vit` -> that backend."""
    EXTRACTORS.discover()
    modality, _, backend = spec.strip().partition(":")
    if not backend:
        if modality not in DEFAULT_BACKENDS:
            raise ViperError(f"unknown extractor {spec!r}; available: {', '.join(available())}")
        backend = DEFAULT_BACKENDS[modality]
    if f"{modality}:{backend}" not in EXTRACTORS:
        raise ViperError(f"unknown extractor {spec!r}; available: {', '.join(available())}")
    return modality, backend


def create_extractor(spec: str, options: dict[str, Any] | None = None, device: str = "cpu") -> Extractor:
    """Build an extractor from `modality[:backend]` and its options (the fields of its Config)."""
    name = ":".join(parse_spec(spec))
    cls = EXTRACTORS.get(name)
    try:
        config = from_dict(cls.Config, options or {}, check_types=True) if dataclasses.is_dataclass(cls.Config) \
            else None
    except ViperError as error:  # which extractor the option belongs to: a config file holds several
        raise ViperError(f"{name}: {error}") from None
    return cls(config=config, device=device)
