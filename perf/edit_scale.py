"""Peak memory and seconds per frame of ``z2h edit`` against video length and resolution.

For every resolution a synthetic video (a textured disc moving and turning over a textured background,
recoloured in the reference) is written frame by frame to a scratch folder; ``z2h edit`` then runs on
its first T frames as a subprocess, exactly as a user runs it, and the child's own peak RSS comes from
``os.wait4`` (not shared with earlier children). Seconds per frame = time of the per-frame work / T
(the Zero-Stage, the Hero-Stage restoring and the preview, from run.json; start-up and training are
fixed costs per video, reported apart). ``--in-memory`` adds the same edit through the
in-memory ``z2h.pipeline.edit`` (read_frames -> edit -> write), which is what eval runs, for comparison.

    .venv/bin/python perf/edit_scale.py                        # 256², 512², 1080p x 60, 120, 300 frames
    .venv/bin/python perf/edit_scale.py --quick                # 2 tiny points (the fast test suite runs it)
    .venv/bin/python perf/edit_scale.py --sizes 512 --frames 60 120 --plot docs/img/edit_scale.png

Prints one line per point and writes JSON (``--json``) and a plot (``--plot``). Needs `z2h weights
fetch` (or Z2H_CACHE pointing at weights).
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

import numpy as np

SIZES = {"256": (256, 256), "512": (512, 512), "1080p": (1080, 1920)}


class Synthetic:
    """Frame t of a synthetic video, computed on demand (never the whole video in memory)."""

    def __init__(self, height: int, width: int, frames: int, seed: int = 0):
        import cv2

        rng = np.random.default_rng(seed)
        self.h, self.w, self.n = height, width, frames
        self.bg = cv2.resize(rng.uniform(30, 220, (12, 12, 3)).astype(np.float32), (width, height),
                             interpolation=cv2.INTER_CUBIC)
        self.grain = rng.normal(0, 4, (height, width, 1)).astype(np.float32)  # full-res detail
        self.r = r = min(height, width) // 6
        self.tex = cv2.resize(rng.uniform(0.55, 1.0, (8, 8)).astype(np.float32), (2 * r, 2 * r),
                              interpolation=cv2.INTER_CUBIC)
        self.disc = cv2.circle(np.zeros((2 * r, 2 * r), np.float32), (r, r), r - 1, 1.0, -1)

    def frame(self, t: int, edited: bool = False) -> np.ndarray:
        import cv2

        s = t / max(self.n - 1, 1)
        m = cv2.getRotationMatrix2D((self.r, self.r), 90 * s, 1.0)
        m[:, 2] += (self.w * (0.2 + 0.6 * s) - self.r, self.h * (0.5 + 0.2 * np.sin(6 * s)) - self.r)
        a = cv2.warpAffine(self.disc, m, (self.w, self.h))[..., None]
        shade = cv2.warpAffine(self.tex, m, (self.w, self.h))[..., None]
        colour = np.array([60, 110, 220.0]) if edited else np.array([200.0, 60, 50])
        img = self.bg * (1 - a) + colour * shade * a + self.grain
        return np.clip(img, 0, 255).round().astype(np.uint8)


def write_video_folder(folder: Path, video: Synthetic) -> None:
    from z2h.io import write_image

    folder.mkdir(parents=True, exist_ok=True)
    for t in range(video.n):
        path = folder / f"{t:04d}.png"
        if not path.exists():
            write_image(path, video.frame(t), compress_level=1)


def subset(src: Path, dst: Path, frames: int) -> Path:
    """A folder with the first ``frames`` frames of ``src`` (symlinks: no copies)."""
    dst.mkdir(parents=True, exist_ok=True)
    for t in range(frames):
        link = dst / f"{t:04d}.png"
        if not link.exists():
            link.symlink_to(src / f"{t:04d}.png")
    return dst


IN_MEMORY = """
import json, sys, time
from pathlib import Path
from z2h.cli import build_parser
from z2h.edit_cli import build_config
from z2h.io import read_frames, read_image, write_frames
from z2h.pipeline import edit
args = build_parser("edit").parse_args(["edit", *sys.argv[1:]])
start = time.perf_counter()
frames = read_frames(args.video)
res = edit(frames, args.anchor, read_image(args.reference), build_config(args))
write_frames(Path(args.out) / "frames", res.frames)
Path(args.out, "run.json").write_text(json.dumps({"timings": {**res.timings, "write": 0,
                                      "total": time.perf_counter() - start}}))
"""


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak so far) resident memory of a live process in MB (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def run_child(cmd: list[str], timeout: float, frames_dir: Path | None = None,
              trace: list | None = None) -> tuple[int, float, float]:
    """(exit code, seconds, peak RSS in MB of this child alone). With ``trace``, every 2 s appends
    (seconds, final frames written so far in ``frames_dir``, RSS MB, peak RSS so far MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, next_sample = start + timeout, start
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.perf_counter()
        if now > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        if trace is not None and now >= next_sample:
            next_sample = now + 2
            try:
                done = len(list(frames_dir.glob("*.png"))) if frames_dir and frames_dir.is_dir() else 0
                trace.append((round(now - start, 1), done, *(round(x, 1) for x in rss_mb(proc.pid))))
            except (OSError, KeyError):  # the child is exiting
                pass
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code != 0:
        print(proc.stderr.read()[-2000:], file=sys.stderr)
    return code, seconds, usage.ru_maxrss / 1024  # Linux: ru_maxrss in KiB


def measure(video: Path, reference: Path, out: Path, frames: int, steps: int, work: int, mode: str,
            extra: list[str], timeout: float) -> dict:
    edit_args = ["--video", str(video), "--anchor", "0", "--reference", str(reference), "--out", str(out),
                 "--steps", str(steps), "--work-resolution", str(work), "--progress", "none", *extra]
    if mode == "stream":
        cmd = [sys.executable, "-m", "z2h", "edit", *edit_args]
    else:
        out.mkdir(parents=True)
        cmd = [sys.executable, "-c", IN_MEMORY, *edit_args]
    trace: list = []
    code, seconds, rss = run_child(cmd, timeout, out / "frames", trace)
    timings = json.loads((out / "run.json").read_text()).get("timings", {}) if code == 0 else {}
    per_frame = sum(timings.get(k, 0.0) for k in ("zero", "hero", "write")) / frames
    return {"mode": mode, "frames": frames, "status": "ok" if code == 0 else f"exit {code}",
            "peak_rss_mb": round(rss, 1), "seconds": round(seconds, 2),
            "train_seconds": timings.get("hero_train", 0.0), "seconds_per_frame": round(per_frame, 3),
            "trace": trace}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4))
    for (size, mode) in sorted({(r["size"], r["mode"]) for r in rows}):
        pts = sorted((r["frames"], r["peak_rss_mb"], r["seconds_per_frame"]) for r in rows
                     if r["size"] == size and r["mode"] == mode and r["status"] == "ok")
        if not pts:
            continue
        x, rss, spf = zip(*pts, strict=True)
        style = "-o" if mode == "stream" else "--x"
        ax1.plot(x, np.array(rss) / 1024, style, label=f"{size} {mode}")
        ax2.plot(x, spf, style, label=f"{size} {mode}")
    for r in rows:  # within one run: memory as the frames are written (a run cut short still shows it)
        if r.get("trace"):
            _, done, _, peak = zip(*r["trace"], strict=True)
            ax3.plot(done, np.array(peak) / 1024, label=f"{r['size']} x {r['frames']} {r['mode']}")
    ax3.set(xlabel="final frames written", ylabel="peak RSS so far (GB)", title="during one run")
    ax1.set(xlabel="frames", ylabel="peak RSS (GB)", title="z2h edit: peak memory")
    ax2.set(xlabel="frames", ylabel="seconds per frame", title="z2h edit: time per frame")
    ax1.axhline(4, color="grey", lw=0.8, ls=":")
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", default=list(SIZES), help=f"of {', '.join(SIZES)} or HxW")
    p.add_argument("--frames", nargs="+", type=int, default=[60, 120, 300])
    p.add_argument("--steps", type=int, default=200, help="Hero-Stage training steps (a fixed cost)")
    p.add_argument("--work-resolution", type=int, default=512)
    p.add_argument("--in-memory", action="store_true", help="also run the in-memory edit() for comparison")
    p.add_argument("--quick", action="store_true", help="2 tiny points: 96x128 x 4 and 16 frames")
    p.add_argument("--scratch", type=Path, help="folder for the synthetic videos (default: a temp folder)")
    p.add_argument("--timeout", type=float, default=3600,
                   help="seconds per point; a point stopped by it keeps its trace (status 'exit -9')")
    p.add_argument("--json", type=Path, help="write the rows here")
    p.add_argument("--plot", type=Path, help="write the plot here (PNG)")
    p.add_argument("--replot", type=Path, nargs="+", metavar="JSON",
                   help="no runs: plot (--plot) and summarise the rows of earlier --json files")
    p.add_argument("extra", nargs="*", help="after --: extra z2h edit arguments")
    args = p.parse_args(argv)
    if args.replot:
        rows = [row for path in args.replot for row in json.loads(path.read_text())]
        for row in rows:
            peak = max((t[3] for t in row.get("trace", [])), default=row["peak_rss_mb"])
            done = max((t[1] for t in row.get("trace", [])), default=row["frames"])
            print(f"{row['size']:>7} {row['mode']:>9} {row['frames']:4d} frames: peak RSS {peak:7.0f} MB, "
                  f"{row['seconds_per_frame']:.3f} s/frame [{row['status']}, {done} frames written]")
        if args.plot:
            plot(rows, args.plot)
        return 0
    extra = list(args.extra)
    if args.quick:
        args.sizes, args.frames, args.steps = ["96x128"], [4, 16], 5
        extra += ["--work-size", "64", "--pseudo-pairs", "1"]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="z2h-edit-scale-") as tmp:
        scratch = args.scratch or Path(tmp)
        for size in args.sizes:
            h, w = SIZES.get(size) or tuple(int(n) for n in size.split("x"))
            video = Synthetic(h, w, max(args.frames))
            src = scratch / f"{h}x{w}-{video.n}"  # frame t depends on the length
            mark = time.perf_counter()
            write_video_folder(src / "full", video)
            reference = src / "reference.png"
            from z2h.io import write_image

            write_image(reference, video.frame(0, edited=True))
            print(f"# {size}: {video.n} synthetic frames ready in {time.perf_counter() - mark:.0f} s",
                  file=sys.stderr, flush=True)
            for mode in ["stream"] + (["in-memory"] if args.in_memory else []):
                for n in sorted(args.frames):
                    folder = subset(src / "full", src / f"first{n}", n)
                    with tempfile.TemporaryDirectory(dir=scratch) as out:
                        row = {"size": size, "height": h, "width": w, **measure(
                            folder, reference, Path(out) / "out", n, args.steps, args.work_resolution, mode,
                            extra, args.timeout)}
                    rows.append(row)
                    if args.json:  # after every point: a long run that is stopped keeps what it measured
                        args.json.parent.mkdir(parents=True, exist_ok=True)
                        args.json.write_text(json.dumps(rows, indent=1) + "\n")
                    print(f"{size:>7} {mode:>9} {n:4d} frames: peak RSS {row['peak_rss_mb']:7.0f} MB, "
                          f"{row['seconds_per_frame']:.3f} s/frame (+{row['train_seconds']:.0f} s training),"
                          f" {row['seconds']:.0f} s total [{row['status']}]", flush=True)
    for size in args.sizes:  # the figure that matters: growth of peak memory with length
        pts = sorted((r["frames"], r["peak_rss_mb"]) for r in rows
                     if r["size"] == size and r["mode"] == "stream" and r["status"] == "ok")
        if len(pts) >= 2:
            (n0, m0), (n1, m1) = pts[0], pts[-1]
            print(f"{size}: peak RSS {m0:.0f} MB at {n0} frames -> {m1:.0f} MB at {n1} frames "
                  f"({(m1 - m0) / (n1 - n0):+.2f} MB per extra frame)")
    if args.plot:
        plot(rows, args.plot)
        print(f"plot: {args.plot}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
