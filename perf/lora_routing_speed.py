"""Seconds per FLUX training step and per restored frame: adapters routed before compute vs masked.

"gather" runs each condition's LoRA on that condition's tokens only; "mask" (the first implementation) runs
every adapter on every token and multiplies by a 0/1 mask. The model is FLUX scaled down with FLUX.1-dev's
rank-to-width ratio (width 384 = 6 heads x 64, rank 16, as 3072 and 128), so the adapters' share of the
FLOPs is FLUX's; random weights, fp32, on the CPU. The variants alternate in one process and the median of
``--repeats`` runs is kept (after one untimed warm-up run of each), so the ratio holds on a shared machine
(absolute seconds do not). On a GPU the masked adapters also leave the bf16 tensor-core path (fp32
adapters): use perf/gpu_smoke.py there. ``--quick`` (2 steps, 32 px, 1 repeat) only checks that it runs.

    .venv/bin/python perf/lora_routing_speed.py [--steps 6] [--repeats 3] [--size 64] [--quick] [--md out.md]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def build(width_heads: int, seed: int = 0):
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

    from z2h.models.flux import FluxParts, tiny_vae_config

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=2, num_single_layers=4, attention_head_dim=64,
        num_attention_heads=width_heads, joint_attention_dim=64, pooled_projection_dim=64,
        guidance_embeds=True, axes_dims_rope=(16, 24, 24),
    ).requires_grad_(False)
    vae = AutoencoderKL(**tiny_vae_config()).eval().requires_grad_(False)
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15
    )
    g = torch.Generator().manual_seed(seed + 1)
    text, pooled = torch.randn(1, 64, 64, generator=g), torch.randn(1, 64, generator=g)
    return FluxParts(transformer, vae, scheduler, text, pooled)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6, help="training steps per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--size", type=int, default=64, help="frame side (px); the tiny VAE downsamples by 2")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="2 steps, 32 px, 1 repeat: checks that it runs")
    p.add_argument("--md", help="also write the table as Markdown to this file")
    args = p.parse_args()
    if args.quick:
        args.steps, args.size, args.repeats = 2, 32, 1
    torch.set_num_threads(args.threads)
    from z2h.hero_stage.diffusion import DiffusionHeroStage, DiffusionSettings

    parts = build(width_heads=6)
    width = parts.transformer.config.num_attention_heads * parts.transformer.config.attention_head_dim
    rank = width // 24  # FLUX.1-dev: 3072 / 128
    y, x = np.mgrid[: args.size, : args.size]
    orig = np.stack([x * 255 // args.size, y * 255 // args.size, np.full_like(x, 90)], -1).astype(np.uint8)
    ref, zero = 255 - orig, (255 - orig) // 2 + orig // 2
    times: dict[str, dict[str, list[float]]] = {m: {"train": [], "restore": []} for m in ("mask", "gather")}
    for repeat in range(-1, args.repeats):  # repeat -1: the untimed warm-up of both variants
        for method in ("mask", "gather"):
            settings = DiffusionSettings(
                mode=2, steps=args.steps, rank=rank, resolution=args.size, cond_resolution=args.size,
                sample_steps=args.steps, warmup_steps=1, eval_draws=0, routing=method, device="cpu")
            stage = DiffusionHeroStage(settings, parts=parts)
            stats = stage.fit(zero, orig, ref)
            t0 = time.perf_counter()
            stage.restore(zero[None], orig[None])
            if repeat >= 0:
                times[method]["train"].append(stats["seconds"] / stats["steps"])
                times[method]["restore"].append(time.perf_counter() - t0)
            stage._drop_adapters()
    tokens = (args.size // 4) ** 2
    setup = (f"FLUX scaled down: width {width}, rank {rank}, 2 double + 4 single blocks, Mode 2; "
             f"{tokens} target + 2 x {tokens} condition + 64 text tokens; fp32 CPU, {args.threads} "
             f"thread(s), median (min–max) of {args.repeats} after a warm-up of each")
    lines = ["| | masked adapters | routed before compute | masked / routed |", "|---|---|---|---|"]
    for what, unit in (("train", "s/step"), ("restore", f"s/frame ({args.steps} steps)")):
        m, g = statistics.median(times["mask"][what]), statistics.median(times["gather"][what])
        spread = [f"{statistics.median(v):.3f} ({min(v):.3f}–{max(v):.3f})"
                  for v in (times["mask"][what], times["gather"][what])]
        lines.append(f"| {what} {unit} | {spread[0]} | {spread[1]} | {m / g:.2f} |")
    print(setup)
    print("\n".join(lines))
    if args.md:
        with open(args.md, "w") as f:
            f.write(f"# LoRA routing: adapters routed before compute vs masked\n\n{setup}\n\n"
                    + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
