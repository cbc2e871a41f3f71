"""Per-clip results shared between extractors: the face-image, FAU and caption extractors all read the
mini-Xception outputs (and two of them the face mesh) of the same clip; this computes them once per clip object.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class VideoCache:
    """Results keyed by clip object identity (checked through a weak reference) and settings; keeps the last few."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._entries: OrderedDict[int, tuple[weakref.ref, Hashable, Any]] = OrderedDict()

    def get_many(self, clips: list, settings: Hashable, compute: Callable[[list], list]) -> list:
        """Each clip's result; `compute(clips_not_cached)` runs once, batched over the clips it has not seen."""
        for key in [key for key, entry in self._entries.items() if entry[0]() is None]:
            del self._entries[key]  # the clip is gone: so is the need for its results
        found: dict[int, Any] = {}
        todo: dict[int, Any] = {}
        for clip in clips:
            entry = self._entries.get(id(clip))
            if entry is not None and entry[0]() is clip and entry[1] == settings:
                found[id(clip)] = entry[2]
            else:
                todo[id(clip)] = clip
        if todo:
            for key, clip, result in zip(todo, todo.values(), compute(list(todo.values())), strict=True):
                found[key] = result
                self._entries[key] = (weakref.ref(clip), settings, result)
                self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return [found[id(clip)] for clip in clips]

