"""Convert Resemblyzer's GE2E voice encoder (pretrained.pt of resemblyzer==0.1.4) into viper/assets, once.

Dev-time only: needs torch to read the checkpoint, and the installed Resemblyzer distribution for its licence
(or --license with the LICENSE file of https://github.com/resemble-ai/Resemblyzer); the package is never imported.
Only what viper runs is kept: the LSTM and the linear layer, float32, unchanged in value. The GE2E loss's
similarity scale and bias, the training step and the optimizer state are dropped.

    pip install --no-deps resemblyzer==0.1.4
    python scripts/convert_resemblyzer.py [path/to/pretrained.pt]
"""

from __future__ import annotations

import argparse
import hashlib
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "src" / "viper" / "assets"
OUT = ASSETS / "resemblyzer_ge2e.npz"
LICENSE_OUT = ASSETS / "RESEMBLYZER_LICENSE.txt"
KEPT = ("lstm.", "linear.")

HEADER = """\
resemblyzer_ge2e.npz: the weights of Resemblyzer's voice encoder (GE2E speaker encoder: 3-layer LSTM 40->256 and
a linear layer 256->256), from `resemblyzer/pretrained.pt` of the PyPI package Resemblyzer=={version}
(https://github.com/resemble-ai/Resemblyzer, by {author}, Resemble AI; Apache-2.0),
sha256 of pretrained.pt {sha256}.

Modification: scripts/convert_resemblyzer.py copied the {count} tensors of model_state named lstm.* and linear.*
into the npz under their PyTorch state_dict names, float32, unchanged in value; the GE2E similarity weight and
bias, the training step and the optimizer state were not copied.

Resemblyzer's licence follows.

-------------------------------------------------------------------------------
"""


def installed_checkpoint() -> Path:
    """pretrained.pt in the installed Resemblyzer distribution, found from its file list (no import)."""
    for file in metadata.distribution("Resemblyzer").files or []:
        if file.name == "pretrained.pt":
            return Path(file.locate())
    raise FileNotFoundError("the installed Resemblyzer lists no pretrained.pt")


def convert(checkpoint: Path, license_text: str, version: str, author: str) -> None:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model_state"]
    weights = {name: tensor.numpy().astype(np.float32) for name, tensor in state.items() if name.startswith(KEPT)}
    np.savez_compressed(OUT, **weights)
    with np.load(OUT) as saved:
        assert all(np.array_equal(saved[name], array) for name, array in weights.items())
    count, size = sum(array.size for array in weights.values()), OUT.stat().st_size / 1e6
    print(f"wrote {OUT.relative_to(REPO)}: {len(weights)} tensors, {count:,} weights, {size:.2f} MB")
    sha256 = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    header = HEADER.format(version=version, author=author, sha256=sha256, count=len(weights))
    LICENSE_OUT.write_text(header + license_text)
    print(f"wrote {LICENSE_OUT.relative_to(REPO)} (Apache-2.0, sha256 {sha256[:12]}...)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, nargs="?", help="pretrained.pt (default: the installed package's)")
    parser.add_argument("--license", type=Path, help="Resemblyzer's LICENSE (default: the installed package's)")
    args = parser.parse_args(argv)
    try:
        dist = metadata.distribution("Resemblyzer")
        version, author = dist.version, dist.metadata["Author"]
    except metadata.PackageNotFoundError:
        dist, version, author = None, "0.1.4", "Corentin Jemine"
    if args.license:
        license_text = args.license.read_text()
    elif dist is not None:
        license_text = next(f for f in dist.files if f.name == "LICENSE").read_text()
    else:
        parser.error("Resemblyzer is not installed: give --license")
    convert(args.checkpoint or installed_checkpoint(), license_text, version, author)


if __name__ == "__main__":
    main()
