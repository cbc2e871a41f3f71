"""Hugging Face models from a local folder or the local cache only: never the network, one clear error if absent.

Every paper backend (ViT, CLIP, RoBERTa, WavLM, Py-Feat's hub weights) loads through here, so "offline" is
enforced in one place: `local_files_only=True` plus the hub's offline switch while loading, which also stops
code paths that ignore `local_files_only` (transformers' background safetensors conversion, py-feat's
`hf_hub_download`). A missing model is a `ModelNotFoundError` that says how to bring it here, never a traceback
or a network wait.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ModelNotFoundError

# Weights a checkpoint may lack without harm (matched anywhere in the name): pooling heads viper's encoders never
# use, and wav2vec-style models' mask embedding, which only training uses.
UNUSED_WEIGHTS = ("pooler.", "masked_spec_embed")


def looks_like_path(model: str) -> bool:
    """A folder rather than a hub id (`name` or `owner/name`)."""
    if Path(model).expanduser().exists():
        return True
    return model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1


def how_to_get(model: str) -> str:
    return (
        f"On a machine with internet run `huggingface-cli download {model}` (or `hf download {model}`), then copy "
        "~/.cache/huggingface to this machine (or point HF_HOME at the copy); or download it to a folder "
        f"(`huggingface-cli download {model} --local-dir <folder>`) and pass that folder as the model."
    )


def resolve(model: str, role: str) -> str:
    """The folder path or hub id to hand to transformers; an absent folder fails here, with its name."""
    if not looks_like_path(model):
        return model
    folder = Path(model).expanduser()
    if not folder.is_dir():
        raise ModelNotFoundError(
            f"{role} model folder {folder} does not exist: pass a folder holding the model's config and weights "
            "(`huggingface-cli download <hub id> --local-dir <folder>` on a machine with internet), or a hub id "
            "that is in the local Hugging Face cache."
        )
    return str(folder)


def missing_model(model: str, role: str, error: Exception) -> ModelNotFoundError:
    """The error for a model transformers could not load offline (for a folder, with transformers' reason)."""
    from huggingface_hub import constants

    if looks_like_path(model):
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return ModelNotFoundError(f"{role} model folder {model} is not usable: {reason[:300]}")
    return ModelNotFoundError(
        f"{role} model {model!r} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}); viper never "
        f"downloads. {how_to_get(model)}"
    )


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """The hub's offline mode for the duration: every hub HTTP request fails at once instead of waiting."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No progress bars or load reports while loading: viper checks the loaded weights itself."""
    from transformers.utils import logging

    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def load_model(loader: Any, model: str, role: str, **kwargs: Any) -> Any:
    """`loader.from_pretrained(model)` offline, refusing a checkpoint that leaves used weights uninitialised.

    A checkpoint of a task model (e.g. ViTForImageClassification) is fine for its base model: its head is
    unused. Missing weights are not: they would be random numbers presented as features.
    """
    source = resolve(model, role)
    with hub_offline(), quiet_transformers():
        try:
            loaded, info = loader.from_pretrained(source, local_files_only=True, output_loading_info=True, **kwargs)
        except (OSError, ValueError) as error:
            raise missing_model(model, role, error) from None
    missing = [key for key in info.get("missing_keys", ()) if not any(part in key for part in UNUSED_WEIGHTS)]
    if missing:
        shown = ", ".join(sorted(missing)[:3])
        raise ModelNotFoundError(
            f"{role} model {model!r} does not fit {type(loaded).__name__}: {len(missing)} weights missing ({shown}, "
            "...). Pass a checkpoint of that model family."
        )
    return loaded


def load_preprocessor(loader: Any, model: str, role: str, **kwargs: Any) -> Any:
    """A tokenizer, image processor, feature extractor or processor, offline."""
    source = resolve(model, role)
    with hub_offline(), quiet_transformers():
        try:
            return loader.from_pretrained(source, local_files_only=True, **kwargs)
        except (OSError, ValueError) as error:
            raise missing_model(model, role, error) from None


def load_config(model: str, role: str) -> Any:
    """The model's config alone (cheap: tells a backend its dim before loading weights)."""
    from transformers import AutoConfig

    return load_preprocessor(AutoConfig, model, role)


def prepare(model: Any, device: str) -> Any:
    """Inference mode on `device`; half precision on CUDA, where the paper's encoders lose nothing by it."""
    import torch

    dtype = torch.float16 if str(device).startswith("cuda") else torch.float32
    return model.to(device=device, dtype=dtype).eval()


def pixel_values(processor: Any, crops: list, device: str, dtype: Any) -> Any:
    """`processor(images=crops)["pixel_values"]` on `device`, in `dtype`. When the crops already have the model's
    input size (viper's 224-px face crops for ViT-B/16 and CLIP ViT-B/32), resizing and centre-cropping change no
    pixel, so the rest (rescale, normalise) runs as tensor ops on the device: the same values without a PIL round
    trip per image on the CPU, which left a GPU mostly idle. Anything else goes through the processor."""
    import numpy as np
    import torch

    side = crops[0].shape[0] if crops else 0
    if not _keeps_size(processor, side) or any(crop.shape != (side, side, 3) for crop in crops):
        pixels = processor(images=list(crops), return_tensors="pt")["pixel_values"]
        return pixels.to(device, dtype)
    pixels = torch.from_numpy(np.stack(crops)).to(device).permute(0, 3, 1, 2).float()
    if processor.do_rescale:
        pixels = pixels * processor.rescale_factor
    if processor.do_normalize:
        mean = torch.tensor(processor.image_mean, device=device)[:, None, None]
        std = torch.tensor(processor.image_std, device=device)[:, None, None]
        pixels = (pixels - mean) / std
    return pixels.to(dtype)


def _keeps_size(processor: Any, side: int) -> bool:
    """Whether the processor only rescales and normalises `side`-px square RGB images (ViT's and CLIP's)."""
    if type(processor).__name__.removesuffix("Fast").removesuffix("Pil") not in ("ViTImageProcessor",
                                                                                  "CLIPImageProcessor"):
        return False
    size, crop = getattr(processor, "size", None), getattr(processor, "crop_size", None)
    resized = side if not processor.do_resize else _field(size, "shortest_edge") or (
        _field(size, "height") if _field(size, "height") == _field(size, "width") else None)
    cropped = resized if not getattr(processor, "do_center_crop", False) else (
        _field(crop, "height") if _field(crop, "height") == _field(crop, "width") else None)
    return side > 0 and resized == side and cropped == side


def _field(size: Any, name: str) -> Any:
    """A field of a processor's size: a dict in transformers 4, a SizeDict in 5."""
    if size is None:
        return None
    return size.get(name) if isinstance(size, dict) else getattr(size, name, None)
