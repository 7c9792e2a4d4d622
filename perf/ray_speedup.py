"""Speed-up of `z2h eval run --ray` with 1 and 2 worker nodes on this machine, and what a task costs.

Starts a real local Ray cluster of N nodes (1 CPU each; z2h.ray_tasks.LocalCluster) for each N, runs the
same `z2h eval run` through it into a fresh --out, and, for reference, the local sequential run. Prints
wall seconds, the speed-up over 1 node, and per task: the time the task's own work took (method +
scoring, from run.json) against the wall time one task slot was busy per task (their difference is
Ray's overhead per task: scheduling, moving arguments, a worker's first imports).

    .venv/bin/python perf/ray_speedup.py data/bce --methods colormap,flow-dis-chained --videos a,b,c,d
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def eval_run(bench: Path, out: Path, args: list[str]) -> float:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "z2h", "eval", "run", str(bench), "--out", str(out),
                        "--lpips", "none", "--progress", "none", *args], env=env, capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise SystemExit(f"z2h eval run failed:\n{r.stderr[-3000:]}")
    return time.perf_counter() - start


def work_seconds(out: Path) -> list[float]:
    record = json.loads((out / "run.json").read_text())
    return [v.get("seconds", 0) + v.get("metrics_seconds", 0) for m in record["methods"].values()
            for v in m["videos"].values()]


def main() -> int:
    from z2h.ray_tasks import LocalCluster

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bench", type=Path)
    p.add_argument("--methods", default="colormap,flow-dis-chained")
    p.add_argument("--videos", help="comma-separated (default: all)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    a = p.parse_args()
    args = ["--methods", a.methods] + (["--videos", a.videos] if a.videos else [])
    with tempfile.TemporaryDirectory(prefix="z2h-ray-speedup-") as tmp:
        local = eval_run(a.bench, Path(tmp) / "local", args)
        tasks = len(work_seconds(Path(tmp) / "local"))
        print(f"local (sequential): {local:.1f} s for {tasks} method x video runs", flush=True)
        base = None
        for n in a.workers:
            start = time.perf_counter()
            with LocalCluster(nodes=n, cpus=1) as address:
                up = time.perf_counter() - start
                out = Path(tmp) / f"ray{n}"
                wall = eval_run(a.bench, out, [*args, "--ray", address])
            work = work_seconds(out)
            base = base or wall
            busy = wall * n / len(work)  # wall time one slot was occupied, per task
            print(f"ray, {n} node(s): {wall:.1f} s (cluster start {up:.0f} s not included), "
                  f"speed-up x{base / wall:.2f} over 1 node, x{local / wall:.2f} over local; per task: "
                  f"{sum(work) / len(work):.2f} s of work, {busy:.2f} s of a slot "
                  f"(overhead {busy - sum(work) / len(work):+.2f} s)", flush=True)
        again = eval_run(a.bench, Path(tmp) / "local-again", args)  # load drifts on a shared machine
        print(f"local (sequential) again, after the Ray runs: {again:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
