"""The 53 caption templates of ViPER (the authors' sentences, 6–9 per emotion, neutral included)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources


def caption_templates() -> list[dict[str, str]]:
    """The 53 {"emotion", "sentence"} templates in the authors' order."""
    text = resources.files("viper").joinpath("assets/templates.json").read_text(encoding="utf-8")
    return json.loads(text)["templates"]


def chosen_sentences(indices: Sequence[int]) -> list[str | None]:
    """The sentence of each chosen template index (a caption extractor's `choose`); None where it is -1 (masked)."""
    table = caption_templates()
    return [table[index]["sentence"] if index >= 0 else None for index in indices]
