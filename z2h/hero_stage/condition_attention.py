"""Flux joint attention with EasyControl-style condition branches.

The condition tokens attend only to themselves (each condition only to its own tokens), while the text
and noisy image tokens attend to everything. Because the conditions never look at the noisy tokens,
their hidden states can be computed in a pass of their own; that is what this processor does:

- ``record`` pass: the sequence holds only condition tokens (no text). Attention is block-diagonal per
  condition (``mask``) and every layer stores its condition keys/values (after RMS norm and RoPE).
- ``use`` pass: the usual text + noisy-token pass; every layer appends the stored condition keys/values
  to its own, so noisy/text queries see the conditions, and nothing flows back into them.

Splitting the passes also gives the conditions their own timestep (t = 0, as EasyControl and
OminiControl do) with the stock Flux blocks, and lets sampling compute the conditions once per frame
instead of once per step (EasyControl's KV cache). The pass state travels in ``joint_attention_kwargs``
(``{"cond_kv": ConditionKV(...)}``), not in globals, so gradient checkpointing recomputes it correctly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ConditionKV:
    """State of one record/use pass, shared by every attention layer of the transformer."""

    mode: str  # "record" or "use"
    store: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # layer -> (key, value), (B, N, H, D)
    mask: Any = None  # record pass: (1, 1, N, N) bool, True where a condition token may attend


def condition_mask(lengths: list[int], device: Any = None) -> Any:
    """Block-diagonal (1, 1, N, N) boolean mask: token i may attend to j iff they share a condition."""
    import torch

    group = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    return (group[:, None] == group[None, :])[None, None].to(device)


class ConditionAttnProcessor:
    """FluxAttnProcessor with condition K/V recording (``record``) and injection (``use``)."""

    def __init__(self, layer: str):
        self.layer = layer

    def __call__(
        self,
        attn: Any,
        hidden_states: Any,
        encoder_hidden_states: Any = None,
        attention_mask: Any = None,
        image_rotary_emb: Any = None,
        cond_kv: ConditionKV | None = None,
    ) -> Any:
        import torch
        from diffusers.models.attention_dispatch import dispatch_attention_fn
        from diffusers.models.embeddings import apply_rotary_emb

        def heads(x: Any) -> Any:
            return x.unflatten(-1, (-1, attn.head_dim))

        query = attn.norm_q(heads(attn.to_q(hidden_states)))
        key = attn.norm_k(heads(attn.to_k(hidden_states)))
        value = heads(attn.to_v(hidden_states))
        n_text = 0
        if encoder_hidden_states is not None and attn.added_kv_proj_dim is not None:
            n_text = encoder_hidden_states.shape[1]
            query = torch.cat(
                [attn.norm_added_q(heads(attn.add_q_proj(encoder_hidden_states))), query], dim=1
            )
            key = torch.cat([attn.norm_added_k(heads(attn.add_k_proj(encoder_hidden_states))), key], dim=1)
            value = torch.cat([heads(attn.add_v_proj(encoder_hidden_states)), value], dim=1)
        if image_rotary_emb is not None:
            query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
            key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)

        if cond_kv is not None and cond_kv.mode == "record":
            if cond_kv.mask is None or cond_kv.mask.shape[-1] != key.shape[1]:
                raise RuntimeError(
                    f"{self.layer}: record pass needs a condition mask over {key.shape[1]} tokens"
                )
            cond_kv.store[self.layer] = (key, value)
            attention_mask = cond_kv.mask
        elif cond_kv is not None and cond_kv.mode == "use" and self.layer in cond_kv.store:
            ck, cv = cond_kv.store[self.layer]
            b = key.shape[0]
            key = torch.cat([key, ck.expand(b, -1, -1, -1)], dim=1)
            value = torch.cat([value, cv.expand(b, -1, -1, -1)], dim=1)

        out = dispatch_attention_fn(query, key, value, attn_mask=attention_mask).flatten(2, 3).to(query.dtype)
        if encoder_hidden_states is None:
            return out
        context, out = out[:, :n_text], out[:, n_text:]
        out = attn.to_out[1](attn.to_out[0](out.contiguous()))
        return out, attn.to_add_out(context.contiguous())


def install_condition_attention(transformer: Any) -> None:
    """Give every attention layer of a FluxTransformer2DModel a :class:`ConditionAttnProcessor`."""
    names = list(transformer.attn_processors)
    transformer.set_attn_processor({name: ConditionAttnProcessor(name) for name in names})
