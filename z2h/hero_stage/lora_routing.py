"""Per-condition LoRA adapters that act only on their own condition's tokens.

peft routes adapters per sample (``adapter_names=``), not per token. Here every condition gets its own
peft LoRA (all of them active at once) and a forward hook on each adapter's ``lora_B`` multiplies its
output by a per-token 0/1 mask, so ``y = W x + sum_i mask_i * B_i A_i x * scale_i``: tokens outside
condition i never see adapter i. Masks are given over the image-stream tokens; single-stream blocks
prefix the text tokens, which get mask 0 (the text stream is never adapted).

Targets are the attention projections q, k, v and the attention output (``to_out.0``, double-stream blocks
only: single-stream blocks have no separate attention output). ``norm*.linear`` layers are kept out on
purpose — they see the per-sample timestep embedding, not tokens. Routed adapters must never be merged
or fused: a merged LoRA would act on every token.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
WEIGHT_NAME = "pytorch_lora_weights.safetensors"


class TokenRouter:
    """Owns the condition adapters of one transformer and the per-token masks that route them."""

    def __init__(self, transformer: Any, names: list[str]):
        self.transformer = transformer
        self.names = list(names)
        self.masks: dict[str, Any] = {}  # name -> (N,) float mask over image-stream tokens; absent = off
        self._handles: list[Any] = []

    # --- routing ---------------------------------------------------------------------------------

    def set_masks(self, masks: dict[str, Any]) -> None:
        """Route each named adapter to the tokens where its mask is 1; unnamed adapters are off."""
        unknown = set(masks) - set(self.names)
        if unknown:
            raise KeyError(f"no condition adapter named {sorted(unknown)}; have {self.names}")
        self.masks = {k: v.float() for k, v in masks.items() if v is not None}

    def set_spans(self, spans: dict[str, tuple[int, int]], length: int, device: Any = None) -> None:
        """Masks from token ranges: adapter ``name`` acts on tokens ``start:end`` of ``length``."""
        import torch

        masks = {}
        for name, (start, end) in spans.items():
            m = torch.zeros(length, device=device)
            m[start:end] = 1.0
            masks[name] = m
        self.set_masks(masks)

    def off(self) -> None:
        """No adapter acts on any token (the base model)."""
        self.masks = {}

    @contextlib.contextmanager
    def using(self, masks: dict[str, Any]) -> Iterator[None]:
        """Route with ``masks`` inside the block, then restore the previous routing."""
        saved = self.masks
        self.masks = masks
        try:
            yield
        finally:
            self.masks = saved

    def checkpoint_func(self) -> Callable[..., Any]:
        """A ``gradient_checkpointing_func`` for diffusers that recomputes with the forward's routing.

        The masks live on the router, so a plain checkpoint would recompute every block during the
        backward pass with whatever routing the last forward pass left behind (torch then stops with a
        CheckpointError); this one replays the masks each block saw.
        """
        from torch.utils.checkpoint import checkpoint

        def func(module: Any, *args: Any) -> Any:
            masks = dict(self.masks)

            def contexts() -> tuple[Any, Any]:
                return contextlib.nullcontext(), self.using(masks)

            return checkpoint(module.__call__, *args, use_reentrant=False, context_fn=contexts)

        return func

    def _mask_for(self, name: str, out: Any) -> Any:
        m = self.masks.get(name)
        n = out.shape[-2]
        if m is None:
            return None
        if n > m.shape[0]:  # single-stream blocks put the text tokens first; they are never adapted
            m = _left_pad(m, n)
        elif n != m.shape[0]:
            raise RuntimeError(f"routing mask for {name!r} has {m.shape[0]} tokens, layer sees {n}")
        return m.to(out.dtype)[:, None]

    def _hook(self, name: str):
        def hook(module: Any, inputs: Any, out: Any) -> Any:
            m = self._mask_for(name, out)
            return out * 0 if m is None else out * m

        return hook

    def attach(self) -> None:
        """(Re)register the routing hooks on every ``lora_B`` of this router's adapters."""
        self.detach()
        for module in self.transformer.modules():
            lora_b = getattr(module, "lora_B", None)
            if lora_b is None:
                continue
            for name in self.names:
                if name in lora_b:
                    self._handles.append(lora_b[name].register_forward_hook(self._hook(name)))
        if not self._handles:
            raise RuntimeError(f"no LoRA layers found for adapters {self.names}")

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def activate(self) -> None:
        """Make all condition adapters active together (routing decides where each one acts)."""
        self.transformer.set_adapters(self.names)

    def parameters(self) -> list[Any]:
        """The trainable LoRA parameters of all condition adapters."""
        return [
            p
            for n, p in self.transformer.named_parameters()
            if "lora_" in n and any(f".{a}." in n for a in self.names)
        ]

    # --- persistence -------------------------------------------------------------------------------

    def save(self, directory: str | Path, meta: dict | None = None) -> None:
        """One subfolder per adapter (diffusers LoRA format) + ``adapters.json`` (names and ``meta``)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            self.transformer.save_lora_adapter(
                str(directory / name), adapter_name=name, weight_name=WEIGHT_NAME, safe_serialization=True
            )
        info = {"adapters": self.names, **(meta or {})}
        (directory / "adapters.json").write_text(json.dumps(info, indent=2))


def _left_pad(m: Any, n: int) -> Any:
    import torch

    return torch.cat([m.new_zeros(n - m.shape[0]), m])


def add_condition_adapters(transformer: Any, names: list[str], rank: int, alpha: float) -> TokenRouter:
    """Add one fresh LoRA per condition (q/k/v/out) to ``transformer`` and route them per token."""
    from peft import LoraConfig

    for name in names:
        cfg = LoraConfig(r=rank, lora_alpha=alpha, target_modules=LORA_TARGETS)
        with warnings.catch_warnings():  # several adapters on one model is the point here
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            transformer.add_adapter(cfg, adapter_name=name)
    router = TokenRouter(transformer, names)
    router.activate()
    router.attach()
    return router


def load_condition_adapters(transformer: Any, directory: str | Path) -> tuple[TokenRouter, dict]:
    """Load adapters saved by :meth:`TokenRouter.save`; returns the router and the saved metadata."""
    directory = Path(directory)
    info_file = directory / "adapters.json"
    if not info_file.is_file():
        raise FileNotFoundError(f"{info_file}: not found (expected adapters saved by save_adapters)")
    info = json.loads(info_file.read_text())
    names = info.get("adapters")
    if not isinstance(names, list) or not names:
        raise ValueError(f"{info_file}: field 'adapters' must be a non-empty list of names")
    for name in names:
        weights = directory / name / WEIGHT_NAME
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: adapter {name!r} listed in {info_file} has no weights")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            transformer.load_lora_adapter(
                str(directory / name), adapter_name=name, weight_name=WEIGHT_NAME, prefix=None
            )
    router = TokenRouter(transformer, names)
    router.activate()
    router.attach()
    return router, info
