"""Time and peak memory of k=1 gather vs dense masked attention (8 heads, d=40), side by side.

Peak memory is the growth of the process's peak resident set size (VmHWM in /proc/self/status) during
one call; the peak is reset before each call by writing 5 to /proc/self/clear_refs (Linux), so every
number is that call's own high-water mark above the resident size at its start. The script re-executes
itself with MALLOC_MMAP_THRESHOLD_=65536 so that every tensor above 64 KiB gets fresh pages from mmap
and returns them when freed (otherwise glibc reuses freed heap pages and a call's allocations are
invisible to RSS). Time: both sides warmed up (one untimed call each), then ``--repeats`` interleaved
calls each; median (min–max). The dense side is the reference code's +100-mask softmax.

    .venv/bin/python perf/attention_speed.py [--sizes 1024,4096,9216] [--k 1] [--repeats 3] [--md out.md]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from timing import add_common, markdown, median, ratio, report, samples, setup_line, spread

from z2h.attention import dense_masked_attention, masked_attention


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_mib(fn) -> float:
    """Peak resident memory (MiB) of one call of ``fn`` above the resident size at its start."""
    Path("/proc/self/clear_refs").write_text("5")
    rss0 = _kib("VmRSS")
    fn()
    return (_kib("VmHWM") - rss0) / 1024


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
    add_common(p)
    a = p.parse_args()
    if a.quick:
        a.sizes, a.repeats = "256,512", 2
    rows = []
    for n in (int(s) for s in a.sizes.split(",")):
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(1, a.heads, n, a.dim, generator=g) for _ in range(3))
        idx = torch.randint(0, n, (1, n, a.k), generator=g)
        diff = (masked_attention(q, k, v, idx) - dense_masked_attention(q, k, v, idx)).abs().max().item()
        sides = {"dense": lambda: dense_masked_attention(q, k, v, idx),  # noqa: B023
                 "gather": lambda: masked_attention(q, k, v, idx)}  # noqa: B023
        t = samples(sides, a.repeats)
        md, mf = peak_mib(sides["dense"]), peak_mib(sides["gather"])
        rows.append([n, spread(t["dense"]), spread(t["gather"], digits=4), ratio(t["dense"], t["gather"]),
                     f"{md:.1f}", f"{mf:.2f}", f"{md / max(mf, 1e-3):.0f}×", f"{diff:.1e}"])
        print(f"N={n}: dense {median(t['dense']):.4f} s, gather {median(t['gather']):.4f} s", flush=True)
    table = markdown(["N", "dense s", "gather s", "speed-up", "dense MiB", "gather MiB", "memory ratio",
                      "max abs diff"], rows)
    command = f"perf/attention_speed.py --sizes {a.sizes} --k {a.k} --repeats {a.repeats}"
    setup = setup_line(command, a.repeats)
    report(a, "Masked attention: k=1 gather vs dense softmax", table,
           f"heads={a.heads}, d={a.dim}, k={a.k}. " + setup)


if __name__ == "__main__":
    main()
