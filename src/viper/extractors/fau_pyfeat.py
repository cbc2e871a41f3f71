"""The paper's facial action features: Py-Feat's action units (20) and emotions (7) for each face crop, 27 values.

An optional extra, Py-Feat 2 (Python 3.11+). Py-Feat 2 removed `feat.Detector`; `Detectorv1` is its successor with
the same models and outputs (`Detectorv2` is a new multitask model with 24 AUs and 8 emotions: not the paper's
features). py-feat 0.6, the release before 2, no longer imports (today's torchvision has no `read_video`) nor
installs on Python 3.12+. The authors used `Detector(au_model="logistic", emotion_model="resmasknet")`; the
logistic AU model is gone since py-feat 0.6, so the default here is its successor, "xgb" (the same 20 AUs).
Py-Feat fetches each model's weights from the Hugging Face hub into its own resources folder the first time; viper
builds and runs the detector with the hub offline, so it runs only where those weights are already there, and
otherwise one clear error says how to get them.

The crops go to py-feat as one image tensor and it finds the face inside each crop itself (its AU models need its
own landmarks). A crop where py-feat finds no face is masked, and so is a frame without a crop (the authors filled
both with zeros; the fusion model sees the mask).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelNotFoundError, ViperError
from ..hf import hub_offline
from .base import Extractor, Features, register_extractor
from .batching import NOT_IN_IDENTITY, batched_features

if TYPE_CHECKING:
    from ..sampled_video import SampledVideo

DIM = 27  # 20 action units + 7 emotions
INSTALL = "pip install 'py-feat>=2,<3' (Python 3.11+)"


@dataclass
class PyfeatConfig:
    au_model: str = "xgb"
    emotion_model: str = "resmasknet"
    batch_size: int = field(default=16, metadata=NOT_IN_IDENTITY)  # items per forward pass


def pyfeat_detector() -> type:
    """Py-Feat 2's `Detectorv1`: a ModelNotFoundError when py-feat is not installed, a ViperError when it is
    installed but unusable (another major version, or it does not import)."""
    try:
        version = metadata.version("py-feat")
    except metadata.PackageNotFoundError:
        raise ModelNotFoundError(f"fau:pyfeat needs Py-Feat 2, which is not installed: {INSTALL}") from None
    if int(version.split(".")[0]) < 2:
        raise ViperError(f"fau:pyfeat needs Py-Feat 2 (its Detectorv1); this is py-feat {version}: {INSTALL}")
    import torch  # noqa: F401  (before feat, whose OMP_NUM_THREADS=1 would make a torch loaded later single-threaded)

    threads = os.environ.get("OMP_NUM_THREADS")
    try:
        import feat
    except Exception as error:  # a broken install fails with whatever its own imports raise
        raise ViperError(
            f"py-feat {version} is installed but does not import ({type(error).__name__}: {error}): {INSTALL}"
        ) from None
    finally:  # py-feat sets OMP_NUM_THREADS=1 for its macOS workaround; viper's child processes keep their own
        if threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
    if not hasattr(feat, "Detectorv1"):
        raise ViperError(f"py-feat {version} has no Detectorv1 (the Detector of py-feat 0.6's models): {INSTALL}")
    return feat.Detectorv1


@register_extractor
class PyfeatFau(Extractor):
    """Py-Feat AU and emotion scores of each face crop."""

    modality = "fau"
    backend = "pyfeat"
    version = "2"  # Py-Feat 2's Detectorv1 (RetinaFace-R34 faces), not py-feat 0.6's Detector
    Config = PyfeatConfig

    @property
    def dim(self) -> int:
        return DIM

    def load(self) -> None:
        import torch
        from huggingface_hub.errors import LocalEntryNotFoundError

        detector = pyfeat_detector()
        try:  # py-feat's RetinaFace turns autograd off for the whole thread: the context puts it back
            with hub_offline(), torch.set_grad_enabled(torch.is_grad_enabled()), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="face_model='retinaface' does not regress")  # pose: unused
                self._detector = detector(
                    au_model=self.config.au_model,
                    emotion_model=self.config.emotion_model,
                    identity_model=None,
                    gaze_model=None,
                    device=torch.device(self.device),  # py-feat takes "cuda" but not "cuda:1" as a string
                )
        except LocalEntryNotFoundError:  # what the offline hub raises for a file it has not cached
            from feat.utils.io import get_resource_path

            raise ModelNotFoundError(
                f"Py-Feat's weights are not in its resources folder {get_resource_path()}; viper never downloads. "
                f"On a machine with internet, {INSTALL} and run `python -c \"from feat import Detectorv1; "
                f"Detectorv1(au_model='{self.config.au_model}', emotion_model='{self.config.emotion_model}', "
                "identity_model=None, gaze_model=None)\"` once, then copy its resources folder (`python -c "
                '"from feat.utils.io import get_resource_path; print(get_resource_path())"`) to the one above.'
            ) from None

    def extract_batch(self, clips: list[SampledVideo]) -> list[Features]:
        self.ensure_loaded()
        items = [clip.face_crops for clip in clips]
        return batched_features(items, self.embed, DIM, self.config.batch_size)

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        """(B, 27): AUs then emotions of the first face py-feat finds in each crop; NaN where it finds none."""
        import torch

        images = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)  # (B, 3, H, W) uint8, as py-feat reads files
        with hub_offline():  # py-feat looks for its optional pose model on the hub at each batch
            fex = self._detector.detect(images, data_type="tensor", batch_size=len(crops), progress_bar=False)
        columns = list(fex.au_columns) + list(fex.emotion_columns)
        if len(columns) != DIM:
            raise ViperError(f"Py-Feat gave {len(columns)} AU/emotion columns, fau:pyfeat expects {DIM}")
        first = fex.drop_duplicates(subset="frame").set_index("frame")[columns]  # "frame": the crop's index
        return first.reindex(range(len(crops))).to_numpy(dtype=np.float32)
