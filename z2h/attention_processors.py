"""Diffusers attention processor that turns the U-Net decoder's self-attention into cross-image attention.

One :class:`CrossImageAttnProcessor` sits on every ``attn1`` layer of ``up_blocks`` 1-3; all of them share
one :class:`CrossImageState`, which the Zero-Stage switches between modes around each U-Net call:

- ``"off"``: plain self-attention (same math as diffusers' ``AttnProcessor2_0``);
- ``"record_kv"``: plain self-attention, and keep K/V per (layer, timestep) (the reference's inversion);
- ``"record_q"``: plain self-attention, and keep Q per (layer, timestep) (the target's inversion, for γ);
- ``"inject"``: Q = τ·(γ·q_inv + (1−γ)·q_cur), K/V of the reference at the same timestep, each token
  restricted to its top-k reference tokens (``state.index[token count]``) via :func:`masked_attention`.

Every other attention layer keeps its stock processor (``set_attn_processor`` needs a full dict);
:func:`cross_image_attention` installs and restores them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from z2h.attention import masked_attention

MODES = ("off", "record_kv", "record_q", "inject")


@dataclass
class CrossImageState:
    """Shared by all processors of one U-Net: the mode, the current timestep and what was recorded."""

    gamma: float = 1.0
    tau: float = 1.0
    mode: str = "off"
    t: int | None = None
    kv: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    q: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict)
    index: dict[int, torch.Tensor] = field(default_factory=dict)  # token count -> idx (B, N, k)
    calls: Counter = field(default_factory=Counter)  # (layer, mode) -> count

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.mode = mode


class CrossImageAttnProcessor:
    """Processor for one self-attention layer ``name``; behaviour follows ``state.mode``."""

    def __init__(self, name: str, state: CrossImageState):
        self.name = name
        self.state = state

    def _key(self) -> tuple[str, int]:
        if self.state.t is None:
            raise RuntimeError(f"{self.name}: state.t (the timestep) must be set in mode {self.state.mode!r}")
        return self.name, int(self.state.t)

    def __call__(
        self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, **kwargs: Any,
    ) -> torch.Tensor:
        if hidden_states.ndim != 3 or encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError(f"{self.name}: cross-image attention expects plain self-attention on "
                             f"(B, N, C) tokens, got {tuple(hidden_states.shape)} with extra inputs")
        if attn.spatial_norm is not None or attn.group_norm is not None or attn.norm_q is not None:
            raise ValueError(f"{self.name}: attention layers with spatial/group/q-k norms are not supported")
        state, mode = self.state, self.state.mode
        state.calls[self.name, mode] += 1
        b, n, _ = hidden_states.shape
        heads = attn.heads

        def split(x: torch.Tensor) -> torch.Tensor:  # (B, N, heads*d) -> (B, heads, N, d)
            return x.view(x.shape[0], -1, heads, x.shape[-1] // heads).transpose(1, 2)

        q = split(attn.to_q(hidden_states))
        if mode == "inject":
            key = self._key()
            if key not in state.kv:
                raise RuntimeError(f"{self.name}: no reference K/V recorded for timestep {key[1]}")
            if n not in state.index:
                raise RuntimeError(f"{self.name}: no correspondence index for {n} tokens "
                                   f"(have {sorted(state.index)})")
            if state.gamma:
                if key not in state.q:
                    raise RuntimeError(f"{self.name}: no inverted-pass query recorded for timestep {key[1]}")
                q = state.gamma * state.q[key] + (1.0 - state.gamma) * q
            q = q * state.tau
            k, v = state.kv[key]
            idx = state.index[n]
            k, v, idx = k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1), idx.expand(b, -1, -1)
            out = masked_attention(q, k.to(q.dtype), v.to(q.dtype), idx, scale=attn.scale)
        else:
            k, v = split(attn.to_k(hidden_states)), split(attn.to_v(hidden_states))
            if mode == "record_kv":
                state.kv[self._key()] = (k, v)
            elif mode == "record_q":
                state.q[self._key()] = q
            out = F.scaled_dot_product_attention(q, k, v, scale=attn.scale)

        out = attn.to_out[1](attn.to_out[0](out.transpose(1, 2).reshape(b, n, -1)))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


_TARGET = re.compile(r"^up_blocks\.(\d+)\..*\.attn1\.processor$")


def target_layers(processor_keys: list[str], blocks: tuple[int, ...] = (1, 2, 3)) -> list[str]:
    """The ``attn1`` processor keys inside ``up_blocks[i]`` for i in ``blocks``."""
    return [k for k in processor_keys if (m := _TARGET.match(k)) and int(m.group(1)) in blocks]


@contextmanager
def cross_image_attention(
    unet: Any, state: CrossImageState, blocks: tuple[int, ...] = (1, 2, 3)
) -> Iterator[dict[str, CrossImageAttnProcessor]]:
    """Install processors on the decoder's self-attention layers; restore the original ones on exit.

    Yields {layer name: processor}. Raises ValueError when the U-Net has no such layers.
    """
    original = unet.attn_processors
    ours = {k: CrossImageAttnProcessor(k.removesuffix(".processor"), state)
            for k in target_layers(list(original), blocks)}
    if not ours:
        raise ValueError(f"the U-Net has no attn1 layers in up_blocks {blocks}")
    unet.set_attn_processor({**original, **ours})  # set_attn_processor pops from the dict it gets
    try:
        yield {p.name: p for p in ours.values()}
    finally:
        unet.set_attn_processor(dict(original))
