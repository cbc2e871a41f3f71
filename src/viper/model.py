"""The fusion model: latents cross-attend to a clip's frame tokens, self-attend, and are pooled to one score per
emotion (a Perceiver, written on torch's scaled_dot_product_attention in the style of lucidrains/perceiver-pytorch).
Where it saves work the attention's arithmetic is rearranged without changing the function or the parameters
(`CrossAttentionBlock.read`, `Attention.self_attend`); a test holds it to the plain computation.

Two token layouts (`PerceiverConfig.layout`): `concat` (the paper's, the default) gives one token per frame, the
modalities side by side; `per_modality` gives one token per modality per frame (N×M tokens), each modality
projected by its own linear layer, plus a learned modality embedding and a sinusoidal encoding of the frame index.

Frames whose mask is False take no part in attention, and a modality masked in a frame reads as zeros after
standardisation (concat) or is left out of attention (per_modality), so neither changes the prediction. The
`paper` preset is transformers' PerceiverModel at its library defaults, as the ViPER authors used it: its encoder
has exactly the same parameters.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import from_dict
from .errors import SettingError, ViperError
from .extractors.expression_general import BASIC_EMOTIONS
from .settings import real_number, whole_number


@dataclass(frozen=True)
class PerceiverConfig:
    """Hyperparameters of the fusion model (the token width and the emotions come from the data)."""

    num_latents: int = 32
    latent_dim: int = 128
    input_dim: int | None = 128  # tokens are projected to this width first; None: attention reads them as they are
    cross_heads: int = 1
    cross_layers: int = 1  # cross-attentions to the frames, spread evenly over the self-attention stack
    self_layers: int = 2
    latent_heads: int = 4
    widening_factor: int = 4
    attn_dropout: float = 0.1
    ff_dropout: float = 0.1
    layout: str = "concat"  # concat: a token per frame (the paper's); per_modality: a token per modality per frame
    # Anchoring on the general model (set by training, see `anchoring`): the output is the general model's clip
    # probability of each output's basic emotion plus the learned correction. -1: not anchored.
    anchor_start: int = -1  # token column where the `expression` modality's 7 probabilities start
    anchor_map: tuple[int, ...] = ()  # per output, its index in BASIC_EMOTIONS, or -1 (no prior for that output)

    def __post_init__(self) -> None:
        """Refuse sizes torch would fail on while building the model (named as model_overrides' keys)."""
        object.__setattr__(self, "anchor_map", tuple(self.anchor_map))  # a list when read back from JSON
        try:
            for name in ("num_latents", "latent_dim", "cross_heads", "cross_layers", "self_layers", "latent_heads",
                         "widening_factor"):
                whole_number(name, getattr(self, name))
            if self.input_dim is not None:
                whole_number("input_dim", self.input_dim)
            for name in ("attn_dropout", "ff_dropout"):
                real_number(name, getattr(self, name), maximum=1.0)
        except SettingError as error:
            raise ViperError(f"model setting {error}") from None


PRESETS: dict[str, PerceiverConfig] = {
    # Trains in seconds per epoch on 2 CPU cores (see the report in benchmarks/train.py).
    "compact": PerceiverConfig(),
    # transformers.PerceiverConfig() defaults, as the authors used them; for GPUs.
    "paper": PerceiverConfig(
        num_latents=256,
        latent_dim=1280,
        input_dim=None,
        cross_heads=8,
        cross_layers=1,
        self_layers=26,
        latent_heads=8,
        widening_factor=1,
        attn_dropout=0.1,
        ff_dropout=0.0,
    ),
}


LAYOUTS = ("concat", "per_modality")


def model_config(preset: str = "compact", overrides: dict | None = None) -> PerceiverConfig:
    """A preset with some fields replaced, e.g. `model_config("compact", {"self_layers": 4})`."""
    if preset not in PRESETS:
        raise ViperError(f"unknown model preset {preset!r}; choose one of {', '.join(PRESETS)}")
    base = dataclasses.asdict(PRESETS[preset])
    return from_dict(PerceiverConfig, {**base, **(overrides or {})})


class Attention(nn.Module):
    """Multi-head attention's weights (`to_q`, `to_kv`, `to_out`: the names checkpoints hold) and its SDPA core;
    the heads share `inner_dim` channels."""

    def __init__(self, *, query_dim: int, context_dim: int, inner_dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if inner_dim % heads:
            raise ViperError(f"attention width {inner_dim} is not divisible by {heads} heads")
        self.heads = heads
        self.dropout = dropout
        self.to_q = nn.Linear(query_dim, inner_dim)
        self.to_kv = nn.Linear(context_dim, inner_dim * 2)
        self.to_out = nn.Linear(inner_dim, query_dim)

    def self_attend(self, x: torch.Tensor) -> torch.Tensor:
        """Self-attention of x (b, l, d), its q, k and v from one matmul."""
        weight = torch.cat([self.to_q.weight, self.to_kv.weight])
        bias = torch.cat([self.to_q.bias, self.to_kv.bias])
        q, k, v = F.linear(x, weight, bias).chunk(3, dim=-1)
        return self.to_out(self.attend(q, k, v))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None):
        """q (b, l, inner), k and v (b, n, inner), mask (b, n) True where a position may be attended to ->
        (b, l, inner), heads merged."""
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (q, k, v))  # (b, h, seq, d)
        attn_mask = None if mask is None else mask[:, None, None, :]
        dropout = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout)
        return out.transpose(1, 2).flatten(2)

    def attend_absorbed(self, q: torch.Tensor, context: torch.Tensor, norm: nn.LayerNorm, mask: torch.Tensor):
        """The same attention for queries q (l, inner) shared by the whole batch over norm(context), without
        projecting the context (b, n, width), which arrives layer-normed without norm's scale and shift.

        Per head, q_h·(W_k y + b_k) = (q_h W_k)·y + q_h·b_k and out_h = P_h (W_v y + b_v) is summed through W_o,
        so the key projection folds into the queries and the value projection into the output projection, with
        y = x̂·γ + β folded in too: attention runs on [x̂, 1] (the 1 carries the biases, and the row sums of P
        after dropout), at a cost that does not grow with batch × frames × width² (see `absorbed_is_cheaper`)."""
        heads, inner = self.heads, q.shape[-1]
        w_k, w_v = self.to_kv.weight.unflatten(0, (2, heads, -1)).unbind(0)  # (h, d, width) each
        b_k, b_v = self.to_kv.bias.unflatten(0, (2, heads, -1)).unbind(0)  # (h, d) each
        q = q.unflatten(-1, (heads, -1)).transpose(0, 1)  # (h, l, d)
        out_w = self.to_out.weight.unflatten(1, (heads, -1)).transpose(0, 1)  # (h, out, d)
        keys, values = q @ w_k, out_w @ w_v  # (h, l, width), (h, out, width): weights on y
        key_bias = keys @ norm.bias + (q @ b_k[..., None]).squeeze(-1)  # (h, l)
        value_bias = values @ norm.bias + (out_w @ b_v[..., None]).squeeze(-1)  # (h, out)
        queries = torch.cat([keys * norm.weight, key_bias[..., None]], -1)  # (h, l, width + 1): on [x̂, 1]
        out_weight = torch.cat([values * norm.weight, value_bias[..., None]], -1)  # (h, out, width + 1)
        ones = context.new_ones(*context.shape[:-1], 1)
        tokens = torch.cat([context, ones], -1)[:, None].expand(-1, heads, -1, -1)  # (b, h, n, width + 1)
        read = F.scaled_dot_product_attention(
            queries.expand(context.shape[0], -1, -1, -1),  # len() would export as a fixed batch
            tokens,
            tokens,
            attn_mask=mask[:, None, None, :],
            dropout_p=self.dropout if self.training else 0.0,
            scale=(inner // heads) ** -0.5,
        )  # (b, h, l, width + 1)
        return read.transpose(1, 2).flatten(2) @ out_weight.transpose(0, 1).flatten(1).T + self.to_out.bias


def low_precision(x: torch.Tensor) -> bool:
    """Whether matmuls run in fp16/bf16 here: the absorbed read's last product sums h·(width + 1) terms that
    cancel, and in half precision moved the outputs 4 % on an H200 (the plain path: 0.07 % fp16, 0.6 % bf16)."""
    return x.dtype in (torch.float16, torch.bfloat16) or torch.is_autocast_enabled(x.device.type)


def absorbed_is_cheaper(*, batch: int, latents: int, frames: int, width: int, inner: int, heads: int, out: int):
    """Whether `Attention.attend_absorbed` takes fewer multiply-adds than projecting the context (forward; the
    backward scales alike). It pays for few latents read from many wide tokens (the compact preset on the full
    2080-d tokens, batch 16: 5x fewer), not for many latents and heads (the paper preset)."""
    standard = batch * frames * width * 2 * inner + 2 * batch * latents * frames * inner + batch * latents * inner * out
    absorbed = (latents + out) * inner * (width + 1) + batch * heads * latents * (width + 1) * (2 * frames + out)
    return absorbed < standard


class FeedForward(nn.Module):
    def __init__(self, *, dim: int, mult: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim * mult), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim * mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CrossAttentionBlock(nn.Module):
    """Latents read the frames (pre-norm, residual), then a feed-forward; it works at the frames' width, as
    transformers' Perceiver does by default."""

    def __init__(self, *, latent_dim: int, context_dim: int, heads: int, config: PerceiverConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(latent_dim)
        self.norm_context = nn.LayerNorm(context_dim)
        self.attn = Attention(
            query_dim=latent_dim,
            context_dim=context_dim,
            inner_dim=context_dim,
            heads=heads,
            dropout=config.attn_dropout,
        )
        self.norm_ff = nn.LayerNorm(latent_dim)
        self.ff = FeedForward(dim=latent_dim, mult=config.widening_factor, dropout=config.ff_dropout)

    def forward(
        self, latents: torch.Tensor, *, context: torch.Tensor, mask: torch.Tensor, any_valid: torch.Tensor
    ) -> torch.Tensor:
        """latents (b, l, d), or (l, d) when every clip starts from the same learned latents."""
        read = self.read(self.norm(latents), context, mask)
        latents = latents + read * any_valid[:, None, None]  # a clip without valid frames reads nothing
        return latents + self.ff(self.norm_ff(latents))

    def read(self, latents: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention of the (normed) latents over the context, absorbed (see `Attention.attend_absorbed`) when
        the queries are shared and that is cheaper. For training on the tokens as they are (no gradient into the
        context), the context norm's scale and shift are folded into the key/value projection, W (x̂·γ + β) + b =
        (W·γ) x̂ + (W β + b), so backward skips the input gradient of the widest matmul."""
        attn, norm = self.attn, self.norm_context
        # x̂: no scale and shift yet (the norm's own shape: the exporter takes none read from a tensor)
        normed = F.layer_norm(context, norm.normalized_shape, eps=norm.eps)
        q = attn.to_q(latents)
        if q.dim() == 2:  # shared by the batch: projected once
            batch, frames, width = context.shape
            sizes = {"latents": len(q), "inner": q.shape[-1], "heads": attn.heads, "out": attn.to_out.out_features}
            if absorbed_is_cheaper(batch=batch, frames=frames, width=width, **sizes) and not low_precision(q):
                return attn.attend_absorbed(q, normed, norm, mask)
            q = q.expand(batch, -1, -1)
        if torch.is_grad_enabled() and not context.requires_grad:
            kv_weight, kv_bias = attn.to_kv.weight * norm.weight, attn.to_kv.bias + attn.to_kv.weight @ norm.bias
            kv = F.linear(normed, kv_weight, kv_bias)
        else:  # inference, or a projected context: folding would only add work
            kv = attn.to_kv(normed * norm.weight + norm.bias)
        k, v = kv.chunk(2, dim=-1)
        return attn.to_out(attn.attend(q, k, v, mask))


class SelfAttentionBlock(nn.Module):
    def __init__(self, *, latent_dim: int, heads: int, config: PerceiverConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(latent_dim)
        self.attn = Attention(
            query_dim=latent_dim,
            context_dim=latent_dim,
            inner_dim=latent_dim,
            heads=heads,
            dropout=config.attn_dropout,
        )
        self.norm_ff = nn.LayerNorm(latent_dim)
        self.ff = FeedForward(dim=latent_dim, mult=config.widening_factor, dropout=config.ff_dropout)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        latents = latents + self.attn.self_attend(self.norm(latents))
        return latents + self.ff(self.norm_ff(latents))


class Perceiver(nn.Module):
    """Tokens (b, n, Σ token_dims) of the modalities side by side, with a mask per frame (b, n) or per frame and
    modality (b, n, m) -> one score per output (b, num_outputs).

    Tokens are standardised with the `token_mean` / `token_std` buffers (identity until `set_standardisation`),
    so the statistics of the training split travel with the weights.
    """

    def __init__(self, *, token_dims: Sequence[int], num_outputs: int, config: PerceiverConfig) -> None:
        super().__init__()
        self.config = config
        self.token_dims = tuple(int(d) for d in token_dims)
        self.num_outputs = num_outputs
        if config.layout not in LAYOUTS:
            raise ViperError(f"unknown layout {config.layout!r}; choose one of {', '.join(LAYOUTS)}")
        token_dim = sum(self.token_dims)
        self.register_buffer("token_mean", torch.zeros(token_dim))
        self.register_buffer("token_std", torch.ones(token_dim))
        column_part = [part for part, dim in enumerate(self.token_dims) for _ in range(dim)]  # each column's modality
        self.register_buffer("column_part", torch.tensor(column_part), persistent=False)

        if config.layout == "concat":
            context_dim = config.input_dim or token_dim
            self.project = nn.Linear(token_dim, context_dim) if config.input_dim else nn.Identity()
        else:  # per_modality: the model width is input_dim (latent_dim when None: tokens of different widths)
            context_dim = config.input_dim or config.latent_dim
            self.project_parts = nn.ModuleList(nn.Linear(dim, context_dim) for dim in self.token_dims)
            self.modality_embedding = nn.Parameter(torch.randn(len(self.token_dims), context_dim) * 0.02)
        self.latents = nn.Parameter(torch.randn(config.num_latents, config.latent_dim) * 0.02)
        if not 1 <= config.cross_layers <= config.self_layers:
            raise ViperError(
                f"need 1 <= cross_layers <= self_layers, got {config.cross_layers} and {config.self_layers}"
            )
        self.cross_at = {i * config.self_layers // config.cross_layers for i in range(config.cross_layers)}
        self.cross = nn.ModuleList(
            CrossAttentionBlock(
                latent_dim=config.latent_dim, context_dim=context_dim, heads=config.cross_heads, config=config
            )
            for _ in range(config.cross_layers)
        )
        self.layers = nn.ModuleList(
            SelfAttentionBlock(latent_dim=config.latent_dim, heads=config.latent_heads, config=config)
            for _ in range(config.self_layers)
        )
        self.to_out = nn.Sequential(nn.LayerNorm(config.latent_dim), nn.Linear(config.latent_dim, num_outputs))
        if config.anchor_start >= 0:
            if len(config.anchor_map) != num_outputs:
                raise ViperError(f"anchor_map needs one entry per output ({num_outputs}), got {config.anchor_map}")
            nn.init.zeros_(self.to_out[1].weight)  # training starts from the general model itself
            nn.init.zeros_(self.to_out[1].bias)
            index = torch.tensor(config.anchor_map)
            self.register_buffer("anchor_index", index.clamp_min(0), persistent=False)
            self.register_buffer("anchor_used", (index >= 0).float(), persistent=False)

    def set_standardisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.token_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.token_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-6))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if mask.dim() == 2:  # one mask per frame: every modality of a valid frame is valid
            mask = mask[..., None].expand(*mask.shape, len(self.token_dims))
        frame_mask = mask.any(-1)  # (b, n)
        any_valid = frame_mask.any(-1)  # (b,)
        part_mask = mask[..., self.column_part]  # (b, n, Σd); not repeat_interleave, which the exporter breaks
        x = ((tokens - self.token_mean) / self.token_std).masked_fill(~part_mask, 0.0)  # masked: the train mean
        if self.config.layout == "concat":
            context = self.project(x)
            attend = frame_mask
        else:  # (b, n, m, d) -> (b, n·m, d): frame-major, each token with its own modality's mask
            parts = x.split(self.token_dims, dim=-1)
            context = torch.stack([project(part) for project, part in zip(self.project_parts, parts, strict=True)], 2)
            time = frame_encoding(tokens.shape[1], context.shape[-1], device=context.device, dtype=context.dtype)
            context = (context + self.modality_embedding + time[:, None, :]).flatten(1, 2)
            attend = mask.flatten(1, 2)
        attend = attend | ~any_valid[:, None]  # keeps softmax finite for a clip with no valid frame

        latents = self.latents  # (l, d) until the first layer: shared by the batch
        cross = iter(self.cross)
        for index, layer in enumerate(self.layers):
            if index in self.cross_at:
                latents = next(cross)(latents, context=context, mask=attend, any_valid=any_valid.to(latents.dtype))
            latents = layer(latents)
        out = self.to_out(latents.mean(dim=1))
        return out + self.prior(tokens) if self.config.anchor_start >= 0 else out

    def prior(self, tokens: torch.Tensor) -> torch.Tensor:
        """The general model's probability of each output's basic emotion (0 for outputs without one), read from
        the raw expression values: no mask or modality dropout removes it."""
        start = self.config.anchor_start
        values = tokens[..., start : start + len(BASIC_EMOTIONS)].float()
        pooled = pool_expressions_torch(values, values.sum(dim=-1) > 0.5)  # frames with expression evidence
        return pooled[:, self.anchor_index] * self.anchor_used


def pool_expressions_torch(probs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """general_model.pool_expressions in torch, inside the graph a trained model (and its best.onnx) runs: the
    softmax of the mean log-probability over the valid frames, uniform where a clip has none."""
    weights = valid.to(probs.dtype)[..., None]
    log_probs = torch.log(probs.clamp(min=1e-12)) * weights
    mean = log_probs.sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    pooled = torch.softmax(mean, dim=-1)
    uniform = torch.full_like(pooled, 1.0 / probs.shape[-1])
    return torch.where(valid.any(dim=1, keepdim=True), pooled, uniform)


def frame_encoding(n_frames: int, dim: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Sinusoidal encoding (n_frames, dim) of the frame index (Vaswani et al.): sin on even, cos on odd channels."""
    position = torch.arange(n_frames, device=device, dtype=torch.float32)[:, None]
    rates = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10_000.0) / dim))
    encoding = torch.zeros(n_frames, dim, device=device, dtype=torch.float32)
    encoding[:, 0::2] = torch.sin(position * rates)
    encoding[:, 1::2] = torch.cos(position * rates)[:, : dim // 2]
    return encoding.to(dtype)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
