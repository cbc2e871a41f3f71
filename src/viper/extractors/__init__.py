"""Per-frame feature extractors: one file per modality backend, found through the registry in base.py."""

from .base import (
    EXTRACTORS,
    Extractor,
    Features,
    available,
    create_extractor,
    parse_spec,
    register_default,
    register_extractor,
)

__all__ = [
    "EXTRACTORS",
    "Extractor",
    "Features",
    "available",
    "create_extractor",
    "parse_spec",
    "register_default",
    "register_extractor",
]
