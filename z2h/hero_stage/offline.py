"""Offline Hero-Stage: a per-video restoration CNN (z2h/models/restorer.py) trained on the anchor alone.

Training data, all from the anchor frame (nothing from other frames): the paper's triplet
(zero(anchor), anchor) -> reference plus ``pseudo_pairs`` warped copies of the anchor pair
(z2h/hero_stage/pseudo_pairs.py) whose condition 1 comes from the real Zero-Stage. Random crops and
flips; L2 loss (``loss``); Adam with a cosine decay. A step count (deterministic with the seed) bounded
by a time budget (so a slow machine still finishes).
"""

from __future__ import annotations

import math
import time

import numpy as np

from z2h.hero_stage import HeroConfig, ZeroFn
from z2h.hero_stage.pseudo_pairs import warped_pairs
from z2h.progress import ProgressFn, no_progress
from z2h.threads import torch_seeded, torch_threads


def _to_tensor(images: np.ndarray):
    import torch

    images = np.ascontiguousarray(images)
    if not images.flags.writeable:  # a shared, read-only frame (z2h/frames.py): torch wants to own it
        images = images.copy()
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)


class OfflineHeroStage:
    """``fit`` a fresh restorer on the anchor pair, then ``restore`` frames with it."""

    def __init__(self, config: HeroConfig):
        self.config = config
        self.model = None

    def training_triplets(
        self,
        zero_anchor: np.ndarray,
        orig_anchor: np.ndarray,
        reference: np.ndarray,
        zero_stage: ZeroFn | None,
        progress: ProgressFn | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(condition 1, condition 2, target) stacks: the anchor triplet first, then the pseudo pairs."""
        cfg = self.config
        origs, refs, _ = warped_pairs(orig_anchor, reference, cfg.pseudo_pairs, seed=cfg.seed)
        if cfg.pseudo_pairs:
            if zero_stage is None:
                from z2h.zero_stage import ZeroStage

                zero_stage = ZeroStage()
            # One Zero-Stage call: index 0 is the real anchor, the warped originals are "other frames".
            frames = np.concatenate([orig_anchor[None], origs])
            zeros = np.asarray(zero_stage(frames, 0, reference, progress=progress))[1:]
        else:
            zeros = origs
        cond1 = np.concatenate([zero_anchor[None], zeros])
        cond2 = np.concatenate([orig_anchor[None], origs])
        target = np.concatenate([reference[None], refs])
        return cond1, cond2, target

    def fit(
        self,
        zero_anchor: np.ndarray,
        orig_anchor: np.ndarray,
        reference: np.ndarray,
        progress: ProgressFn | None = None,
        zero_stage: ZeroFn | None = None,
        pairs_progress: ProgressFn | None = None,
    ) -> dict:
        """Train a new restorer; returns {"steps", "seconds", "loss_first", "loss_last", "budget_hit", ..}."""
        with torch_threads(self.config.threads):
            triplets = self.training_triplets(zero_anchor, orig_anchor, reference, zero_stage, pairs_progress)
        return self.fit_triplets(*triplets, progress=progress)

    def new_model(self):
        """A restorer with the configured shape and its initial weights drawn from the seed."""
        from z2h.models.restorer import Restorer, RestorerConfig

        cfg = self.config
        with torch_seeded(cfg.seed):
            return Restorer(RestorerConfig(conditions=cfg.mode, width=cfg.width, blocks=cfg.blocks,
                                           kernel=cfg.kernel, context=cfg.context))

    def fit_triplets(
        self, cond1: np.ndarray, cond2: np.ndarray, target: np.ndarray, progress: ProgressFn | None = None
    ) -> dict:
        """Train a new restorer on given (N, H, W, 3) uint8 triplet stacks."""
        import torch
        from torch.nn import functional as F

        cfg, progress = self.config, progress or no_progress
        rng = np.random.default_rng(cfg.seed)
        data = _to_tensor(np.concatenate([cond1, cond2, target], axis=-1))  # (N, 9, H, W)
        n, _, h, w = data.shape
        crop_h, crop_w = min(cfg.crop, h), min(cfg.crop, w)
        model = self.new_model()
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s / cfg.steps, 1.0))))
        losses: list[float] = []
        every = max(1, cfg.steps // 100)
        start, budget_hit = time.perf_counter(), False
        last = start
        with torch_threads(cfg.threads):
            progress(0, cfg.steps)
            for step in range(1, cfg.steps + 1):
                batch = torch.stack([_random_crop(data, rng, crop_h, crop_w) for _ in range(cfg.batch)])
                c1, c2, tgt = batch[:, :3], batch[:, 3:6], batch[:, 6:]
                pred = model(c1, c2)
                loss = F.mse_loss(pred, tgt) if cfg.loss == "l2" else F.l1_loss(pred, tgt)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.item())
                now = time.perf_counter()
                budget_hit = cfg.time_budget_s is not None and now - start > cfg.time_budget_s
                # Report every 1% and at least twice a second: the progress call is also the cancel point.
                if step % every == 0 or step == cfg.steps or budget_hit or now - last > 0.5:
                    progress(step, cfg.steps)
                    last = now
                if budget_hit:
                    break
        self.model = model.eval()
        k = max(1, len(losses) // 10)
        return {
            "steps": len(losses), "seconds": round(time.perf_counter() - start, 2), "budget_hit": budget_hit,
            "pairs": int(n), "loss_first": float(np.mean(losses[:k])),
            "loss_last": float(np.mean(losses[-k:])),
        }

    def restore(
        self, zero_frames: np.ndarray, orig_frames: np.ndarray, progress: ProgressFn | None = None
    ) -> np.ndarray:
        """Run the trained restorer on every frame, (T, H, W, 3) uint8 in and out."""
        progress = progress or no_progress
        out = np.empty_like(zero_frames)
        t_total = len(zero_frames)
        progress(0, t_total)
        for t in range(t_total):
            out[t] = self.restore_frame(zero_frames[t], orig_frames[t])
            progress(t + 1, t_total)
        return out

    def restore_frame(self, zero: np.ndarray, orig: np.ndarray) -> np.ndarray:
        """One frame from (Zero-Stage output, original), (H, W, 3) uint8 in and out."""
        import torch

        if self.model is None:
            raise RuntimeError("the Hero-Stage restorer is not trained: call fit() first")
        with torch_threads(self.config.threads), torch.inference_mode():
            y = self.model(_to_tensor(zero[None]), _to_tensor(orig[None]))
            return y[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()

    def save(self, path) -> None:
        """The trained restorer's weights (safetensors), for resuming an edit without retraining."""
        from safetensors.torch import save_file

        if self.model is None:
            raise RuntimeError("the Hero-Stage restorer is not trained: call fit() first")
        save_file({k: v.contiguous() for k, v in self.model.state_dict().items()}, str(path))

    def load(self, path) -> None:
        """Restore weights written by :meth:`save` (same config)."""
        from safetensors.torch import load_file

        model = self.new_model()
        model.load_state_dict(load_file(str(path)))
        self.model = model.eval()


def _random_crop(data, rng: np.random.Generator, crop_h: int, crop_w: int):
    """One random crop of one random triplet, randomly flipped (same flip for all three images)."""
    n, _, h, w = data.shape
    i, y, x = rng.integers(n), rng.integers(h - crop_h + 1), rng.integers(w - crop_w + 1)
    crop = data[i, :, y : y + crop_h, x : x + crop_w]
    if rng.random() < 0.5:
        crop = crop.flip(-1)
    if rng.random() < 0.5:
        crop = crop.flip(-2)
    return crop
