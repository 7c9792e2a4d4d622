"""The ``z2h`` command line: one subcommand per job, each implemented in its own module.

A command module exposes ``add_arguments(parser)`` and ``run(args) -> int``. Only the module of the
command being run is imported, so ``z2h bench ...`` never loads torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "bench": ("z2h.benchmark.cli", "generate, build and check Blender-Color-Edit benchmarks"),
    "zero": ("z2h.zero_stage.cli", "run the Zero-Stage (correspondence-guided attention) on a video"),
    "edit": ("z2h.edit_cli", "propagate an edited anchor frame through a video (Zero- then Hero-Stage)"),
    "eval": ("z2h.eval.cli", "score methods on a benchmark; tables and plots"),
    "experiment": ("z2h.experiments.cli", "paper experiments: k-sweep, modes, anchor-only"),
    "report": ("z2h.eval.docs", "rewrite (or --check) the results blocks of README.md and docs/"),
    "weights": ("z2h.weights", "fetch and convert the offline VGG16/AlexNet/LPIPS and RAFT weights"),
    "addon": ("z2h.addon_build", "build the Blender add-on zip"),
}


def _verbosity_flags(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="more detail on stderr (debug messages)")
    parser.add_argument("-q", "--quiet", action="count", default=default,
                        help="less on stderr: -q warnings and errors (no progress bars), -qq errors only")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only ``command``'s own arguments are added (its module gets imported)."""
    parser = argparse.ArgumentParser(prog="z2h", description=__doc__.splitlines()[0])
    from z2h import __version__

    parser.add_argument("--version", action="version", version=f"z2h {__version__}")
    _verbosity_flags(parser, 0)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module).add_arguments(p)
        _add_everywhere(p)
    return parser


def _add_everywhere(parser: argparse.ArgumentParser) -> None:
    """-v/-q after the command and its action too (``z2h eval run ... -q``)."""
    _verbosity_flags(parser, argparse.SUPPRESS)  # SUPPRESS: the top-level value stays unless given here
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_everywhere(child)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    command = command if command in COMMANDS else None
    args = build_parser(command).parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 2
    from z2h import log

    log.setup(args.verbose - args.quiet)
    try:
        return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
    except KeyboardInterrupt:
        print("z2h: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `z2h ... | head` closed the pipe: stop quietly, as other tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's exit-time flush must not raise again
        return 141  # 128 + SIGPIPE
