"""Time and peak memory of k=1 gather vs dense masked attention (8 heads, d=40), side by side.

Peak memory is the growth of the process's peak resident set size (VmHWM in /proc/self/status) during
one call; the peak is reset before each call by writing 5 to /proc/self/clear_refs (Linux), so every
number is that call's own high-water mark above the resident size at its start. The script re-executes
itself with MALLOC_MMAP_THRESHOLD_=65536 so that every tensor above 64 KiB gets fresh pages from mmap
and returns them when freed (otherwise glibc reuses freed heap pages and a call's allocations are
invisible to RSS). Time is the median of ``--repeats`` calls after one warm-up (one call, no warm-up,
when a call takes over a second).

    .venv/bin/python perf/attention_speed.py [--sizes 1024,4096,9216] [--k 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from z2h.attention import dense_masked_attention, masked_attention


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(fn, repeats: int) -> tuple[float, float]:
    """(median seconds, peak MiB above the resident size at the start) of ``fn()``."""
    t0 = time.perf_counter()
    fn()
    times = [time.perf_counter() - t0]
    if times[0] < 1.0:  # that was the warm-up; slow calls are not worth repeating
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    Path("/proc/self/clear_refs").write_text("5")
    rss0 = _kib("VmRSS")
    fn()
    return statistics.median(times), (_kib("VmHWM") - rss0) / 1024


def main() -> None:
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1024,4096,9216")
    p.add_argument("--k", type=int, default=1)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--dim", type=int, default=40)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"heads={a.heads}, d={a.dim}, k={a.k}")
    print(f"{'N':>6} {'dense s':>9} {'fast s':>9} {'speed-up':>9} {'dense MiB':>10} {'fast MiB':>9} "
          f"{'mem ratio':>10} {'max|diff|':>10}")
    for n in (int(s) for s in a.sizes.split(",")):
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(1, a.heads, n, a.dim, generator=g) for _ in range(3))
        idx = torch.randint(0, n, (1, n, a.k), generator=g)
        diff = (masked_attention(q, k, v, idx) - dense_masked_attention(q, k, v, idx)).abs().max().item()
        td, md = measure(lambda: dense_masked_attention(q, k, v, idx), a.repeats)  # noqa: B023
        tf, mf = measure(lambda: masked_attention(q, k, v, idx), a.repeats)  # noqa: B023
        print(f"{n:>6} {td:>9.4f} {tf:>9.4f} {td / tf:>8.0f}x {md:>10.1f} {mf:>9.2f} "
              f"{md / max(mf, 1e-3):>9.0f}x {diff:>10.2e}")


if __name__ == "__main__":
    main()
