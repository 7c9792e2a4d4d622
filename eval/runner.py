"""`z2h eval run`: run methods on a benchmark, cache their frames, score them, keep a run record.

Layout of RESULTS::

    RESULTS/<method>/<video>/NNNN.png       the method's frames
    RESULTS/<method>/<video>/.output.json   output key, timing, the method's run statistics
    RESULTS/<method>/<video>/.metrics-<protocol>-<lpips>.json   score key and per-frame scores
    RESULTS/metrics.csv                     one row per method x video x frame
    RESULTS/run.json                        versions, settings, engines, timings, errors

Work runs in two phases: produce (methods; ``jobs`` methods at a time in threads, each method instance
used by one thread only) and score (metrics, sequential). A crash in one method x video is recorded and
never stops the others; cached results survive any crash because each is written atomically when done.
Cache keys (eval/cache.py) cover everything a result depends on and nothing about the results folder,
so a method's folder copied into another results folder of the same benchmark stays cached.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from z2h import versions
from z2h.benchmark.validate import check_name, inside, name_problem
from z2h.eval import cache
from z2h.eval.data import Video, load_video, select_videos
from z2h.eval.methods import NOT_IN_GROUPS, REGISTRY, check_output, get_method
from z2h.io import write_json
from z2h.outlock import LOCK_NAME, locked
from z2h.progress import Cancelled, Reporter

log = logging.getLogger("z2h.eval")
Z2H_METHODS = ("z2h-zero", "z2h")
METRIC_COLUMNS = ("psnr", "ssim", "lpips", "psnr_masked", "ssim_masked", "lpips_masked")


@dataclass
class RunConfig:
    bench: Path
    out: Path
    methods: list[str]
    videos: list[str] | None = None
    jobs: int = 1
    protocol: str = "default"
    lpips: str | None = "alex"  # None: no LPIPS (NaN columns)
    batch_size: int = 8
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    ray: str | None = None  # run on Ray: "local" or a cluster address (z2h/ray_tasks.py)


def baseline_names(include_raft: bool = False, include_ebsynth: bool = False) -> list[str]:
    """Registered baselines (eval/baselines); RAFT and EbSynth only when asked (their weights or binary
    are found: see :func:`peers_available`)."""
    names = [n for n, target in REGISTRY.items()
             if target.startswith("z2h.eval.baselines.") and n not in NOT_IN_GROUPS]
    return [n for n in names if (include_raft or not n.startswith("flow-raft"))
            and (include_ebsynth or not n.startswith("ebsynth"))]


def peers_available(ebsynth_bin: str | None = None) -> dict[str, str | None]:
    """Why each optional peer cannot run (None: it can): RAFT needs fetched weights, EbSynth its binary."""
    from z2h import raft_weights
    from z2h.eval.baselines.ebsynth import HOW_TO_BUILD, find_binary

    why: dict[str, str | None] = {"raft": None, "ebsynth": None}
    if not raft_weights.is_fetched():
        why["raft"] = "RAFT weights not fetched: run `z2h weights fetch`"
    try:
        if find_binary(ebsynth_bin) is None:
            why["ebsynth"] = f"ebsynth binary not found: {HOW_TO_BUILD}"
    except FileNotFoundError as e:
        why["ebsynth"] = str(e)
    return why


def resolve_methods(spec: str, include_raft: bool = False, include_ebsynth: bool = False) -> list[str]:
    """``a,b,...``; the groups ``baselines`` and ``default`` (baselines + z2h-zero + z2h) expand."""
    names: list[str] = []
    for item in (s.strip() for s in spec.split(",")):
        if item == "baselines":
            names += baseline_names(include_raft, include_ebsynth)
        elif item == "default":
            names += baseline_names(include_raft, include_ebsynth) + list(Z2H_METHODS)
        elif item in REGISTRY:
            names.append(item)
        elif item:
            raise ValueError(f"unknown method {item!r}; registered: {', '.join(sorted(REGISTRY))}, "
                             "or the groups 'baselines' and 'default'")
    return list(dict.fromkeys(names))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


class Runner:
    """One `z2h eval run`; :meth:`run` returns the run record (also written to RESULTS/run.json)."""

    def __init__(self, config: RunConfig, reporter: Reporter | None = None):
        self.c = config
        self.reporter = reporter or Reporter("none")
        self.out = Path(config.out)
        self.record: dict[str, Any] = {"methods": {}}
        self.videos: dict[str, Video] = {}
        self.input_hash: dict[str, str] = {}  # what a method sees
        self.truth_hash: dict[str, str] = {}  # every file of the video (what scores depend on)
        self.versions = versions()
        self._scoring_code: str | None = None
        self.methods: dict[str, Any] = {}
        self._temporal: dict[str, dict[str, np.ndarray]] = {}
        self._epe: dict[tuple[str, str], np.ndarray] = {}

    def check_out(self) -> None:
        """Refuse an --out that is a file, a benchmark's own folder or holds something else than results."""
        if self.out.exists() and not self.out.is_dir():
            raise FileExistsError(f"--out {self.out} exists and is not a folder")
        bench, out = Path(self.c.bench).resolve(), self.out.resolve()
        if out == bench or bench in out.parents or out in bench.parents:
            raise ValueError(f"--out {self.out} and the benchmark {self.c.bench} overlap: results would "
                             "be written into the benchmark (or the benchmark into the results)")
        if self.out.is_dir() and any(p.name != LOCK_NAME for p in self.out.iterdir()) \
                and not (self.out / "run.json").exists():
            raise FileExistsError(f"{self.out} is not empty and holds no run.json: pass a new or empty "
                                  "folder, or an earlier results folder")

    def read_record(self) -> None:
        """The earlier run's record; a corrupt one stops the run (replacing it would drop its methods)."""
        path = self.out / "run.json"
        if not path.exists():
            return
        hint = "repair or remove it (the cached frames stay valid), or pass another --out"
        try:
            record = json.loads(path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: corrupt run record ({e}); {hint}") from None
        methods = record.get("methods") if isinstance(record, dict) else None
        if (not isinstance(record, dict) or record.get("format") != "z2h-eval-run"
                or not isinstance(record.get("bench"), str) or not isinstance(methods, dict)
                or not all(isinstance(e, dict) and isinstance(e.get("videos", {}), dict)
                           for e in methods.values())):
            raise ValueError(f"{path}: not a z2h eval run record (format, bench or methods missing or of "
                             f"the wrong type); {hint}")
        for name, entry in methods.items():  # names become paths under --out
            for part in (name, *entry.get("videos", {})):
                if name_problem(part):
                    raise ValueError(f"{path}: {name_problem(part)}; {hint}")
        bench = str(Path(self.c.bench).resolve())
        if record["bench"] != bench:  # scores of two benchmarks must never mix
            raise ValueError(f"{self.out} holds results of {record['bench']}, not {bench}: "
                             "pass another --out")
        self.record = record

    def log(self, message: str, level: int = logging.INFO) -> None:
        log.log(level, "z2h eval: %s", message)

    # -- bookkeeping -------------------------------------------------------------------------------
    def _entry(self, method: str) -> dict[str, Any]:
        return self.record["methods"].setdefault(method, {"videos": {}})

    def _set(self, method: str, video: str, **fields: Any) -> None:
        """Update a method x video record; a new status starts it afresh (no stale error or timing)."""
        videos = self._entry(method)["videos"]
        if "status" in fields or video not in videos:
            videos[video] = {}
        videos[video].update(fields)

    def _error(self, method: str, video: str | None, stage: str, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}"
        self.log(f"{method}" + (f" on {video}" if video else "") + f" failed during {stage}: {message}",
                 logging.WARNING)
        err = {"status": "error", "stage": stage, "error": message, "traceback": traceback.format_exc()}
        for v in [video] if video else self.videos:
            self._set(method, v, **err)

    def save_record(self) -> None:
        self.record.update(
            format="z2h-eval-run", version=1, bench=str(Path(self.c.bench).resolve()),
            protocol=self.c.protocol, lpips=self.c.lpips, versions=versions(),
            updated=datetime.now(UTC).isoformat(timespec="seconds"))
        self.record.setdefault("created", self.record["updated"])
        write_json(self.out / "run.json", self.record)

    # -- loading -----------------------------------------------------------------------------------
    def load_videos(self, names: list[str]) -> None:
        for name in names:
            video = load_video(self.c.bench, name)  # bad input stops the run: scores would be incomplete
            self.videos[name] = video
            self.input_hash[name] = cache.method_input_hash(video.original, video.reference, video.anchor)
            self.truth_hash[name] = cache.folder_hash(inside(self.c.bench, name))

    def build(self, name: str) -> Any:
        method = get_method(name, **self.c.method_options.get(name, {}))
        settings = method.settings()
        code = cache.method_code_hash(REGISTRY[name])
        self._entry(name).update(settings=settings, settings_hash=cache.digest(name, settings),
                                 code_hash=code, engine=settings.get("engine"), source=settings.get("source"))
        return method

    # -- phase 1: produce --------------------------------------------------------------------------
    def folder(self, method: str, video: str) -> Path:
        """RESULTS/<method>/<video>, refused unless both are plain names and it stays inside --out."""
        check_name(method, "method name")
        check_name(video, "video name")
        return inside(self.out, method, video)

    def output_key(self, method: str, video: str) -> str:
        """The method's name, settings and code, the recorded package versions and the method's inputs."""
        entry = self._entry(method)
        return cache.digest(entry["settings_hash"], entry["code_hash"], self.versions, self.input_hash[video])

    def cached(self, method: str, video: str) -> bool:
        folder = self.folder(method, video)
        info = _read_json(folder / ".output.json") or {}
        frames = self.videos[video].frames
        return info.get("key") == self.output_key(method, video) and all(
            (folder / f"{i:04d}.png").is_file() for i in range(frames))

    def produce(self, name: str, method: Any, video: Video) -> None:
        from z2h.io import write_frames

        if self.cached(name, video.name):
            self.log(f"{name} on {video.name}: cached", logging.DEBUG)
            info = _read_json(self.folder(name, video.name) / ".output.json") or {}
            self._set(name, video.name, status="cached", **_timing(info.get("seconds"), video.frames),
                      **({"stats": info["stats"]} if info.get("stats") else {}))
            return
        start = time.perf_counter()
        progress = self.reporter.stage(f"{name}:{video.name}")
        output = np.asarray(method(video.original.copy(), video.anchor, video.reference.copy(), progress))
        seconds = time.perf_counter() - start
        stats = getattr(method, "last_stats", None)  # e.g. z2h's Hero-Stage training statistics
        if output.ndim != 4 or len(output) != video.frames:
            raise ValueError(f"method {name!r} returned {len(output) if output.ndim else 0} frames for video "
                             f"{video.name!r}, expected {video.frames}")
        try:
            output = check_output(name, video.original, output)
        except ValueError as e:
            raise ValueError(f"video {video.name!r}: {e}") from None
        folder = self.folder(name, video.name)
        (folder / ".output.json").unlink(missing_ok=True)  # invalid until every frame is written
        for stale in folder.glob("*.png"):
            stale.unlink()
        write_frames(folder, output)
        info = {"key": self.output_key(name, video.name), "frames": video.frames, "seconds": seconds}
        if stats:
            info["stats"] = stats
        write_json(folder / ".output.json", info)
        self._set(name, video.name, status="done", **_timing(seconds, video.frames),
                  **({"stats": stats} if stats else {}))

    def produce_all(self, name: str) -> None:
        try:
            method = self.methods[name] = self.build(name)
        except (Cancelled, KeyboardInterrupt):
            raise
        except Exception as e:  # e.g. z2h not installed, missing weights: recorded, the others go on
            self._error(name, None, "build", e)
            return
        for video in self.videos.values():
            try:
                self.produce(name, method, video)
            except (Cancelled, KeyboardInterrupt):
                raise
            except Exception as e:
                self._error(name, video.name, "run", e)

    # -- phase 2: score ----------------------------------------------------------------------------
    def truth_temporal(self, video: Video) -> dict[str, np.ndarray]:
        """Visibility masks and the ground truth's own warping error (once per video)."""
        from z2h.eval.scoring import truth_temporal

        if video.name not in self._temporal:
            self._temporal[video.name] = truth_temporal(video)
        return self._temporal[video.name]

    def epe(self, method: Any, video: Video) -> np.ndarray | None:
        """End-point error of a flow baseline's estimator on consecutive pairs (once per estimator)."""
        from z2h.eval.scoring import estimator_epe

        estimator = getattr(method, "estimator", None)
        if estimator is None or video.flow is None:
            return None
        key = (estimator.key, video.name)
        if key not in self._epe:
            self._epe[key] = estimator_epe(estimator, video, self.truth_temporal(video)["visible"])
        return self._epe[key]

    @property
    def metrics_file(self) -> str:
        return f".metrics-{self.c.protocol}-{self.c.lpips or 'none'}.json"

    def score_key(self, name: str, video: str) -> str:
        """Output key, the frames in the folder, every file of the video, the scoring code, the protocol."""
        if self._scoring_code is None:
            self._scoring_code = cache.scoring_code_hash()
        frames = cache.folder_hash(self.folder(name, video), "*.png")
        return cache.digest(self.output_key(name, video), frames, self.truth_hash[video], self._scoring_code,
                            self.versions, self.c.protocol, self.c.lpips)

    def score(self, name: str, video: Video) -> list[dict[str, Any]]:
        from z2h.eval.scoring import score_rows
        from z2h.io import read_frames

        folder = self.folder(name, video.name)
        cache_path = folder / self.metrics_file
        key = self.score_key(name, video.name)
        cached = _read_json(cache_path)
        if cached and cached.get("key") == key:
            return cached["rows"]
        start = time.perf_counter()
        pred = read_frames(folder)
        if len(pred) != video.frames:
            raise ValueError(f"{folder} holds {len(pred)} frames, video {video.name!r} has {video.frames}")
        temporal = self.truth_temporal(video)
        epe = self.epe(self.methods[name], video) if temporal and name in self.methods else None
        rows = score_rows(name, video, pred, protocol=self.c.protocol, lpips=self.c.lpips,
                          batch_size=self.c.batch_size, temporal=temporal, epe=epe)
        write_json(cache_path, {"key": key, "rows": rows})
        self._set(name, video.name, metrics_seconds=round(time.perf_counter() - start, 3))
        return rows

    def write_metrics(self) -> Path:
        """RESULTS/metrics.csv from every scored method x video of this protocol (earlier runs included)."""
        import pandas as pd

        from z2h.io import atomic_write_bytes

        rows = []
        for name, entry in sorted(self.record["methods"].items()):
            for video in sorted(entry.get("videos", {})):
                path = self.folder(name, video) / self.metrics_file
                cached = _read_json(path)
                if cached and entry["videos"][video].get("status") != "error":
                    rows += cached["rows"]
        df = pd.DataFrame(rows)
        path = self.out / "metrics.csv"
        atomic_write_bytes(path, df.to_csv(index=False).encode())
        return path

    # -- all ---------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.check_out()
        names = select_videos(self.c.bench, self.c.videos)  # a typo fails before --out is created
        self.out.mkdir(parents=True, exist_ok=True)
        with locked(self.out):
            self.read_record()
            self.load_videos(names)
            self.log(f"{len(self.c.methods)} methods x {len(self.videos)} videos -> {self.out}")
            try:
                self.produce_and_score()
            finally:
                self.save_record()
                self.write_metrics()
        return self.record

    def produce_and_score(self) -> None:
        if self.c.ray is not None:  # one Ray task per method x video (z2h/ray_tasks.py)
            from z2h.ray_tasks import eval_on_ray

            eval_on_ray(self)
        elif self.c.jobs > 1:
            with ThreadPoolExecutor(self.c.jobs) as pool:
                list(pool.map(self.produce_all, self.c.methods))
        else:
            for name in self.c.methods:
                self.produce_all(name)
                self.save_record()
        scoring = self.reporter.stage("score")
        todo = [(n, v) for n in self.c.methods for v in self.videos
                if self._entry(n)["videos"].get(v, {}).get("status") in ("done", "cached")]
        for i, (name, video) in enumerate(todo, 1):
            try:
                self.score(name, self.videos[video])
            except (Cancelled, KeyboardInterrupt):
                raise
            except Exception as e:
                self._error(name, video, "score", e)
            scoring(i, len(todo))


def _timing(seconds: float | None, frames: int) -> dict[str, float]:
    """Run time of a method on a video (kept in .output.json, so a cached result still has it)."""
    if seconds is None:
        return {}
    return {"seconds": round(seconds, 3), "seconds_per_frame": round(seconds / frames, 4)}


def run(config: RunConfig, reporter: Reporter | None = None) -> dict[str, Any]:
    """Run, score and record; see :class:`Runner`."""
    return Runner(config, reporter).run()
