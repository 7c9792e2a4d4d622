"""``z2h report``: rewrite the results blocks of README.md and docs/ from result folders, or check them.

A block is delimited in a Markdown file by ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``;
everything between the markers is generated, so the docs cannot drift from the code. Blocks belong to
parts that can be regenerated alone (the Makefile's ``results-<part>`` targets make their inputs first):

- ``demo``: `make demo`'s results (data/demo/results): the README's demo table and per-video table;
- ``bce``: the full benchmark (data/bce-results): main table with s/frame and the ground truth's Ewarp,
  by motion bin, by tag, and the differences the README's prose relies on;
- ``experiments``: `z2h experiment modes / anchor-only / k-sweep` outputs (data/experiments/...);
- ``perf``: the perf/ scripts' Markdown outputs (data/perf/*.md).

``--check`` regenerates in memory and compares with the files: numbers must agree within
:func:`numbers_match`'s tolerance (bold marks and the s/frame column are not compared); exit 1 and a
list of differences otherwise. CI runs ``z2h report demo --check`` after ``make demo``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository (README.md, docs/)
DEMO_RESULTS = Path("data/demo/results")
BCE_RESULTS = Path("data/bce-results")
EXPERIMENTS = Path("data/experiments")
PERF = Path("data/perf")

# Rows of the README tables, in order; a method shows only where the results hold it (RAFT and EbSynth
# need weights or a binary; z2h-paper is the paper's preset).
FLOWS = ("flow-dis-chained", "flow-dis-direct", "flow-farneback-chained", "flow-tvl1-chained",
         "flow-raft-direct", "flow-raft-chained", "flow-raft-small-direct", "flow-raft-small-chained",
         "flow-raft-large-direct", "flow-raft-large-chained")
EBSYNTHS = ("ebsynth", "ebsynth-edge", "ebsynth-temporal", "ebsynth-chained")
ROWS = ("no-edit", "colormap", *FLOWS, *EBSYNTHS, "z2h-zero", "z2h-paper", "z2h")
PIVOT = ("colormap", "flow-dis-direct", "flow-dis-chained", "flow-farneback-chained", "flow-raft-direct",
         "flow-raft-chained", "ebsynth", "ebsynth-temporal", "z2h-zero", "z2h-paper", "z2h")

# Rows that need an external binary or downloaded weights: a machine without them (a bare CI runner) leaves
# them out of its results, which the check reports but does not count as a difference.
OPTIONAL_ROWS = frozenset(EBSYNTHS) | {m for m in FLOWS if m.startswith("flow-raft")}
# EbSynth's CPU build draws rand() from several OpenMP threads, so two runs differ (demo, masked PSNR 18.86 vs
# 19.59): --check wants its rows, not its numbers.
UNCOMPARED_ROWS = frozenset(EBSYNTHS)


def _present(results: Path, wanted: tuple[str, ...]) -> list[str]:
    from z2h.eval.report import load_results

    df, _ = load_results(results)
    have = set(df["method"])
    return [m for m in wanted if m in have]


def main_table(results: Path, timing: bool) -> str:
    from z2h.eval.report import markdown_rows

    return markdown_rows(results, methods=_present(results, ROWS), timing=timing)


def pivot(results: Path, by: str, metric: str = "psnr_masked", rows: str = "method",
          wanted: tuple[str, ...] = PIVOT) -> str:
    """One metric (mean over videos, anchor excluded) per method and group (``by``: motion, tag or video);
    ``rows`` is "method" or "group". The best value of each group is bold."""
    from z2h.eval.report import load_results, summarize

    df, _ = load_results(results)
    methods = _present(results, wanted)
    df = df[df["method"].isin(methods)]
    if by == "video":
        means = df[~df["anchor"].astype(bool)].groupby(["video", "method"])[metric].mean()
    else:
        means = summarize(df, by=by)[(metric, "mean")]
    wide = means.unstack("method")[methods]  # one row per group
    best = wide.max(axis=1)
    if rows == "method":
        wide, best = wide.T, wide.max(axis=1)
    lines = ["| " + " | ".join([rows if rows == "method" else by, *map(str, wide.columns)]) + " |",
             "|" + "---|" * (len(wide.columns) + 1)]
    for idx, r in wide.iterrows():
        cells = []
        for col, v in r.items():
            top = best[idx if rows != "method" else col]
            cells.append("–" if v != v else f"**{v:.2f}**" if round(v, 2) == round(top, 2) else f"{v:.2f}")
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    return "\n".join(lines)


def differences(results: Path) -> str:
    """The comparisons the README's prose makes, as computed numbers (masked PSNR, anchor excluded)."""
    from z2h.eval.report import load_results, summarize

    df, _ = load_results(results)
    s = summarize(df)
    mean = s[("psnr_masked", "mean")]
    flows = [m for m in mean.index if m.startswith("flow-")]
    best_flow = max(flows, key=lambda m: mean[m]) if flows else None
    ebsynths = [m for m in mean.index if m in EBSYNTHS]
    best_ebsynth = max(ebsynths, key=lambda m: mean[m]) if ebsynths else None
    out = []
    for name, other in (("z2h", "z2h-zero"), ("z2h", best_flow), ("z2h", best_ebsynth), ("z2h", "colormap"),
                        ("z2h-paper", "z2h-zero"), ("z2h", "z2h-paper")):
        if other and name in mean and other in mean:
            out.append(f"- masked PSNR, {name} − {other}: {mean[name] - mean[other]:+.2f} dB "
                       f"({mean[name]:.2f} against {mean[other]:.2f})")
    lpips = s.get(("lpips_masked", "mean"))
    if lpips is not None and {"z2h", "z2h-zero"} <= set(lpips.index):
        out.append(f"- masked LPIPS, z2h against z2h-zero: {lpips['z2h']:.4f} against "
                   f"{lpips['z2h-zero']:.4f}")
    return "\n".join(out) or f"- (no z2h results in {results} yet)"


def from_file(path: Path) -> str:
    """A Markdown output of an experiment or perf script, without its top heading."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run its `make results-...` target first")
    lines = path.read_text().strip().splitlines()
    return "\n".join(lines[1:] if lines and lines[0].startswith("# ") else lines).strip()


@dataclass(frozen=True)
class Block:
    part: str
    doc: str  # relative to the repository
    make: Callable[[argparse.Namespace], str]


BLOCKS: dict[str, Block] = {
    "demo": Block("demo", "README.md", lambda a: main_table(a.demo, timing=False)),
    "demo-videos": Block("demo", "README.md", lambda a: pivot(a.demo, "video", rows="group",
                                                             wanted=tuple(m for m in PIVOT
                                                                          if m not in OPTIONAL_ROWS))),
    "bce": Block("bce", "README.md", lambda a: main_table(a.bce, timing=True)),
    "bce-motion": Block("bce", "README.md", lambda a: pivot(a.bce, "motion")),
    "bce-tag": Block("bce", "README.md", lambda a: pivot(a.bce, "tag", rows="group")),
    "bce-differences": Block("bce", "README.md", lambda a: differences(a.bce)),
    "modes": Block("experiments", "docs/hero_stage.md",
                   lambda a: from_file(a.experiments / "modes" / "modes.md")),
    "anchor-only": Block("experiments", "docs/hero_stage.md",
                         lambda a: from_file(a.experiments / "anchor-only" / "anchor_only.md")),
    "k-sweep": Block("experiments", "docs/zero_stage.md",
                     lambda a: from_file(a.experiments / "k-sweep" / "k_sweep.md")),
    "k-sweep-soft": Block("experiments", "docs/zero_stage.md",
                          lambda a: from_file(a.experiments / "k-sweep-soft" / "k_sweep.md")),
    "perf-attention": Block("perf", "docs/zero_stage.md", lambda a: from_file(a.perf / "attention_speed.md")),
    "perf-zero": Block("perf", "docs/zero_stage.md", lambda a: from_file(a.perf / "zero_speed.md")),
    "perf-edit": Block("perf", "docs/hero_stage.md", lambda a: from_file(a.perf / "edit_speed.md")),
    "perf-hero-steps": Block("perf", "docs/hero_stage.md", lambda a: from_file(a.perf / "hero_steps.md")),
    "perf-metrics": Block("perf", "docs/eval.md", lambda a: from_file(a.perf / "metrics_speed.md")),
}
PARTS = tuple(dict.fromkeys(b.part for b in BLOCKS.values()))


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- results:{re.escape(name)} -->\n)(.*?)(<!-- /results:{re.escape(name)} -->)",
                      re.S)


def read_block(text: str, name: str, doc: str) -> str:
    match = _pattern(name).search(text)
    if not match:
        raise ValueError(f"{doc} has no block <!-- results:{name} --> ... <!-- /results:{name} -->")
    return match.group(2).strip()


def write_block(text: str, name: str, body: str, doc: str) -> str:
    read_block(text, name, doc)  # the markers must be there
    return _pattern(name).sub(lambda m: m.group(1) + body.strip() + "\n" + m.group(3), text, count=1)


_NUMBER = re.compile(r"[-+−]?\d+(?:\.\d+)?")


def numbers_match(old: str, new: str, rtol: float = 0.005, units: float = 2.0,
                  optional: frozenset[str] = OPTIONAL_ROWS,
                  uncompared: frozenset[str] = UNCOMPARED_ROWS) -> list[str]:
    """Differences between two generated blocks, row by row (rows matched by their first cell): the same
    text apart from numbers, and every number within max(``units`` of its last shown digit, ``rtol``
    relative). Bold marks are ignored, and so is any column headed s/frame (wall time depends on the
    machine). A row of ``optional`` missing on one side is not a difference; the numbers of an ``uncompared``
    row (a method that is not deterministic) are not compared. One line per difference."""
    def rows(text: str) -> dict[str, list[str]]:
        lines = [line for line in text.replace("**", "").splitlines() if line.strip()]
        cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
        return {(r[0] if i else "header"): r for i, r in enumerate(cells)}

    a, b = rows(old), rows(new)
    problems = [f"row {k!r} is in the docs, not regenerated" for k in a if k not in b and k not in optional]
    problems += [f"row {k!r} is regenerated, not in the docs" for k in b if k not in a and k not in optional]
    skip = {i for i, h in enumerate(b.get("header", [])) if "s/frame" in h}
    for key in (k for k in b if k in a and k not in uncompared):
        row_a, row_b = a[key], b[key]
        if len(row_a) != len(row_b):
            problems.append(f"{key}: {len(row_a)} cells in the docs, {len(row_b)} regenerated")
            continue
        for i, (x, y) in enumerate(zip(row_a, row_b, strict=True)):
            if i in skip or x == y:
                continue
            nx, ny = _NUMBER.findall(x), _NUMBER.findall(y)
            if _NUMBER.sub("#", x) != _NUMBER.sub("#", y) or len(nx) != len(ny):
                problems.append(f"{key}: {x!r} in the docs, {y!r} regenerated")
                continue
            for u, v in zip(nx, ny, strict=True):
                fu, fv = float(u.replace("−", "-")), float(v.replace("−", "-"))
                digits = len(v.split(".")[1]) if "." in v else 0
                if abs(fu - fv) > max(units * 10.0**-digits, rtol * abs(fv)):
                    problems.append(f"{key}: {x} in the docs, {y} regenerated")
    return problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("parts", nargs="*", metavar="PART",
                        help=f"which blocks to regenerate: {', '.join(PARTS)} or a block name "
                        f"({', '.join(BLOCKS)}); default: every part")
    parser.add_argument("--check", action="store_true",
                        help="compare instead of writing: exit 1 when a block's numbers differ beyond "
                        "the tolerance (rtol 0.5%%, or 2 units of the last digit shown)")
    parser.add_argument("--demo", type=Path, default=DEMO_RESULTS, help="demo results folder")
    parser.add_argument("--bce", type=Path, default=BCE_RESULTS, help="full-benchmark results folder")
    parser.add_argument("--experiments", type=Path, default=EXPERIMENTS, help="experiment outputs folder")
    parser.add_argument("--perf", type=Path, default=PERF, help="folder of the perf scripts' .md outputs")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository with README.md and docs/")


def run(args: argparse.Namespace) -> int:
    wanted = args.parts or list(PARTS)
    unknown = [p for p in wanted if p not in PARTS and p not in BLOCKS]
    if unknown:
        print(f"z2h report: unknown part {', '.join(unknown)}; parts: {', '.join(PARTS)}; "
              f"blocks: {', '.join(BLOCKS)}", file=sys.stderr)
        return 2
    names = [n for n, b in BLOCKS.items() if n in wanted or b.part in wanted]
    texts: dict[str, str] = {}
    failed = []
    for name in names:
        block = BLOCKS[name]
        path = args.root / block.doc
        text = texts.setdefault(block.doc, path.read_text())
        try:
            body = block.make(args)
            if args.check:
                problems = numbers_match(read_block(text, name, block.doc), body)
                failed += [f"{block.doc} [{name}] {p}" for p in problems]
                print(f"z2h report: {block.doc} [{name}] " + ("differs" if problems else "matches"),
                      file=sys.stderr)
            else:
                texts[block.doc] = write_block(text, name, body, block.doc)
                print(f"z2h report: {block.doc} [{name}] rewritten", file=sys.stderr)
        except (FileNotFoundError, ValueError, KeyError) as e:
            failed.append(f"{block.doc} [{name}]: {e}")
    if not args.check:
        from z2h.io import atomic_write_bytes

        for doc, text in texts.items():
            if text != (args.root / doc).read_text():
                atomic_write_bytes(args.root / doc, text.encode())
    for line in failed:
        print(f"z2h report: {line}", file=sys.stderr)
    return 1 if failed else 0
