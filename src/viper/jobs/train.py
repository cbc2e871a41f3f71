"""Train the fusion model on a feature store: MSE per emotion, best epoch by dev mean Pearson, resumable.

The run folder holds config.json, history.csv, best.pt (the model to use), best.onnx (best.pt exported for ONNX
Runtime when the run ends, see viper.fusion_onnx), last.pt (the state to resume from, rewritten atomically after
every epoch) and, when asked for, tensorboard/. Running `train` again on the same
folder continues after the last completed epoch; the same seed gives the same weights on CPU, interrupted or not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import load_checkpoint, predict_model, save_checkpoint, torch_load, torch_save_atomic, twin_fields
from ..config import save_config, to_dict
from ..errors import SettingError, ViperError
from ..fusion_onnx import export_fusion
from ..general_model import anchoring
from ..locks import folder_in_use
from ..metrics import pearson_scores
from ..model import Perceiver, count_parameters, model_config
from ..persons import check_disjoint_persons
from ..progress import Hook, notify
from ..settings import check_device, real_number, resolve_device, resolve_precision, whole_number
from ..store import FeatureStore
from ..token_loader import make_loader
from ..tokens import load_split, resolve_keys, split_ids, standardisation_stats
from .train_report import AnchorMovement, anchor_movement, log_scalars, summary_writer, write_history

log = logging.getLogger(__name__)

# may differ when a run is continued (they do not change the weights); anything else may not
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
RESUMABLE_CHANGES = ("epochs", "device", "compile", "allow_shared_people", "tensorboard")
RESUME_KEYS = ("fingerprint", "epoch", "history", "best", "model", "optimiser", "scheduler", "scaler", "rng_cpu",
               "rng_cuda")
FULL_DISK = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # no space, quota or file size limit: the run cannot grow


@dataclass
class TrainConfig:
    """Training settings; the defaults are the paper's (AdamW, lr 1e-5 halved every 10 epochs, 50 epochs, 16)."""

    modalities: list[str] | None = None  # names or store keys, in token order; None: every modality in the store
    model: str = "compact"  # a preset of viper.model.PRESETS
    model_overrides: dict[str, Any] = field(default_factory=dict)
    epochs: int = 50
    batch_size: int = 16
    lr: float = 1e-5
    weight_decay: float = 0.01
    lr_step_epochs: int = 10
    lr_gamma: float = 0.5
    seed: int = 0
    device: str = "auto"  # auto (cuda when available), cpu, cuda
    precision: str = "auto"  # auto (bf16 on CUDA where supported, else fp16; fp32 on CPU), fp32, bf16, fp16 (CUDA)
    compile: bool = False  # torch.compile the training forward/backward (pays off only for long runs; see README)
    standardise: bool = True  # standardise each token feature with train-split mean/std (stored in the model)
    modality_dropout: float = 0.0  # training batches only: mask a whole modality of a clip with this probability
    # Anchor on the general model (when the store has `expression` features and outputs named after basic
    # emotions): the model predicts a correction to the general model's probabilities, shrunk toward 0 by a loss
    # term anchor_shrink * mean(correction^2), so a run on few people keeps what many people taught the prior.
    anchor: bool = True
    anchor_shrink: float = 1.0
    allow_shared_people: bool = False  # train although dev or test holds people of train (see viper.persons)
    person_norm: bool = False  # subtract each person's mean features first (train and evaluate; predict refuses)
    tensorboard: bool = False  # also log history.csv's numbers to RUN/tensorboard (the optional tensorboard package)

    def __post_init__(self) -> None:
        """Refuse values torch would fail on deep in a run, or that would train nothing, naming the setting."""
        for name in ("epochs", "batch_size", "lr_step_epochs"):
            whole_number(name, getattr(self, name))
        whole_number("seed", self.seed, -(2**31), 2**31 - 1)
        real_number("lr", self.lr, above_minimum=True)
        real_number("lr_gamma", self.lr_gamma, above_minimum=True, maximum=1.0)
        real_number("weight_decay", self.weight_decay)
        real_number("modality_dropout", self.modality_dropout, maximum=1.0)
        real_number("anchor_shrink", self.anchor_shrink)
        check_device(self.device, auto=True, here=False)  # whether cuda is here is asked when the run starts
        if self.precision not in PRECISIONS:  # before the run folder is made (fp16 on CPU is refused at the start)
            raise SettingError("precision", f"must be {', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]}, "
                               f"got {self.precision!r}")


def train_config(config_file: Path | str | None = None, **given: Any) -> TrainConfig:
    """A TrainConfig from a YAML/JSON file (when given), with the `given` settings on top of it; `layout` is a
    model setting and goes into `model_overrides`."""
    from ..config import from_dict, load_config_file

    settings = load_config_file(config_file) if config_file else {}
    layout = given.pop("layout", None)
    settings.update(given)
    if layout is not None:
        settings["model_overrides"] = {**(settings.get("model_overrides") or {}), "layout": layout}
    try:
        return from_dict(TrainConfig, settings)
    except ViperError as error:  # a value from the file, not a flag: name the file
        if config_file is None or getattr(error, "setting", None) in given:
            raise
        raise ViperError(f"{config_file}: {error}") from None


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    best_epoch: int
    best_dev_pearson: float | None  # None when the store has no dev split
    epochs_done: int
    history: list[dict[str, Any]]
    anchor: AnchorMovement | None = None  # how far an anchored model moved from the general model


def make_optimiser(parameters, *, lr: float, weight_decay: float = 0.01) -> torch.optim.AdamW:
    """AdamW with its fused kernel: one pass over each parameter instead of a dozen (8x faster on CPU for the
    10 M parameters of the compact model on full tokens); the same update rule."""
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay, fused=True)


def train(
    features: Path | str, out: Path | str, config: TrainConfig | None = None, *, hook: Hook | None = None
) -> TrainResult:
    """Train on the store's train split, keep the best epoch by dev mean Pearson in OUT/best.pt.

    The run folder is locked for the whole run (OUT/.lock): a second `viper train` into it is refused at once
    instead of mixing the two runs' config and weights; the OS lets go of the lock when a run dies. A full disk
    stops the run with one message; every file is written atomically, so best.pt and last.pt stay those of the
    last completed epoch and the same call resumes once there is space."""
    config = config or TrainConfig()
    if config.tensorboard:
        summary_writer()  # refused before the run folder is made when tensorboard is not installed
    try:
        with folder_in_use(Path(out), "`viper train`"):
            return _train(features, Path(out), config, hook)
    except OSError as error:
        if error.errno not in FULL_DISK:
            raise
        where = f" ({error.filename})" if error.filename else ""
        raise ViperError(
            f"{out}: training stopped, the run folder cannot be written: {error.strerror or error}{where}; best.pt "
            "and last.pt of the last completed epoch are intact: free space and run the same command to resume"
        ) from error


def _train(features: Path | str, out: Path, config: TrainConfig, hook: Hook | None) -> TrainResult:
    from tqdm.contrib.logging import logging_redirect_tqdm

    store = FeatureStore.open(features)
    keys = resolve_keys(store, config.modalities)
    for split, names in check_disjoint_persons(store, allow=config.allow_shared_people).items():
        log.info("%s: %s shares %d person(s) with train, as allowed", store.root, split, len(names))
    train_data = load_split(store, keys, "train", person_norm=config.person_norm)
    dev_data = load_split(store, keys, "dev", person_norm=config.person_norm) if split_ids(store, "dev") else None
    if dev_data is None:
        log.warning("%s has no dev split: best.pt will be the last epoch, not the best by dev Pearson", store.root)
    device = resolve_device(config.device)
    amp_dtype = resolve_precision(config.precision, device)

    torch.manual_seed(config.seed)
    features = [store.feature_spec(key) for key in keys]
    anchor = anchoring([f.modality for f in features], train_data.dims, train_data.emotions) if config.anchor else {}
    if config.anchor and not anchor:
        log.info("not anchored on the general model: no expression features, or no output is a basic emotion")
    model_cfg = model_config(config.model, {**config.model_overrides, **anchor})
    model = Perceiver(token_dims=train_data.dims, num_outputs=len(train_data.emotions), config=model_cfg)
    if config.standardise:
        model.set_standardisation(*(torch.from_numpy(s) for s in standardisation_stats(train_data)))
    if device.type == "cpu" and count_parameters(model) > 50_000_000:
        log.warning(
            "a %s-parameter model on CPU: expect many seconds per batch (the paper preset is for GPUs)",
            f"{count_parameters(model):,}",
        )
    model.to(device)
    optimiser = make_optimiser(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimiser, step_size=config.lr_step_epochs, gamma=config.lr_gamma)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    run_info = {
        "train": to_dict(config),
        "model": dataclasses.asdict(model_cfg),
        "features": [feature.to_dict() for feature in features],
        "n_frames": store.n_frames,
        "emotions": train_data.emotions,
        "parameters": count_parameters(model),
    }
    fingerprint = _fingerprint(run_info)
    state = _resume_state(out / "last.pt", fingerprint)
    history: list[dict[str, Any]] = []
    best = {"epoch": 0, "pearson": None}
    start = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and state["rng_cuda"] is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
        history, best, start = state["history"], state["best"], state["epoch"]
        log.info("%s: resuming after epoch %d of %d", out, start, config.epochs)
    save_config(run_info, out / "config.json")

    def save_best(epoch: int, pearson: float | None) -> None:
        save_checkpoint(
            out / "best.pt",
            model=model,
            emotions=train_data.emotions,
            features=features,
            n_frames=store.n_frames,
            train_config=to_dict(config),
            info={"epoch": epoch, "dev_mean_pearson": pearson},
        )

    writer = None
    if config.tensorboard:
        writer = summary_writer()(str(out / "tensorboard"), purge_step=start + 1 if start else None)
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype != torch.float32 else contextlib.nullcontext()
    forward = torch.compile(model) if config.compile else model  # shares model's weights; model is what is saved
    undefined_seen: list[str] = []
    notify(hook, "train", completed=start, total=config.epochs)
    with logging_redirect_tqdm():
        for epoch in range(start + 1, config.epochs + 1):
            began = time.perf_counter()
            lr = optimiser.param_groups[0]["lr"]
            loader = make_loader(train_data, batch_size=config.batch_size, shuffle_seed=config.seed * 100_003 + epoch)
            train_loss = _train_epoch(forward, loader, optimiser, scaler, autocast, device, config.modality_dropout,
                                      model.prior if model.config.anchor_start >= 0 else None, config.anchor_shrink)
            scheduler.step()
            row: dict[str, Any] = {"epoch": epoch, "lr": lr, "train_loss": train_loss}
            if dev_data is not None:
                dev_row, undefined = _score(model, dev_data)
                if undefined and undefined != undefined_seen:
                    log.warning(
                        "epoch %d: dev Pearson undefined for %s (constant predictions); counted as 0",
                        epoch,
                        ", ".join(undefined),
                    )
                undefined_seen = undefined
                row.update(dev_row)
                mean_r = dev_row["dev_mean_pearson"]
                if best["pearson"] is None or mean_r > best["pearson"]:
                    best = {"epoch": epoch, "pearson": mean_r}
                    save_best(epoch, mean_r)
            else:
                best = {"epoch": epoch, "pearson": None}
                save_best(epoch, None)
            row["seconds"] = round(time.perf_counter() - began, 3)
            history.append(row)
            write_history(history, out / "history.csv")
            if writer is not None:
                log_scalars(writer, row, epoch)
            done = {"fingerprint": fingerprint, "epoch": epoch, "history": history, "best": best}
            _save_resume_state(out / "last.pt", done, model, optimiser, scheduler, scaler, device)
            notify(hook, "train", completed=epoch, total=config.epochs,
                   details={"loss": f"{train_loss:.4f}", "dev_r": _fmt(row.get("dev_mean_pearson"))})
    if writer is not None:
        writer.close()
    if best["epoch"] == 0:
        raise ViperError(f"{out}: no epoch was trained (epochs = {config.epochs})")
    kept_bundle = load_checkpoint(out / "best.pt", device, runtime="torch")
    kept = kept_bundle.model
    moved = None
    if anchor:  # measured with the kept model (best.pt), on dev where there is one
        moved = (anchor_movement(kept, dev_data, "dev") if dev_data is not None
                 else anchor_movement(kept, train_data, "train"))
    # once per run: an export costs about an epoch of the demo
    export_fusion(kept, store.n_frames, out / "best.pt", twin_fields(kept_bundle))
    return TrainResult(out, out / "best.pt", best["epoch"], best["pearson"], len(history), history, moved)


def drop_modalities(masks: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Modality dropout: masks (b, n, m) with each modality of each clip masked whole with probability p.

    A clip never loses all its modalities: of those it has (valid in any frame), one chosen at random is kept
    when all would be dropped. Draws from torch's CPU RNG (or `generator`), so seeded runs stay reproducible."""
    if p <= 0 or masks.shape[-1] < 2:
        return masks
    present = masks.any(1)  # (b, m)
    drop = (torch.rand(present.shape, generator=generator) < p).to(masks.device) & present
    noise = torch.rand(present.shape, generator=generator).to(masks.device)
    keep_one = torch.where(present, noise, -1.0).argmax(-1)  # a random present modality per clip
    all_gone = present.any(-1) & ~(present & ~drop).any(-1)
    drop[all_gone, keep_one[all_gone]] = False
    return masks & ~drop[:, None, :]


def _train_epoch(model, loader, optimiser, scaler, autocast, device, modality_dropout: float = 0.0,
                 prior=None, anchor_shrink: float = 0.0) -> float:
    """One pass over the train split; returns the mean loss per clip (the shrinkage term included)."""
    model.train()
    total, count = 0.0, 0
    for tokens, masks, labels in loader:
        masks = drop_modalities(masks, modality_dropout)
        tokens, masks, labels = tokens.to(device), masks.to(device), labels.to(device)
        with autocast:
            predictions = model(tokens, masks)
        # the mean over emotions of each emotion's MSE (equal counts, so this is the plain mean)
        loss = F.mse_loss(predictions.float(), labels)
        if prior is not None and anchor_shrink:  # the correction's size: shrinks the model toward the general one
            loss = loss + anchor_shrink * F.mse_loss(predictions.float(), prior(tokens))
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        total += loss.item() * len(labels)
        count += len(labels)
    return total / count


def _score(model: Perceiver, data) -> tuple[dict[str, float], list[str]]:
    """Dev loss, mean and per-emotion Pearson; and the emotions whose r was undefined."""
    predictions = predict_model(model, data.tokens, data.modality_masks)
    scores, mean_r, undefined = pearson_scores(predictions, data.labels, data.emotions)
    row = {"dev_loss": float(np.mean((predictions - data.labels) ** 2)), "dev_mean_pearson": mean_r}
    return row | {f"dev_pearson_{emotion}": r for emotion, r in scores.items()}, undefined


def _save_resume_state(path: Path, state: dict[str, Any], model, optimiser, scheduler, scaler, device) -> None:
    """Everything needed to continue exactly where this epoch ended, RNG states included."""
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    torch_save_atomic(
        {
            **state,
            "model": model.state_dict(),
            "optimiser": optimiser.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": cuda_rng,
        },
        path,
    )


def _fingerprint(run_info: dict[str, Any]) -> dict[str, Any]:
    """What must not change when a run is resumed: everything but the epoch count and the device (as JSON would
    hold it, so a tuple and a list of the same modalities compare equal)."""
    train = {name: value for name, value in run_info["train"].items() if name not in RESUMABLE_CHANGES}
    model = dict(run_info["model"])
    # settings added later, left out at their defaults so runs started before them still resume
    if train.get("modality_dropout") == 0.0:
        del train["modality_dropout"]
    if train.get("person_norm") is False:
        del train["person_norm"]
    if model.get("layout") == "concat":
        del model["layout"]
    if model.get("anchor_start") == -1:  # not anchored: neither the anchoring settings nor their absence matter
        for name in ("anchor_start", "anchor_map"):
            model.pop(name, None)
        for name in ("anchor", "anchor_shrink"):
            train.pop(name, None)
    return json.loads(json.dumps({**run_info, "train": train, "model": model}))


def _resume_state(path: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    if not path.exists():
        return None
    fix = "delete it to start over"
    state = torch_load(path, "a viper resume file", fix)
    missing = [key for key in RESUME_KEYS if key not in state]
    if missing:
        raise ViperError(f"{path} is damaged or not a viper resume file (no {', '.join(missing)}): {fix}")
    if state["fingerprint"] != fingerprint:
        changed = _differences(state["fingerprint"], fingerprint)
        raise ViperError(
            f"{path.parent} holds a run with another configuration ({'; '.join(changed)}); "
            "use a new --out folder, or the same settings to resume"
        )
    return state


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changes = []
    for section in sorted(set(old) | set(new)):
        a, b = old.get(section), new.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += [
                f"{section}.{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
            ]
        elif a != b:
            changes.append(f"{section}: {a!r} -> {b!r}")
    return changes


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
