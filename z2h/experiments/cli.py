"""``z2h experiment NAME``: the paper's experiments, one module each with add_arguments/run."""

from __future__ import annotations

import argparse
import importlib

EXPERIMENTS: dict[str, tuple[str, str]] = {
    "k-sweep": ("z2h.experiments.k_sweep", "Zero-Stage quality vs top-k (blur/leakage trade-off)"),
    "modes": ("z2h.experiments.modes", "Hero-Stage Mode 1 vs Mode 2"),
    "anchor-only": ("z2h.experiments.anchor_only", "does the Hero-Stage restore the anchor itself?"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name, (module, help_text) in EXPERIMENTS.items():
        parser_ = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(parser_)


def run(args: argparse.Namespace) -> int:
    return importlib.import_module(EXPERIMENTS[args.experiment][0]).run(args)
