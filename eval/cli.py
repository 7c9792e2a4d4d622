"""`z2h eval`: run methods on a benchmark (run), tables (table), plots (plot), registered methods (list)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("run", help="run methods on a benchmark and score them (cached, resumable)")
    p.add_argument("bench", type=Path, help="benchmark folder (with manifest.json)")
    p.add_argument("--methods", default="baselines",
                   help="comma-separated names, or the groups 'baselines' / 'default' (baselines + "
                        "z2h-zero + z2h); see `z2h eval list` (default: baselines)")
    p.add_argument("--videos", help="comma-separated video names (default: all)")
    p.add_argument("--out", type=Path, required=True, help="results folder (new, empty, or an earlier one)")
    p.add_argument("--jobs", type=int, default=1, help="methods run at the same time (threads)")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="one Ray task per video x method (needs z2h[ray]): on the cluster at ADDRESS (e.g. "
                   "auto, HOST:6379), or on a local Ray when no address is given; the benchmark and --out "
                   "must be on storage every node sees (docs/scale.md)")
    p.add_argument("--protocol", choices=("default", "paper"), default="default",
                   help="default: native resolution; paper: the reference code's 512x512 protocol")
    p.add_argument("--lpips", choices=("alex", "vgg", "none"), default="alex", help="LPIPS backbone")
    p.add_argument("--batch-size", type=int, default=8, help="frames per metric batch")
    p.add_argument("--raft-weights", metavar="sintel|kitti|small|PATH",
                   help="weights of the flow-raft-* methods: the RAFT authors' checkpoints from `z2h weights "
                        "fetch` (default: sintel) or a torchvision RAFT state dict")
    p.add_argument("--ebsynth-bin", type=Path,
                   help="the ebsynth binary (default: $Z2H_EBSYNTH, PATH, then `make ebsynth`'s .cache copy)")
    p.add_argument("--set", action="append", default=[], metavar="METHOD:KEY=VALUE",
                   help="a method option, e.g. flow-dis-chained:preset=fast or z2h-zero:engine=diffusion "
                        "(VALUE parsed as JSON when it can be; repeatable)")
    p.add_argument("--progress", choices=("bar", "json", "none"), default="bar")

    p = sub.add_parser("table", help="paper-style table from RESULTS")
    p.add_argument("results", type=Path)
    p.add_argument("--format", choices=("md", "latex", "csv"), default="md")
    p.add_argument("--per-video", action="store_true", help="one row per video and method")
    p.add_argument("--std", action="store_true", help="mean ± std over videos")
    p.add_argument("--by", choices=("motion", "distance", "tag"), help="rows per motion/distance bin or tag")
    p.add_argument("--methods", help="comma-separated methods to show, in this order (default: all)")
    p.add_argument("--timing", action="store_true",
                   help="add s/frame: each method's wall-clock seconds per frame (from run.json)")
    p.add_argument("--no-truth-row", action="store_true",
                   help="leave out the reference row with the ground-truth edited video's own Ewarp")
    p.add_argument("--out", type=Path, help="write the table here (default: print it)")

    p = sub.add_parser("plot", help="PNG plots from RESULTS: metric vs distance, per motion bin, strips")
    p.add_argument("results", type=Path)
    p.add_argument("--out", type=Path, help="folder for the PNGs (default: RESULTS/plots)")
    p.add_argument("--metric", default="psnr_masked", help="metric column to plot (default: psnr_masked)")
    p.add_argument("--methods", help="comma-separated methods to show (default: all)")
    p.add_argument("--frames", help="comma-separated frames for the qualitative strips (default: 4 spread)")

    sub.add_parser("list", help="registered methods and the groups they belong to")


def _split(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def parse_options(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["m:k=v", ...]`` -> ``{"m": {"k": v}}`` (v as JSON if it parses, else the string)."""
    options: dict[str, dict[str, Any]] = {}
    for item in items:
        method, sep, rest = item.partition(":")
        key, eq, value = rest.partition("=")
        if not (sep and eq and method and key):
            raise ValueError(f"--set {item!r}: expected METHOD:KEY=VALUE")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        options.setdefault(method, {})[key] = parsed
    return options


def _run(args: argparse.Namespace) -> int:
    from z2h.eval.runner import RunConfig, peers_available, resolve_methods, run
    from z2h.outlock import FolderBusy
    from z2h.progress import Cancelled, Reporter

    why = peers_available(args.ebsynth_bin)
    include_raft = why["raft"] is None or bool(args.raft_weights and Path(args.raft_weights).is_file())
    methods = resolve_methods(args.methods, include_raft=include_raft, include_ebsynth=why["ebsynth"] is None)
    groups = {"baselines", "default"} & {s.strip() for s in args.methods.split(",")}
    for peer, reason in why.items():  # a group leaves out a peer that cannot run, and says why
        if groups and reason and not (peer == "raft" and include_raft):
            logging.getLogger("z2h.eval").warning("z2h eval: leaving out the %s methods: %s", peer, reason)
    options: dict[str, dict[str, Any]] = {}
    for m in methods:
        if m.startswith("flow-raft") and args.raft_weights:
            options[m] = {"raft_weights": args.raft_weights}
        if m.startswith("ebsynth") and args.ebsynth_bin:
            options[m] = {"ebsynth_bin": str(args.ebsynth_bin)}
    for method, opts in parse_options(args.set).items():
        if method not in methods:
            raise ValueError(f"--set names {method!r}, which is not among the methods run")
        options.setdefault(method, {}).update(opts)
    config = RunConfig(bench=args.bench, out=args.out, methods=methods, videos=_split(args.videos),
                       jobs=max(1, args.jobs), ray=args.ray, protocol=args.protocol,
                       lpips=None if args.lpips == "none" else args.lpips, batch_size=args.batch_size,
                       method_options=options)
    reporter = Reporter(args.progress)
    reporter.install_signal_handlers()
    try:
        record = run(config, reporter)
    except Cancelled as e:
        reporter.emit("cancelled", out=str(args.out), partial=True, message=str(e))
        return 130
    except (FileNotFoundError, FileExistsError, ValueError, FolderBusy, RuntimeError) as e:
        reporter.emit("error", message=str(e))  # also on stderr, in every mode
        return 1
    failures = [f"{m} on {video}: {v.get('error', '?')}" for m, e in record["methods"].items() if m in methods
                for video, v in sorted(e.get("videos", {}).items()) if v.get("status") == "error"]
    message = f"results in {args.out} (metrics.csv, run.json)"
    if failures:  # a run with failed methods is not a success: scripts and CI must see it
        for line in failures:
            print(f"z2h eval: FAILED {line}", file=sys.stderr)
        failed = sorted({f.split(" on ")[0] for f in failures})
        message += f"; {len(failures)} method x video run(s) FAILED ({', '.join(failed)}; see run.json)"
        reporter.emit("error", out=str(args.out), partial=True, message=message)
        return 1
    reporter.emit("done", out=str(args.out), partial=False, message=message)
    return 0


def _table(args: argparse.Namespace) -> int:
    from z2h.eval.report import table

    text = table(args.results, fmt=args.format, per_video=args.per_video, std=args.std, by=args.by,
                 methods=_split(args.methods), timing=args.timing, truth_row=not args.no_truth_row)
    if args.out:
        from z2h.io import atomic_write_bytes

        atomic_write_bytes(args.out, text.encode())
        logging.getLogger("z2h.eval").info("z2h eval: table written to %s", args.out)
    else:
        print(text)
    return 0


def _plot(args: argparse.Namespace) -> int:
    from z2h.eval.plots import plot_all

    frames = [int(f) for f in _split(args.frames)] if args.frames else None
    paths = plot_all(args.results, out=args.out, metric=args.metric, methods=_split(args.methods),
                     frames=frames)
    for p in paths:
        print(p)
    return 0


def _list(args: argparse.Namespace) -> int:
    from z2h.eval.methods import REGISTRY
    from z2h.eval.runner import Z2H_METHODS, baseline_names

    baselines = set(baseline_names(include_raft=True, include_ebsynth=True))
    for name, target in sorted(REGISTRY.items()):
        group = "z2h" if name in Z2H_METHODS else "baseline" if name in baselines else "by name"
        note = (" (needs `z2h weights fetch`)" if name.startswith("flow-raft")
                else " (needs the ebsynth binary: `make ebsynth`)" if name.startswith("ebsynth") else "")
        print(f"{name:30s} {group:9s} {target}{note}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen action; input errors become one clear line and exit code 1."""
    action = {"run": _run, "table": _table, "plot": _plot, "list": _list}[args.action]
    try:
        return action(args)
    except (FileNotFoundError, FileExistsError, ValueError, KeyError) as e:
        print(f"z2h eval {args.action}: {e}", file=sys.stderr)
        return 1
