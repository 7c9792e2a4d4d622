"""GPU smoke check of the diffusion engines on full-size models with RANDOM weights (no download needed).

Builds the SD 2.1-base U-Net/VAE and the FLUX.1-dev transformer/VAE from their public configs
(z2h/models/sd.py ``sd21_base_config``, z2h/models/flux.py ``flux_dev_config``) with random weights, then
checks, in order:

1. with the cross-image processors in "off" mode the U-Net output equals the stock U-Net's (fp16 on CUDA);
2. the top-k/gather attention equals the dense +100-mask attention (N = 256, 1024, 4096; k = 1, 4; fp32);
3. a Zero-Stage pass at 512² (20 DDIM steps, 8 DIFT draws): seconds for the first frame (with the
   reference's inversion, once per video) and per further frame, peak memory;
4. one FLUX training step in bf16, Mode 1 and Mode 2: the loss is finite, the base is frozen, the LoRAs
   train; seconds per step and peak memory (gradient checkpointing on, the reference sizes); the Mode 2
   step again with the masked adapters (``routing="mask"``), for what route-before-compute saves;
5. the noisy pass is identical with the adapters on and off (same condition K/V);
6. routing-aware gradient checkpointing gives the same LoRA gradients as no checkpointing;
7. restore (25 Euler steps): seconds per frame and peak memory.

Random weights say nothing about quality: this checks that the code runs at full size, what it costs,
and the equalities above. Each check has its own time limit; a failure is recorded and the next check
runs. Prints one JSON report (and writes it to ``--out``); exits 1 when a check failed.

    .venv/bin/python perf/gpu_smoke.py              # full size: needs a CUDA GPU (~40 GB for Mode 2)
    .venv/bin/python perf/gpu_smoke.py --tiny       # the same checks on tiny configs, CPU, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class Plan:
    """What the checks run on: full-size models on a GPU, or tiny ones on the CPU."""

    tiny: bool
    device: str
    sd_dtype: torch.dtype
    flux_dtype: torch.dtype
    image: int  # Zero-Stage frame side (px)
    attention_sizes: tuple[int, ...]
    zero_steps: int = 20
    dift_draws: int = 8
    hero_sizes: dict[int, tuple[int, int]] = field(default_factory=dict)  # mode -> (target, cond) sides
    frame: tuple[int, int] = (512, 512)  # Hero-Stage frame (h, w)
    sample_steps: int = 25
    text_tokens: int = 512
    train_steps: int = 4  # per training run in check 4 (the first one includes warm-up)

    @classmethod
    def make(cls, tiny: bool, device: str) -> Plan:
        cuda = device.startswith("cuda")
        if tiny:
            return cls(True, device, torch.float16 if cuda else torch.float32, torch.bfloat16, image=32,
                       attention_sizes=(64, 256), zero_steps=3, dift_draws=2,
                       hero_sizes={1: (16, 16), 2: (32, 16)}, frame=(32, 32), sample_steps=3, text_tokens=4,
                       train_steps=2)
        # the reference recipe's sizes: conditions 512, target 768 in Mode 2 (512 in Mode 1)
        return cls(False, device, torch.float16 if cuda else torch.float32, torch.bfloat16, image=512,
                   attention_sizes=(256, 1024, 4096), hero_sizes={1: (512, 512), 2: (768, 512)},
                   frame=(512, 512))


# --- measuring ------------------------------------------------------------------------------------


class CheckTimeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise CheckTimeout in the main thread after ``seconds`` (between CUDA launches, not inside one)."""
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise CheckTimeout(f"time limit of {seconds:.0f} s reached")

    old = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float | None:
    """Peak CUDA memory allocated by tensors since the last reset (None on the CPU)."""
    if not device.startswith("cuda"):
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 3)


def timed(device: str, fn: Callable[[], Any]) -> tuple[Any, float]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| in fp32."""
    a, b = a.float(), b.float()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


# --- building the models --------------------------------------------------------------------------


@contextlib.contextmanager
def building(device: str, dtype: torch.dtype) -> Iterator[None]:
    """Create modules directly on ``device`` in ``dtype``: FLUX.1-dev built in fp32 first would take 48 GB."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(old)


def build_sd(plan: Plan) -> Any:
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    from z2h.models.sd import SDParts, sd21_base_config, tiny_sd_config

    cfg = tiny_sd_config() if plan.tiny else sd21_base_config()
    torch.manual_seed(0)
    with building(plan.device, plan.sd_dtype):  # initialise where it runs: a CPU init is slow
        unet = UNet2DConditionModel(**cfg["unet"]).to(plan.sd_dtype).eval().requires_grad_(False)
        vae = AutoencoderKL(**cfg["vae"]).to(plan.sd_dtype).eval().requires_grad_(False)
    embeds = torch.zeros(1, 77, cfg["unet"]["cross_attention_dim"], device=plan.device, dtype=plan.sd_dtype)
    scheduler = DDIMScheduler(**cfg["scheduler"])
    return SDParts(unet, vae, scheduler, embeds, torch.device(plan.device), plan.sd_dtype)


def build_flux(plan: Plan) -> Any:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

    from z2h.models.flux import FluxParts, flux_dev_config, tiny_flux_config, tiny_vae_config

    if plan.tiny:
        cfg = {"transformer": tiny_flux_config(), "vae": tiny_vae_config(),
               "scheduler": dict(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15)}
    else:
        cfg = flux_dev_config()
    torch.manual_seed(0)
    with building(plan.device, plan.flux_dtype):
        transformer = FluxTransformer2DModel(**cfg["transformer"]).to(plan.flux_dtype).requires_grad_(False)
        vae = AutoencoderKL(**cfg["vae"]).to(plan.flux_dtype).eval().requires_grad_(False)
    tc = transformer.config
    g = torch.Generator(plan.device).manual_seed(1)
    text = torch.randn(1, plan.text_tokens, tc.joint_attention_dim, generator=g, device=plan.device)
    pooled = torch.randn(1, tc.pooled_projection_dim, generator=g, device=plan.device)
    scheduler = FlowMatchEulerDiscreteScheduler(**cfg["scheduler"])
    return FluxParts(transformer, vae, scheduler, text.to(plan.flux_dtype), pooled.to(plan.flux_dtype))


def frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour frames (uint8), a little shifted one to the next."""
    g = np.random.default_rng(seed)
    base = g.random((3, 8, 8))
    out = []
    for i in range(n):
        t = torch.from_numpy(np.roll(base, i, axis=2)).float()[None]
        img = torch.nn.functional.interpolate(t, size=(h, w), mode="bicubic", align_corners=False)[0]
        out.append((img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())
    return np.stack(out)


# --- the checks -----------------------------------------------------------------------------------


class Smoke:
    def __init__(self, plan: Plan):
        self.plan = plan
        self.sd = None
        self.flux = None
        self.stage = None  # the Mode 2 Hero-Stage trained in check 4

    def _sd(self) -> Any:
        if self.sd is None:
            self.sd = build_sd(self.plan)
        return self.sd

    def _flux(self) -> Any:
        if self.flux is None:
            self.sd = None  # the SD checks are done: give their memory back first
            free(self.plan.device)
            self.flux = build_flux(self.plan)
        return self.flux

    def _stage(self, mode: int, **kw: Any) -> Any:
        from z2h.hero_stage.diffusion import DiffusionHeroStage, DiffusionSettings

        target, cond = self.plan.hero_sizes[mode]
        settings = DiffusionSettings(mode=mode, resolution=target, cond_resolution=cond, eval_draws=0,
                                     device=self.plan.device, sample_steps=self.plan.sample_steps, seed=0,
                                     **({"rank": 4} if self.plan.tiny else {}), **kw)
        return DiffusionHeroStage(settings, parts=self._flux())

    def _drop_stage(self) -> None:
        if self.stage is not None:
            self.stage._drop_adapters()
            self.stage = None

    def off_equals_stock(self) -> dict:
        from z2h.attention_processors import CrossImageState, cross_image_attention

        p, plan = self._sd(), self.plan
        side = plan.image // p.vae_scale
        g = torch.Generator(plan.device).manual_seed(0)
        x = torch.randn(1, 4, side, side, generator=g, device=plan.device).to(plan.sd_dtype)
        emb = p.empty_embeds
        with torch.no_grad():
            stock = p.unet(x, 500, encoder_hidden_states=emb).sample
            with cross_image_attention(p.unet, CrossImageState(mode="off")) as layers:
                ours = p.unet(x, 500, encoder_hidden_states=emb).sample
        diff = rel_diff(ours, stock)
        tol = 5e-3 if plan.sd_dtype == torch.float16 else 1e-5
        return {"ok": bool(torch.isfinite(stock).all()) and diff <= tol, "layers": len(layers),
                "dtype": str(plan.sd_dtype), "max_rel_diff": diff, "tolerance": tol}

    def gather_equals_dense(self) -> dict:
        from z2h.attention import dense_masked_attention, masked_attention
        from z2h.correspondence import cosine_topk

        plan, rows = self.plan, []
        g = torch.Generator(plan.device).manual_seed(0)
        for n in plan.attention_sizes:
            for k in (1, 4):
                q, key, v = (torch.randn(1, 5, n, 64, generator=g, device=plan.device) for _ in range(3))
                f = torch.randn(1, 32, n, 1, generator=g, device=plan.device)
                idx = cosine_topk(f, f.roll(1, dims=2), k)
                with torch.no_grad():
                    dense, t_dense = timed(plan.device, lambda: dense_masked_attention(q, key, v, idx))  # noqa: B023
                    fast, t_fast = timed(plan.device, lambda: masked_attention(q, key, v, idx))  # noqa: B023
                rows.append({"n": n, "k": k, "max_abs_diff": float((fast - dense).abs().max()),
                             "dense_s": round(t_dense, 5), "gather_s": round(t_fast, 5)})
                del dense, fast
        return {"ok": all(r["max_abs_diff"] < 1e-4 for r in rows), "dtype": "float32", "tolerance": 1e-4,
                "cases": rows}

    def zero_stage_frame(self) -> dict:
        from z2h.zero_stage.diffusion import DiffusionZeroStage

        p, plan = self._sd(), self.plan
        video = frames(2, plan.image, plan.image)
        reference = 255 - video[0]
        engine = DiffusionZeroStage(None, parts=p, steps=plan.zero_steps, dift_ensemble=plan.dift_draws,
                                    resolution=plan.image, device=plan.device)
        reset_peak(plan.device)
        one, t1 = timed(plan.device, lambda: engine(video[:1], 0, reference))
        two, t2 = timed(plan.device, lambda: engine(video, 0, reference))
        finite = bool(np.isfinite(one.astype(float)).all()) and two.shape == video.shape
        return {"ok": finite, "size": plan.image, "steps": plan.zero_steps, "dift_draws": plan.dift_draws,
                "first_frame_s": round(t1, 3), "per_further_frame_s": round(max(t2 - t1, 0.0), 3),
                "peak_gib": peak_gib(plan.device)}

    def flux_train_step(self) -> dict:
        plan, out = self.plan, {}
        zero, orig = frames(1, *plan.frame, seed=1)[0], frames(1, *plan.frame, seed=2)[0]
        ref = 255 - orig
        # Mode 2 also with the masked adapters (every adapter on every token): what route-before-compute saves
        for mode, routing in ((1, "gather"), (2, "mask"), (2, "gather")):
            self._drop_stage()
            stage = self._stage(mode, steps=plan.train_steps, warmup_steps=1, gradient_checkpointing=True,
                                routing=routing)
            self.stage = stage  # dropped by the next round, or kept (Mode 2, gathered) for checks 5-7
            stage._load()
            tr = stage.parts.transformer
            probe = [tr.x_embedder.weight, tr.transformer_blocks[0].attn.to_q.weight,
                     tr.single_transformer_blocks[-1].proj_out.weight]
            before = [w.detach().float().sum().item() for w in probe]
            reset_peak(plan.device)
            stats = stage.fit(zero, orig, ref)
            base = [n for n, w in tr.named_parameters() if "lora_" not in n]
            base_frozen = not any(w.requires_grad or w.grad is not None for n, w in tr.named_parameters()
                                  if "lora_" not in n)
            unchanged = before == [w.detach().float().sum().item() for w in probe]
            lora_b = [w for n, w in tr.named_parameters() if "lora_B" in n]
            trained = sum(bool(w.abs().max() > 0) for w in lora_b)
            losses = stats["losses"]
            key = f"mode{mode}" + ("_masked_adapters" if routing == "mask" else "")
            out[key] = {
                "ok": bool(np.isfinite(losses).all()) and base_frozen and unchanged and trained > 0,
                "losses": [round(v, 5) for v in losses], "base_frozen": base_frozen and unchanged,
                "base_tensors": len(base), "lora_B_trained": f"{trained}/{len(lora_b)}",
                "lora_params_m": round(sum(w.numel() for w in stage.router.parameters()) / 1e6, 3),
                "resolution": stats["resolution"],
                # the training loop's own clock (each step ends on a loss.item() sync), warm-up step included
                "seconds_per_step": round(stats["seconds"] / len(losses), 3),
                "peak_gib": peak_gib(plan.device)}
        return {"ok": all(v["ok"] for v in out.values()), **out}

    def _trained_stage(self) -> Any:
        if self.stage is None or self.stage.router is None or self.stage.cfg.mode != 2:
            self._drop_stage()  # check 4 failed: fresh Mode 2 adapters with non-zero weights
            self.stage = self._stage(2)
            self.stage._load()
            self.stage._add_adapters()
            with torch.no_grad():
                for w in self.stage.router.parameters():
                    w.normal_(0, 0.01)
        return self.stage

    def _batch(self, stage: Any) -> tuple:
        from z2h.models.flux import latent_ids

        plan = self.plan
        zero, orig = frames(1, *plan.frame, seed=1)[0], frames(1, *plan.frame, seed=2)[0]
        conds, cond_ids, size = stage._conditions(zero, orig)
        f = stage.parts.vae_scale_factor
        x0 = stage._encode((255 - orig)[None], size)
        return conds, cond_ids, x0, latent_ids(size[0] // f, size[1] // f, device=plan.device)

    def noisy_pass_ignores_adapters(self) -> dict:
        """The noisy pass with trained adapters attached (routed before compute, and masked) against the
        base model with every adapter switched off, on the same condition K/V: bitwise equal."""
        from z2h.hero_stage.lora_routing import TokenRouter

        stage, plan = self._trained_stage(), self.plan
        tr = stage.parts.transformer
        conds, cond_ids, x0, img_ids = self._batch(stage)
        g = torch.Generator(plan.device).manual_seed(3)
        x = torch.randn(x0.shape, generator=g, device=plan.device).to(x0.dtype)
        t = torch.tensor([0.6], device=plan.device)
        router = stage.router
        out = {}
        with torch.no_grad():
            kv = stage._record(conds, cond_ids, stage.cfg.guidance)
            out["routed"] = stage._predict(x, t, img_ids, kv, stage.cfg.guidance)
            router.detach()
            try:
                stage.router = TokenRouter(tr, router.names, "mask")  # every adapter runs, times a zero mask
                stage.router.activate()
                stage.router.attach()
                out["masked"] = stage._predict(x, t, img_ids, kv, stage.cfg.guidance)
                stage.router.detach()
                tr.disable_adapters()
                out["off"] = stage._predict(x, t, img_ids, kv, stage.cfg.guidance)
            finally:
                stage.router.detach()
                tr.enable_adapters()
                stage.router = router
                router.attach()
        off = out["off"].float()
        diffs = {k: float((v.float() - off).abs().max()) for k, v in out.items() if k != "off"}
        return {"ok": all(torch.equal(out[k], out["off"]) for k in diffs), "max_abs_diff_vs_off": diffs}

    def checkpointing_grads(self) -> dict:
        stage, plan = self._trained_stage(), self.plan
        tr = stage.parts.transformer
        batch = self._batch(stage)
        params = stage.router.parameters()
        for w in params:
            w.requires_grad_(True)

        def grads() -> list[torch.Tensor]:
            for w in params:
                w.grad = None
            g = torch.Generator(plan.device).manual_seed(9)
            noise = torch.randn(batch[2].shape, generator=g, device=plan.device).to(batch[2].dtype)
            stage._loss(*batch, torch.tensor([0.4], device=plan.device), noise).backward()
            return [torch.zeros_like(w) if w.grad is None else w.grad.detach().clone() for w in params]

        tr.train()
        try:
            reset_peak(plan.device)
            plain = grads()
            plain_peak = peak_gib(plan.device)
            tr.enable_gradient_checkpointing(stage.router.checkpoint_func())
            reset_peak(plan.device)
            ckpt = grads()
            ckpt_peak = peak_gib(plan.device)
        finally:
            tr.disable_gradient_checkpointing()
            tr.eval()
            for w in params:
                w.grad = None
        scale = max(float(g.abs().max()) for g in plain)
        diff = max(float((a - b).abs().max()) for a, b in zip(ckpt, plain, strict=True)) / max(scale, 1e-30)
        fp32 = params[0].dtype == torch.float32 and stage.parts.transformer.dtype == torch.float32
        tol = 1e-4 if fp32 else 2e-2
        return {"ok": scale > 0 and diff <= tol, "max_rel_diff": diff, "tolerance": tol,
                "peak_gib_plain": plain_peak, "peak_gib_checkpointed": ckpt_peak}

    def restore(self) -> dict:
        stage, plan = self._trained_stage(), self.plan
        zero, orig = frames(2, *plan.frame, seed=4), frames(2, *plan.frame, seed=5)
        reset_peak(plan.device)
        out, seconds = timed(plan.device, lambda: stage.restore(zero, orig))
        return {"ok": out.shape == zero.shape and out.dtype == np.uint8, "frames": 2,
                "sample_steps": stage.cfg.sample_steps, "seconds_per_frame": round(seconds / 2, 3),
                "peak_gib": peak_gib(plan.device)}


CHECKS = ("off_equals_stock", "gather_equals_dense", "zero_stage_frame", "flux_train_step",
          "noisy_pass_ignores_adapters", "checkpointing_grads", "restore")


def run(plan: Plan, timeout: float, only: set[int] | None = None) -> dict:
    smoke = Smoke(plan)
    report: dict[str, Any] = {
        "kind": "tiny" if plan.tiny else "full", "device": plan.device,
        "gpu": torch.cuda.get_device_name(0) if plan.device.startswith("cuda") else None,
        "versions": _versions(), "random_weights": True, "checks": []}
    for i, name in enumerate(CHECKS, 1):
        if only and i not in only:
            continue
        entry: dict[str, Any] = {"check": i, "name": name}
        t0 = time.perf_counter()
        try:
            with time_limit(timeout):
                entry.update(getattr(smoke, name)())
        except Exception as e:  # recorded, not fatal: the next check still runs
            entry.update(ok=False, error=f"{type(e).__name__}: {e}",
                         where=traceback.format_exc(limit=-3).strip().splitlines()[-3:])
        entry["seconds"] = round(time.perf_counter() - t0, 2)
        report["checks"].append(entry)
        status = "ok" if entry.get("ok") else "FAILED"
        print(f"check {i} {name}: {status} ({entry['seconds']} s)", file=sys.stderr)
        free(plan.device)
    report["ok"] = all(c.get("ok") for c in report["checks"])
    return report


def _versions() -> dict:
    import diffusers
    import peft

    return {"python": platform.python_version(), "torch": torch.__version__,
            "diffusers": diffusers.__version__, "peft": peft.__version__, "cuda": torch.version.cuda}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny configs on the CPU (seconds): what CI runs")
    p.add_argument("--device", help="default: cuda when available (full size), cpu with --tiny")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per check (default 120 tiny, 300 full; 0 = none)")
    p.add_argument("--only", help="comma-separated check numbers, e.g. 1,2")
    p.add_argument("--out", help="also write the JSON report here")
    args = p.parse_args(argv)
    device = args.device or ("cpu" if args.tiny else "cuda" if torch.cuda.is_available() else "cpu")
    if not args.tiny and not device.startswith("cuda"):
        print("gpu_smoke: the full-size check needs a CUDA GPU (FLUX.1-dev alone is 24 GB in bf16); "
              "use --tiny for the CPU version", file=sys.stderr)
        return 2
    timeout = args.timeout if args.timeout is not None else (120.0 if args.tiny else 300.0)
    only = {int(x) for x in args.only.split(",")} if args.only else None
    report = run(Plan.make(args.tiny, device), timeout, only)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
