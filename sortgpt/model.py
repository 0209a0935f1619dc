"""The GPT, written by hand: GPT-2-style decoder with masked multi-head attention and a KV cache.

Follows minGPT's ``model.py``: plain PyTorch, no framework code, GPT-2 parameter names so that weights
interoperate with GPT-2 tooling. ``attn_impl="manual"`` is the readable reference path;
``attn_impl="sdpa"`` uses ``F.scaled_dot_product_attention`` and gives the same result within float
tolerance.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch.nn import functional as F

log = logging.getLogger(__name__)

ATTN_IMPLS = ("manual", "sdpa")


@dataclass
class GPTConfig:
    """Shape of the model. The seed's reference: vocab 3, block 11, 4 layers, 4 heads, d_model 128."""

    vocab_size: int = 3
    block_size: int = 11
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128
    dropout: float = 0.1
    bias: bool = True
    attn_impl: str = "manual"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "d_model"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.d_model ({self.d_model}) must be divisible by n_head ({self.n_head})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if self.attn_impl not in ATTN_IMPLS:
            raise ValueError(f"GPTConfig.attn_impl must be one of {ATTN_IMPLS}, got {self.attn_impl!r}")


_GELU_K = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh(K (x + C x^3)), computed in place in one buffer: three fewer passes over memory."""
    return (x * x).mul_(_GELU_C * _GELU_K).add_(_GELU_K).mul_(x).tanh_()


class _TanhGELU(torch.autograd.Function):
    """GELU's tanh approximation with a hand-written backward.

    Autograd through the formula keeps five intermediates and runs about twenty elementwise kernels per
    call; here only ``x`` and ``t = tanh(...)`` are kept and the derivative is computed in place.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        t = _gelu_tanh(x)
        ctx.save_for_backward(x, t)
        half = 0.5 * x
        return half.addcmul_(half, t)  # 0.5 x (1 + t)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        x, t = ctx.saved_tensors
        # d/dx 0.5 x (1 + t) = 0.5 (1 + t) + 0.5 x (1 - t^2) K (1 + 3 C x^2)
        d = (x * x).mul_(3.0 * _GELU_C * _GELU_K).add_(_GELU_K)  # K (1 + 3 C x^2)
        d.mul_(torch.addcmul(torch.ones_like(t), t, t, value=-1.0)).mul_(x)  # x (1 - t^2) K (..)
        d.add_(t).add_(1.0).mul_(0.5)
        return d.mul_(grad)


class GELU(nn.Module):
    """GELU, tanh approximation as in GPT-2: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    Same formula either way; with gradients it runs through ``_TanhGELU``'s hand-written backward,
    which saves memory and elementwise passes (a training step of the seed model is dominated by them).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _TanhGELU.apply(x)
        half = 0.5 * x
        return half.addcmul_(half, _gelu_tanh(x))  # 0.5 x (1 + t), no graph needed: in place


class KVCache:
    """Keys and values of the positions decoded so far: one buffer per layer, allocated on first use."""

    def __init__(self, max_len: int) -> None:
        self.max_len = max_len
        self.k: dict[int, torch.Tensor] = {}
        self.v: dict[int, torch.Tensor] = {}
        self.pos = 0  # number of positions already stored

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new (B, nh, T, hs) keys/values after the cached ones; return all (B, nh, P+T, hs)."""
        if layer not in self.k:
            B, nh, _, hs = k.shape
            self.k[layer] = k.new_empty(B, nh, self.max_len, hs)
            self.v[layer] = v.new_empty(B, nh, self.max_len, hs)
        end = self.pos + k.size(2)
        self.k[layer][:, :, self.pos:end] = k
        self.v[layer][:, :, self.pos:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


class CausalSelfAttention(nn.Module):
    """Multi-head masked self-attention: position t attends only to positions <= t."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.d_model = config.d_model
        self.dropout = config.dropout
        self.attn_impl = config.attn_impl
        # query, key, value projections for all heads, in one matmul
        self.c_attn = nn.Linear(config.d_model, 3 * config.d_model, bias=config.bias)
        # output projection
        self.c_proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        # lower-triangular mask; not part of the state dict (GPT-2 layout holds weights only)
        mask = torch.tril(torch.ones(config.block_size, config.block_size, dtype=torch.bool))
        self.register_buffer("mask", mask.view(1, 1, config.block_size, config.block_size),
                             persistent=False)
        # set record_attention to keep the last attention weights (B, nh, T, T_total) for inspection
        self.record_attention = False
        self.attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.size()  # batch, new positions, d_model
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(self.d_model, dim=2)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)

        start = 0
        if cache is not None:  # append the new keys/values after the ones already decoded
            start = cache.pos
            k, v = cache.update(layer, k, v)  # (B, nh, P+T, hs)
        mask = self.mask[:, :, start:start + T, :start + T]  # (1, 1, T, P+T)

        if self.attn_impl == "sdpa" and not self.record_attention:
            dropout_p = self.dropout if self.training else 0.0
            if start == 0:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
            elif T == 1:  # one new token sees every earlier one: no mask needed
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, P+T)
            if T > 1:  # a single new position sees every earlier one: nothing to mask
                att = att.masked_fill(~mask, float("-inf"))
            att = F.softmax(att, dim=-1)
            if self.record_attention:
                self.attention = att.detach()
            att = self.attn_dropout(att)
            y = att @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward: d_model -> 4 d_model -> GELU -> d_model."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.d_model, 4 * config.d_model, bias=config.bias)
        self.gelu = GELU()
        self.c_proj = nn.Linear(4 * config.d_model, config.d_model, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    """GPT-2-style language model: token + position embeddings, n_layer blocks, final LN, lm_head."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.d_model),
            wpe=nn.Embedding(config.block_size, config.d_model),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.d_model, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)

        # GPT-2 initialisation; residual projections scaled down by depth
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        log.info("number of parameters: %.2fM", self.num_parameters() / 1e6)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self) -> int:
        """Parameters counted as minGPT counts them: all but ``lm_head``."""
        return sum(p.numel() for p in self.transformer.parameters())

    @property
    def attn_impl(self) -> str:
        return self.config.attn_impl

    def set_attn_impl(self, impl: str) -> None:
        """Switch every attention layer between the manual reference path and the fused sdpa path."""
        if impl not in ATTN_IMPLS:
            raise ValueError(f"attn_impl must be one of {ATTN_IMPLS}, got {impl!r}")
        self.config.attn_impl = impl
        for block in self.transformer.h:
            block.attn.attn_impl = impl

    def hidden(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Final-LayerNorm hidden states (B, T, d_model) of ``idx``, continuing ``cache`` if given."""
        B, T = idx.size()
        start = cache.pos if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(
                f"cannot run a sequence of length {start + T}: block_size is {self.config.block_size}"
            )
        pos = torch.arange(start, start + T, dtype=torch.long, device=idx.device)  # (T,)
        tok_emb = self.transformer.wte(idx)  # (B, T, C)
        pos_emb = self.transformer.wpe(pos)  # (T, C)
        x = self.transformer.drop(tok_emb + pos_emb)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache, i)
        if cache is not None:
            cache.pos += T
        return self.transformer.ln_f(x)  # (B, T, C)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, vocab) for every position and, given targets, the cross-entropy loss.

        Targets equal to -1 are ignored, so only the positions that matter are learned.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
        logits = self.lm_head(self.hidden(idx))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1),
                                   ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        do_sample: bool = False,
        top_k: int | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Append ``max_new_tokens`` tokens to ``idx`` (B, T): greedy by default, batched.

        With ``use_cache`` each new token costs one position of compute (keys and values of earlier
        positions are kept); ``use_cache=False`` recomputes the whole prefix, the reference path.
        Only the last position goes through ``lm_head``.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
        total = idx.size(1) + max_new_tokens
        if total - 1 > self.config.block_size:  # the last new token is never fed back
            raise ValueError(
                f"prompt of length {idx.size(1)} plus {max_new_tokens} new tokens needs "
                f"{total - 1} positions; block_size is {self.config.block_size}"
            )
        if max_new_tokens <= 0:
            return idx
        cache = KVCache(total) if use_cache else None
        out = torch.empty(idx.size(0), total, dtype=idx.dtype, device=idx.device)
        out[:, :idx.size(1)] = idx
        t = idx.size(1)
        step_in = idx
        for _ in range(max_new_tokens):
            h = self.hidden(step_in, cache) if use_cache else self.hidden(out[:, :t])
            logits = self.lm_head(h[:, -1, :]).float()  # (B, V): only the position that is decoded
            if do_sample:
                logits = logits / temperature
                if top_k is not None:
                    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float("inf")
                probs = F.softmax(logits, dim=-1)
                nxt = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
            else:
                nxt = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
            out[:, t:t + 1] = nxt
            t += 1
            step_in = nxt
        return out
