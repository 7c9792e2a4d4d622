"""Shared by the perf/ scripts: warmed-up samples, median (min–max) text, the --quick / --md options.

Every perf script times our code and, where a user has an alternative, that alternative (the reference
side) in one process, interleaved, after one untimed warm-up call of EACH side; it prints medians and
ranges and, with ``--md FILE``, writes its table as Markdown for `z2h report perf` (docs/). ``--quick``
shrinks every size so the script runs in seconds (the fast test suite runs each one that way; its
numbers mean nothing).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, 2 samples: checks that the script runs (numbers mean nothing)")
    parser.add_argument("--md", type=Path, help="also write the table as Markdown to this file")


def samples(
    fns: dict[str, Callable[[], object]], repeats: int, warmup: bool = True
) -> dict[str, list[float]]:
    """Seconds of ``repeats`` calls of each function, interleaved, after one untimed call of each."""
    if warmup:
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median(times: list[float]) -> float:
    return statistics.median(times)


def spread(times: list[float], scale: float = 1.0, digits: int = 3) -> str:
    """'median (min–max)' of ``times`` × ``scale``."""
    med, lo, hi = (x * scale for x in (statistics.median(times), min(times), max(times)))
    return f"{med:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def ratio(ref: list[float], ours: list[float]) -> str:
    """Ratio of medians and its range over the paired samples (reference / ours)."""
    pairs = [r / o for r, o in zip(ref, ours, strict=True) if o > 0]
    med = statistics.median(ref) / statistics.median(ours)
    return f"{med:.2f}× ({min(pairs):.2f}–{max(pairs):.2f})" if pairs else f"{med:.2f}×"


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def setup_line(command: str, repeats: int, how: str | None = None) -> str:
    """Where and how the numbers were made (they depend on the machine and its load)."""
    import torch

    how = how or f"median (min–max) of {repeats} samples after a warm-up of each side"
    return (f"`{command}` on {datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, torch {torch.__version__} "
            f"with {torch.get_num_threads()} threads; {how}; other jobs may have shared the machine, so "
            "compare ratios, not seconds.")


def report(args: argparse.Namespace, title: str, table: str, setup: str) -> None:
    """Print the table and, with --md, write it (title, setup line, table) for `z2h report perf`."""
    print(table)
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(f"# {title}\n\n{setup}\n\n{table}\n")
        print(f"written to {args.md}")
