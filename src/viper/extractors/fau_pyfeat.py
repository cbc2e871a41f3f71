"""The paper's facial action features: Py-Feat's action units (20) and emotions (7) for each face crop, 27 values.

An optional extra: py-feat is not a dependency of viper, and it fetches its weights from the Hugging Face hub the
first time a Detector is built. viper builds it with the hub offline, so it runs only where those weights are
already in py-feat's cache; otherwise one clear error says how to get them. The authors used
`Detector(au_model="logistic", emotion_model="resmasknet")`; py-feat >= 0.6 no longer has the logistic AU model,
so the default here is its successor, "xgb" (the same 20 AUs). Crops go to py-feat as image files and it finds
the face inside each crop itself (its AU models need its own landmarks). A crop where py-feat finds no face is
masked, and so is a frame without a crop (the authors filled both with zeros; the fusion model sees the mask).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from importlib import metadata, util
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelNotFoundError, ViperError
from ..hf import hub_offline
from .base import Extractor, Features, register_extractor
from .batching import NOT_IN_IDENTITY, batched_features

if TYPE_CHECKING:
    from ..sampled_video import SampledVideo

DIM = 27  # 20 action units + 7 emotions
INSTALL = "pip install 'py-feat>=0.6'"


@dataclass
class PyfeatConfig:
    au_model: str = "xgb"
    emotion_model: str = "resmasknet"
    batch_size: int = field(default=16, metadata=NOT_IN_IDENTITY)  # items per forward pass


def pyfeat_version() -> tuple[int, ...]:
    """Installed py-feat's (major, minor); a ViperError saying how to install it when it is absent."""
    try:
        if util.find_spec("feat") is None:
            raise metadata.PackageNotFoundError("feat")
        version = metadata.version("py-feat")
    except metadata.PackageNotFoundError:
        raise ViperError(f"fau:pyfeat needs Py-Feat, which is not installed: {INSTALL}") from None
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


@register_extractor
class PyfeatFau(Extractor):
    """Py-Feat AU and emotion scores of each face crop."""

    modality = "fau"
    backend = "pyfeat"
    version = "1"
    Config = PyfeatConfig

    @property
    def dim(self) -> int:
        return DIM

    def load(self) -> None:
        if pyfeat_version() < (0, 6):
            raise ViperError(f"fau:pyfeat needs py-feat 0.6 or newer (older ones download from GitHub): {INSTALL}")
        try:
            from feat import Detector
        except ImportError as error:
            raise ViperError(f"Py-Feat is installed but does not import ({error}): {INSTALL}") from None
        try:
            with hub_offline():
                self._detector = Detector(
                    au_model=self.config.au_model, emotion_model=self.config.emotion_model, device=self.device
                )
        except Exception as error:  # py-feat raises whatever its hub download or model lookup raised
            raise ModelNotFoundError(
                f"Py-Feat's Detector could not be built offline ({type(error).__name__}: {error}). If its weights "
                f'are missing: on a machine with internet, {INSTALL} and run `python -c "from feat import Detector; '
                f"Detector(au_model='{self.config.au_model}', emotion_model='{self.config.emotion_model}')\"` once, "
                "then copy Py-Feat's resource folder (`python -c \"from feat.utils.io import get_resource_path; "
                'print(get_resource_path())"`) to the same place here.'
            ) from None

    def extract_batch(self, clips: list[SampledVideo]) -> list[Features]:
        self.ensure_loaded()
        items = [clip.face_crops for clip in clips]
        return batched_features(items, self.embed, DIM, self.config.batch_size)

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """(B, 27): AUs then emotions of the first face py-feat finds in each crop; NaN where it finds none."""
        from PIL import Image

        with tempfile.TemporaryDirectory(prefix="viper-pyfeat-") as folder:
            paths = [str(Path(folder) / f"{i:05d}.png") for i in range(len(crops))]
            for crop, path in zip(crops, paths, strict=True):
                Image.fromarray(crop).save(path)
            if hasattr(self._detector, "detect"):  # py-feat >= 0.7
                fex = self._detector.detect(paths, data_type="image", batch_size=len(paths))
            else:
                fex = self._detector.detect_image(paths, batch_size=len(paths))
        columns = list(fex.au_columns) + list(fex.emotion_columns)
        if len(columns) != DIM:
            raise ViperError(f"Py-Feat gave {len(columns)} AU/emotion columns, fau:pyfeat expects {DIM}")
        first = fex.drop_duplicates(subset="input").set_index("input")[columns]
        if not first.index.isin(paths).any():
            raise ViperError("unexpected Py-Feat output: its 'input' column does not name the images given")
        return first.reindex(paths).to_numpy(dtype=np.float32)
