"""Checkpoints that rebuild their model alone and know which features they were trained on.

A checkpoint holds the weights (standardisation statistics included, as buffers), the model and training
configs, the emotion names, the store's frames per clip, and the identity of every extractor whose features make
up the tokens, in token order. Features from any other extractor are refused rather than silently mis-read.
torch is imported by the functions that use it, so a wrong path fails before the seconds that import costs.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_write_bytes
from .config import from_dict
from .errors import ViperError
from .feature_spec import FeatureSpec

if TYPE_CHECKING:
    import torch

    from .model import Perceiver
    from .store import FeatureStore

CHECKPOINT_FORMAT = 1
CHECKPOINT_KEYS = ("model_state", "model_config", "token_dims", "emotions", "features", "n_frames", "train_config",
                   "info")
GENERAL_MODEL = Path("viper general model")  # what a prediction names as its model when no checkpoint is given


@dataclass
class ModelBundle:
    """A trained model with what it needs to be used: emotions, feature identities (token order), N. `model` is a
    torch Perceiver, or what scores without torch: the run's best.onnx (fusion_onnx.FusionOnnx) or the general
    model; each has `token_dims` and `num_outputs`."""

    model: Any
    emotions: list[str]
    features: list[FeatureSpec]  # of each modality, in token order
    n_frames: int
    train_config: dict[str, Any]
    info: dict[str, Any]  # epoch, dev_mean_pearson, ...
    path: Path

    @property
    def keys(self) -> list[str]:
        return [feature.key for feature in self.features]


def torch_save_atomic(payload: dict[str, Any], path: Path) -> None:
    """torch.save to memory, then one atomic write: an interrupted save leaves the previous file intact."""
    import torch

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())


def save_checkpoint(
    path: Path,
    *,
    model: Perceiver,
    emotions: list[str],
    features: list[FeatureSpec],
    n_frames: int,
    train_config: dict[str, Any],
    info: dict[str, Any] | None = None,
) -> None:
    from . import __version__

    torch_save_atomic(
        {
            "format": CHECKPOINT_FORMAT,
            "viper_version": __version__,
            "model_state": {name: value.detach().cpu() for name, value in model.state_dict().items()},
            "model_config": dataclasses.asdict(model.config),
            "token_dims": list(model.token_dims),
            "emotions": list(emotions),
            "features": [feature.to_dict() for feature in features],
            "n_frames": int(n_frames),
            "train_config": train_config,
            "info": info or {},
        },
        path,
    )


def checkpoint_file(run_or_file: Path | str) -> Path:
    """`RUN/best.pt` for a run folder, or the file itself."""
    path = Path(run_or_file)
    file = path / "best.pt" if path.is_dir() else path
    if not file.is_file():
        raise ViperError(f"{path}: no checkpoint (expected a run folder with best.pt, or a .pt file)")
    return file


def torch_load(file: Path, what: str, fix: str) -> dict[str, Any]:
    """torch.load with weights_only, so a file never runs code; a file torch refuses (cut short, corrupt, holding
    code, or no dict at all) is one ViperError naming it: "FILE is damaged or not WHAT (why): FIX"."""
    import torch

    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except OSError as error:
        raise ViperError(f"{file} cannot be read ({error.strerror or error})") from error
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for one bad file
        raise ViperError(f"{file} is damaged or not {what} ({_load_problem(error)}): {fix}") from error
    if not isinstance(payload, dict):
        raise ViperError(f"{file} is damaged or not {what} (it holds a {type(payload).__name__}): {fix}")
    return payload


def _load_problem(error: Exception) -> str:
    """The line of torch.load's many that says what was wrong (its messages run to a dozen lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    refused = [line for line in lines if "nsupported" in line]
    if refused:  # weights_only met a pickled object or call: what a booby-trapped file holds
        found = refused[0].removeprefix("WeightsUnpickler error:").strip().split(". ")[0]
        return f"it asks to load code, which viper never runs: {found}"
    if not lines:
        return "the file ends too early" if isinstance(error, EOFError) else type(error).__name__
    return lines[0].split(". ")[0]


def load_checkpoint(run_or_file: Path | str, device: str | torch.device = "cpu",
                    runtime: str | None = None) -> ModelBundle:
    """Rebuild the trained model from a run folder (its best.pt) or a checkpoint file, in eval mode; a file that
    does not hold a whole, consistent checkpoint is a ViperError saying what is wrong. Where viper.runtime chooses
    onnx (`runtime`, else the process's choice for `device`) and the run has a best.onnx of the same weights, that
    is the model, and torch is not imported."""
    file = checkpoint_file(run_or_file)  # first: a wrong path is refused without importing torch
    from .runtime import choose

    if choose(str(device), runtime) == "onnx":
        from .fusion_onnx import load_twin, onnx_file

        if (twin := load_twin(file)) is not None:
            model, fields = twin
            emotions, _, specs = checked_fields(onnx_file(file), fields)
            return ModelBundle(model=model, emotions=emotions, features=specs, n_frames=fields["n_frames"],
                               train_config=fields["train_config"], info=fields["info"], path=file)
    from .model import Perceiver, PerceiverConfig

    payload = torch_load(file, "a viper checkpoint", "give the best.pt of a run made by `viper train`")
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ViperError(f"{file}: not a viper checkpoint of format {CHECKPOINT_FORMAT}")
    missing = [key for key in CHECKPOINT_KEYS if key not in payload]
    if missing:
        raise ViperError(f"{file}: an incomplete viper checkpoint, without {', '.join(missing)}; train again")
    emotions, dims, specs = checked_fields(file, payload)
    try:
        model = Perceiver(token_dims=dims, num_outputs=len(emotions),
                          config=from_dict(PerceiverConfig, payload["model_config"]))
    except (ViperError, TypeError, ValueError, RuntimeError) as error:
        raise ViperError(f"{file}: its model or feature settings are not this viper's ({error})") from error
    problems = [f"{spec.key} is {spec.dim} wide, its token part {dim}"
                for spec, dim in zip(specs, dims, strict=True) if spec.dim is not None and spec.dim != dim]
    problems += _weight_problems(model.state_dict(), payload["model_state"])
    if problems:
        raise ViperError(
            f"{file}: the weights do not fit the model it describes ({len(emotions)} emotions: "
            f"{', '.join(emotions)}; token widths {list(dims)}): {'; '.join(problems)}"
        )
    model.load_state_dict(payload["model_state"])
    model.to(device).eval()
    return ModelBundle(
        model=model,
        emotions=emotions,
        features=specs,
        n_frames=payload["n_frames"],
        train_config=payload["train_config"],
        info=payload["info"],
        path=file,
    )


def twin_fields(bundle: ModelBundle) -> dict[str, Any]:
    """What a run's best.onnx carries of its checkpoint beside the weights (JSON), so scoring needs no best.pt."""
    return {"format": CHECKPOINT_FORMAT, "token_dims": list(bundle.model.token_dims), "emotions": bundle.emotions,
            "features": [feature.to_dict() for feature in bundle.features], "n_frames": bundle.n_frames,
            "train_config": bundle.train_config, "info": bundle.info}


def checked_fields(file: Path, payload: dict[str, Any]) -> tuple[list[str], list[int], list[FeatureSpec]]:
    """A checkpoint's emotions, token widths and feature identities, refused with the reason where they do not
    describe a model (best.pt, or the copy a best.onnx carries)."""
    emotions, dims, features = payload["emotions"], payload["token_dims"], payload["features"]
    if not (isinstance(emotions, list) and emotions and all(isinstance(name, str) for name in emotions)):
        raise ViperError(f"{file}: the checkpoint's emotions are not a list of names: {emotions!r}")
    if not (isinstance(features, list) and isinstance(dims, list) and len(features) == len(dims)):
        raise ViperError(f"{file}: the checkpoint's features {features!r} do not match its token widths {dims!r}")
    try:
        return emotions, dims, [FeatureSpec.from_dict(record) for record in features]
    except (ViperError, TypeError, ValueError) as error:
        raise ViperError(f"{file}: its feature settings are not this viper's ({error})") from error


def _weight_problems(expected: dict[str, Any], found: Any, show: int = 3) -> list[str]:
    """What keeps `found` weights from loading into a model whose state dict is `expected`: missing and
    unexpected names, and shapes that differ (the first `show` of each)."""
    if not isinstance(found, dict):
        return [f"the weights are a {type(found).__name__}, not named tensors"]
    missing = [name for name in expected if name not in found]
    extra = [name for name in found if name not in expected]
    shapes = [f"{name} is {tuple(getattr(found[name], 'shape', ()))}, the model needs {tuple(value.shape)}"
              for name, value in expected.items()
              if name in found and tuple(getattr(found[name], "shape", ())) != tuple(value.shape)]
    problems = []
    for label, names in (("missing", missing), ("unexpected", extra)):
        if names:
            more = f" and {len(names) - show} more" if len(names) > show else ""
            problems.append(f"{label} {', '.join(names[:show])}{more}")
    return problems + shapes[:show]


def general_model_bundle(frames: int = 32, device: str = "cpu") -> ModelBundle:
    """The general model as a bundle `Predictor` and `inspect` use like a trained checkpoint."""
    from .extraction import ExtractConfig, Extraction
    from .extractors.expression_general import BASIC_EMOTIONS
    from .general_model import GeneralModel

    extraction = Extraction(ExtractConfig(frames=frames, extractors=["expression:general"], device=device))
    return ModelBundle(
        model=GeneralModel(),
        emotions=list(BASIC_EMOTIONS),
        features=[extraction.spec(extractor) for extractor in extraction.extractors],
        n_frames=frames,
        train_config={},
        info={"model": "general"},
        path=GENERAL_MODEL,
    )


def check_store(bundle: ModelBundle, store: FeatureStore) -> None:
    """Refuse a store whose features are not the ones the model was trained on (or whose N differs)."""
    if store.n_frames != bundle.n_frames:
        raise ViperError(
            f"{bundle.path} was trained on clips of {bundle.n_frames} frames; {store.root} holds "
            f"{store.n_frames} per clip; extract with frames = {bundle.n_frames}"
        )
    keys = store.extractor_keys()
    for feature in bundle.features:
        if feature.key in keys:
            found = store.feature_spec(feature.key)
            if found == feature:
                continue
            raise ViperError(
                f"{store.root}: features {feature.key} differ from the ones {bundle.path} was trained on: "
                f"store has {found.describe()}, model expects {feature.describe()}"
            )
        same_modality = [store.feature_spec(key) for key in keys]
        have = "; ".join(spec.describe() for spec in same_modality if spec.modality == feature.modality) or "none"
        raise ViperError(
            f"{store.root} lacks the {feature.modality} features {bundle.path} was trained on: model expects "
            f"{feature.describe()}; the store has {have}. Extract with the same extractor and options, or train "
            "a model on these features"
        )


def predict_model(model: torch.nn.Module, tokens: np.ndarray, mask: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    """Scores (V, E) of a model in eval mode for tokens (V, N, Σdim) and masks (V, N) or (V, N, M)."""
    import torch

    model.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device  # the general model has no parameters
    outputs = []
    for start in range(0, len(tokens), batch_size):
        batch = torch.as_tensor(np.asarray(tokens[start : start + batch_size], np.float32), device=device)
        batch_mask = torch.as_tensor(np.asarray(mask[start : start + batch_size], bool), device=device)
        with torch.no_grad():
            outputs.append(model(batch, batch_mask).float().cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, model.num_outputs), np.float32)


def predict_arrays(bundle: ModelBundle, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Scores (V, E), columns in `bundle.emotions` order, for tokens from `tokens.build_tokens` in
    `bundle.keys` order. Pass the per-modality masks (V, N, M) so a missing modality reads as its train mean. A
    torch model runs its forward; the general model and a run's best.onnx (see `load_checkpoint`) run without
    torch."""
    expected = sum(bundle.model.token_dims)
    if tokens.ndim != 3 or tokens.shape[-1] != expected:
        raise ValueError(f"tokens must be (V, N, {expected}) for {bundle.path}, got {tokens.shape}")
    if hasattr(bundle.model, "state_dict"):  # a torch module
        return predict_model(bundle.model, tokens, mask)
    masks = mask if mask.ndim == 3 else np.broadcast_to(mask[..., None], (*mask.shape, len(bundle.features)))
    return bundle.model(tokens, masks)
