"""One registry for every pluggable part (extractors, face detectors, dataset layouts, ablation baselines): a
part is registered once under its name, a second registration of that name is refused, and an unknown name is
one message listing what there is. A registry may name a package whose modules register their parts when first
imported, so listing or looking up never needs the parts' heavy libraries."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

from .errors import ViperError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named parts of one kind (`kind` words the messages: "extractor", "face detector", ...)."""

    def __init__(self, kind: str, package: str | None = None) -> None:
        self.kind = kind
        self.package = package
        self._parts: dict[str, T] = {}
        self._discovered = package is None

    def register(self, name: str, part: T) -> T:
        if name in self._parts:
            raise ValueError(f"{self.kind} {name!r} is registered twice ({self._parts[name]!r} and {part!r})")
        self._parts[name] = part
        return part

    def add(self, name: str) -> Callable[[T], T]:
        """Decorator form of `register`."""
        return lambda part: self.register(name, part)

    def get(self, name: str) -> T:
        self.discover()
        if name not in self._parts:
            raise ViperError(f"unknown {self.kind} {name!r}; available: {', '.join(self.names()) or 'none'}")
        return self._parts[name]

    def names(self) -> list[str]:
        self.discover()
        return list(self._parts)

    def __contains__(self, name: str) -> bool:
        self.discover()
        return name in self._parts

    def discover(self) -> None:
        """Import every module of the registry's package once, so their registrations run."""
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{self.package}.{module.name}")
