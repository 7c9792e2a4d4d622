"""Per-condition LoRA adapters that act only on their own condition's tokens.

peft routes adapters per sample (``adapter_names=``), not per token. Every condition gets its own peft
LoRA, and a :class:`TokenRouter` decides which tokens each adapter acts on:
``y = W x + sum_i [token in condition i] * B_i A_i x * scale_i``. Routes are given over the image-stream
tokens; single-stream blocks prefix the text tokens, which are never adapted.

Two ways to compute the same thing (``method``):

- ``"gather"`` (default, route before compute): peft's own adapter pass is switched off on every routed
  layer, and a forward hook gathers each condition's tokens, applies that condition's LoRA to them only
  and scatters the result back. Tokens outside every route (all the noisy and text tokens) pay nothing
  for the adapters: the noisy pass is exactly the base model at the base model's cost.
- ``"mask"`` (the first implementation, kept as the reference for tests): peft runs every adapter on
  every token and a hook on each ``lora_B`` multiplies its output by a 0/1 token mask. Every adapter costs
  its full matmuls on every token, including the noisy pass, where all masks are zero.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
WEIGHT_NAME = "pytorch_lora_weights.safetensors"
METHODS = ("gather", "mask")


@dataclass(frozen=True)
class Route:
    """The image-stream tokens one adapter acts on: a 0/1 ``mask`` (N,) and its ``index`` (n,)."""

    mask: Any
    index: Any

    @classmethod
    def from_mask(cls, mask: Any) -> Route:
        mask = mask.float()
        return cls(mask, mask.nonzero().flatten())

    def index_in(self, n: int, name: str) -> Any:
        """Token indices in a layer that sees ``n`` tokens (single-stream layers prefix the text)."""
        length = self.mask.shape[0]
        if n < length:
            raise RuntimeError(f"routing mask for {name!r} has {length} tokens, layer sees {n}")
        return self.index + (n - length)

    def mask_in(self, n: int, name: str) -> Any:
        length = self.mask.shape[0]
        if n < length:
            raise RuntimeError(f"routing mask for {name!r} has {length} tokens, layer sees {n}")
        return self.mask if n == length else _left_pad(self.mask, n)


class TokenRouter:
    """Owns the condition adapters of one transformer and the per-token routes of each."""

    def __init__(self, transformer: Any, names: list[str], method: str = "gather"):
        if method not in METHODS:
            raise ValueError(f"LoRA routing method must be one of {', '.join(METHODS)}, not {method!r}")
        self.transformer = transformer
        self.names = list(names)
        self.method = method
        self.routes: dict[str, Route] = {}  # name -> tokens it acts on; absent = off
        self._handles: list[Any] = []
        self._layers: list[Any] = []  # peft LoRA layers whose own adapter pass is switched off (gather)

    # --- routing ---------------------------------------------------------------------------------

    def set_masks(self, masks: dict[str, Any]) -> None:
        """Route each named adapter to the tokens where its mask is 1; unnamed adapters are off."""
        unknown = set(masks) - set(self.names)
        if unknown:
            raise KeyError(f"no condition adapter named {sorted(unknown)}; have {self.names}")
        self.routes = {k: Route.from_mask(v) for k, v in masks.items() if v is not None}

    def set_spans(self, spans: dict[str, tuple[int, int]], length: int, device: Any = None) -> None:
        """Routes from token ranges: adapter ``name`` acts on tokens ``start:end`` of ``length``."""
        import torch

        masks = {}
        for name, (start, end) in spans.items():
            m = torch.zeros(length, device=device)
            m[start:end] = 1.0
            masks[name] = m
        self.set_masks(masks)

    @property
    def masks(self) -> dict[str, Any]:
        """The current routes as 0/1 masks over the image-stream tokens."""
        return {name: r.mask for name, r in self.routes.items()}

    def off(self) -> None:
        """No adapter acts on any token (the base model)."""
        self.routes = {}

    @contextlib.contextmanager
    def using(self, routes: dict[str, Route]) -> Iterator[None]:
        """Route with ``routes`` inside the block, then restore the previous routing."""
        saved = self.routes
        self.routes = routes
        try:
            yield
        finally:
            self.routes = saved

    def checkpoint_func(self) -> Callable[..., Any]:
        """A ``gradient_checkpointing_func`` for diffusers that recomputes with the forward's routing.

        The routes live on the router, so a plain checkpoint would recompute every block during the
        backward pass with whatever routing the last forward pass left behind (torch then stops with a
        CheckpointError, or silently computes other gradients); this one replays the routes each block saw.
        """
        from torch.utils.checkpoint import checkpoint

        def func(module: Any, *args: Any) -> Any:
            routes = dict(self.routes)

            def contexts() -> tuple[Any, Any]:
                return contextlib.nullcontext(), self.using(routes)

            return checkpoint(module.__call__, *args, use_reentrant=False, context_fn=contexts)

        return func

    # --- the two implementations ---------------------------------------------------------------------

    def _mask_hook(self, name: str):
        def hook(module: Any, inputs: Any, out: Any) -> Any:
            r = self.routes.get(name)
            if r is None:
                return out * 0
            return out * r.mask_in(out.shape[-2], name).to(out.dtype)[:, None]

        return hook

    def _gather_hook(self, module: Any, inputs: Any, out: Any) -> Any:
        """peft layer output (the base layer's alone) + each routed adapter on its own tokens only."""
        if not self.routes:
            return None  # the noisy/text pass: nothing to add, nothing computed
        x = inputs[0]
        n = out.shape[-2]
        for name, r in self.routes.items():
            if name not in module.lora_A:
                continue
            idx = r.index_in(n, name)
            lora_a, lora_b = module.lora_A[name], module.lora_B[name]
            xs = x.index_select(-2, idx).to(lora_a.weight.dtype)
            delta = lora_b(lora_a(module.lora_dropout[name](xs))) * module.scaling[name]
            # add in the adapter's precision, round once to the output's (as peft does)
            rows = (out.index_select(-2, idx) + delta).to(out.dtype)
            out = out.index_copy(-2, idx, rows)
        return out

    def attach(self) -> None:
        """(Re)register the routing on every LoRA layer of this router's adapters."""
        self.detach()
        for module in self.transformer.modules():
            lora_b = getattr(module, "lora_B", None)
            if lora_b is None or not any(name in lora_b for name in self.names):
                continue
            if self.method == "mask":
                for name in self.names:
                    if name in lora_b:
                        self._handles.append(lora_b[name].register_forward_hook(self._mask_hook(name)))
            else:
                module.enable_adapters(False)  # peft's pass would run every adapter on every token
                self._layers.append(module)
                self._handles.append(module.register_forward_hook(self._gather_hook))
        if not self._handles:
            raise RuntimeError(f"no LoRA layers found for adapters {self.names}")

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        for module in self._layers:
            module.enable_adapters(True)
        self._handles, self._layers = [], []

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


def add_condition_adapters(
    transformer: Any, names: list[str], rank: int, alpha: float, method: str = "gather"
) -> TokenRouter:
    """Add one fresh LoRA per condition (q/k/v/out) to ``transformer`` and route them per token."""
    from peft import LoraConfig

    for name in names:
        cfg = LoraConfig(r=rank, lora_alpha=alpha, target_modules=LORA_TARGETS)
        with warnings.catch_warnings():  # several adapters on one model is the point here
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            transformer.add_adapter(cfg, adapter_name=name)
    router = TokenRouter(transformer, names, method)
    router.activate()
    router.attach()
    return router


def load_condition_adapters(
    transformer: Any, directory: str | Path, method: str = "gather"
) -> tuple[TokenRouter, dict]:
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
        _copy_exact(transformer, directory / name / WEIGHT_NAME, name)
    router = TokenRouter(transformer, names, method)
    router.activate()
    router.attach()
    return router, info


def _copy_exact(transformer: Any, weights: Path, name: str) -> None:
    """Put the saved tensors into adapter ``name`` as saved: peft creates adapter weights in the base
    layer's dtype, and a base stored in float8 would otherwise round them to 3 mantissa bits."""
    from safetensors.torch import load_file

    params = dict(transformer.named_parameters())
    for key, value in load_file(str(weights)).items():
        target = key.removeprefix("transformer.").replace(".weight", f".{name}.weight")
        if target not in params:
            raise ValueError(f"{weights}: tensor {key} matches no LoRA layer of this model")
        params[target].data = value.to(params[target].device)
