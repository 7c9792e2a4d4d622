"""``z2h bench``: generate scene specs, build a benchmark with Blender, check or import a benchmark (no bpy
here)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench_command", metavar="ACTION", required=True)

    b = sub.add_parser("build", help="render scene specs into a benchmark folder")
    b.add_argument("specs", nargs="+", metavar="SPEC", help="scene spec files (.toml/.json)")
    b.add_argument("--out", required=True, help="benchmark folder to create")
    b.add_argument(
        "--resolution",
        type=int,
        nargs="+",
        metavar="PX",
        help="W [H] for every video (default: each spec's own, usually 256)",
    )
    b.add_argument(
        "--frames", type=int, help="frames per video; keyframes are rescaled (default: the spec's)"
    )
    b.add_argument("--jobs", "-j", type=int, default=1, help="videos rendered in parallel (default 1)")
    b.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="one Ray task per video (needs z2h[ray]): on the cluster at ADDRESS (e.g. auto, "
                   "HOST:6379), or on a local Ray when no address is given; --out must be on storage every "
                   "node sees (docs/scale.md)")
    b.add_argument(
        "--engine",
        default="cycles",
        choices=["cycles", "eevee", "workbench"],
        help="render engine (default cycles; workbench ignores textures: tests only)",
    )
    b.add_argument("--samples", type=int, default=16, help="render samples per pixel (default 16)")
    b.add_argument(
        "--flow",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="store the ground-truth motion field (Cycles vector pass) as flow.npz (default: on with cycles)",
    )
    b.add_argument(
        "--full-light",
        action="store_true",
        help="let the edited object show in reflections/bounce light (the edit then leaks)",
    )
    b.add_argument("--denoise", action="store_true", help="OpenImageDenoise (slower; ±1 level across runs)")
    mode = b.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="keep frames already written and valid")
    mode.add_argument("--overwrite", action="store_true", help="replace videos of these specs in --out")
    b.add_argument(
        "--blender",
        help="Blender 4.2+ binary or a Python with bpy (default: $Z2H_BLENDER, "
        "else .venv-blender/bin/python)",
    )

    c = sub.add_parser("check", help="validate a benchmark folder (exit 1 with a list of problems)")
    c.add_argument("bench", help="benchmark folder")

    i = sub.add_parser("import", help="make a benchmark from your own original/edited/mask frames or videos")
    i.add_argument("src", help="a video folder (original/, edited/, mask/) or a folder of them")
    i.add_argument("--out", required=True, help="benchmark folder (new, or one to add videos to)")
    i.add_argument("--anchor", help="anchor frame: index in frame order (0 = first, default) or file name")
    i.add_argument("--tags", help="comma-separated tags for every imported video (for `eval table --by tag`)")
    i.add_argument("--name", help="video name (default: the video folder's name; one video only)")

    g = sub.add_parser("generate", help="write seeded random scene specs")
    g.add_argument("--n", type=int, default=50, help="number of specs (default 50)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", required=True, help="folder for the .toml specs")
    g.add_argument("--frames", type=int, default=24)
    g.add_argument("--resolution", type=int, default=256)
    g.add_argument("--overwrite", action="store_true", help="replace existing spec files")


def run(args: argparse.Namespace) -> int:
    from .spec import SpecError

    try:
        if args.bench_command == "build":
            from .build import BuildConfig, build

            res = args.resolution
            if res is not None and len(res) not in (1, 2):
                raise ValueError("--resolution takes W or W H")
            config = BuildConfig(
                resolution=(res[0], res[-1]) if res else None,
                frames=args.frames,
                jobs=args.jobs,
                ray=args.ray,
                engine=args.engine,
                samples=args.samples,
                flow=args.engine == "cycles" if args.flow is None else args.flow,
                full_light=args.full_light,
                denoise=args.denoise,
                resume=args.resume,
                overwrite=args.overwrite,
                blender=args.blender,
            )
            return 1 if build(args.specs, args.out, config) else 0
        if args.bench_command == "check":
            from .check import check_benchmark

            errors, warnings = check_benchmark(args.bench)
            for w in warnings:
                print(f"warning: {w}", file=sys.stderr)
            for e in errors:
                print(f"error: {e}", file=sys.stderr)
            print(
                f"{args.bench}: {'INVALID' if errors else 'ok'} ({len(errors)} error(s), "
                f"{len(warnings)} warning(s))"
            )
            return 1 if errors else 0
        if args.bench_command == "import":
            # backend side (PIL, video decoding): not part of the add-on's copy of this package
            import importlib

            return importlib.import_module("z2h.bench_import").run(args)
        from .generate import generate

        paths = generate(args.n, args.seed, args.out, args.frames, args.resolution, args.overwrite)
        print(f"wrote {len(paths)} specs to {args.out}")
        return 0
    except (SpecError, FileExistsError, FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"z2h bench: error: {e}", file=sys.stderr)
        return 1
