"""Ray for many videos: `z2h bench build --ray` (one task per video) and `z2h eval run --ray` (one task per
video x method), on an existing cluster or a local one.

The driver submits tasks and records their results; each task writes its outputs itself, atomically, into
the same --out layout as a local run (so every node must see --out and the benchmark at the same path: a
shared filesystem, docs/scale.md). A failed task (an exception, or its worker process dying) is retried
once, then recorded as failed; the other tasks go on. Tasks declare their resources: 1 CPU each, plus
``num_gpus=1`` for diffusion-engine methods.

Needs the optional extra ``z2h[ray]``; nothing here imports ray until a run asks for it.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("z2h")

LOCAL = "local"  # --ray without an address: start a local Ray in this process


@dataclass
class Task:
    """One unit of work: ``fn(*args)`` on some node (``fn`` importable there by module and name)."""

    key: str  # a label for logs and records, e.g. "camera_orbit" or "z2h:camera_orbit"
    fn: Callable[..., Any]
    args: tuple = ()
    num_cpus: float = 1
    num_gpus: float = 0
    meta: dict[str, Any] = field(default_factory=dict)


def init(address: str | None) -> dict[str, Any]:
    """Connect to the cluster at ``address`` ("auto", "HOST:PORT", "ray://...") or, for :data:`LOCAL`/None,
    start a local Ray. Returns the cluster's resources (for the run record)."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray needs Ray: pip install 'z2h[ray]'") from None
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if address in (None, LOCAL):
            kwargs["include_dashboard"] = False
        else:
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise RuntimeError(f"--ray {address}: cannot reach a Ray cluster there ({e})") from None
    resources = ray.cluster_resources()
    return {"address": address or LOCAL, "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
            "cpus": resources.get("CPU", 0), "gpus": resources.get("GPU", 0)}


def run_tasks(
    tasks: Iterable[Task],
    on_done: Callable[[Task, Any], None],
    on_failed: Callable[[Task, str], None],
    retries: int = 1,
) -> None:
    """Run every task on the cluster; ``on_done(task, result)`` or, after ``retries`` more attempts,
    ``on_failed(task, message)`` as each finishes (in completion order, in this thread)."""
    import ray

    remote: dict[Callable, Any] = {}
    pending: dict[Any, tuple[Task, int]] = {}

    def submit(task: Task, attempt: int) -> None:
        if task.fn not in remote:
            remote[task.fn] = ray.remote(task.fn)
        # max_retries=0: Ray's own retry would not be counted or logged; this loop retries every failure
        ref = remote[task.fn].options(num_cpus=task.num_cpus, num_gpus=task.num_gpus, max_retries=0,
                                      name=task.key).remote(*task.args)
        pending[ref] = (task, attempt)

    for task in tasks:
        submit(task, 1)
    try:
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            task, attempt = pending.pop(ref)
            try:
                result = ray.get(ref)
            except Exception as e:  # the task raised, or its worker/node died
                message = _short(e)
                if attempt <= retries:
                    log.warning("ray: %s failed (%s); retrying", task.key, message)
                    submit(task, attempt + 1)
                else:
                    on_failed(task, f"{message} (after {attempt} attempts)")
                continue
            on_done(task, result)
    finally:
        for ref in pending:  # interrupted: stop what is still running
            ray.cancel(ref, force=True)


def _short(exc: BaseException) -> str:
    """The original error of a Ray task failure, in one line."""
    cause = getattr(exc, "cause", None)
    text = f"{type(cause).__name__}: {cause}" if cause is not None else f"{type(exc).__name__}: {exc}"
    return text.strip().splitlines()[-1] if text.strip() else type(exc).__name__


def eval_on_ray(runner: Any) -> None:
    """`z2h eval run`'s produce phase on Ray: one task per method x video that is not cached (cached ones
    are recorded here as in a local run); each task also fills the metrics cache, so the driver's scoring
    that follows only reads it."""
    from z2h.progress import Cancelled

    cluster = init(runner.c.ray)
    tasks: list[Task] = []
    for name in runner.c.methods:
        try:
            method = runner.methods[name] = runner.build(name)
        except (Cancelled, KeyboardInterrupt):
            raise
        except Exception as e:  # recorded for every video, the others go on (as locally)
            runner._error(name, None, "build", e)
            continue
        gpus = 1 if "diffusion" in str(runner._entry(name).get("engine") or "") else 0
        for video in runner.videos.values():
            if runner.cached(name, video.name):
                runner.produce(name, method, video)  # records "cached", computes nothing
                continue
            key = runner.output_key(name, video.name)
            tasks.append(Task(f"{name}:{video.name}", produce_video, (runner.c, name, video.name, key),
                              num_gpus=gpus, meta={"method": name, "video": video.name}))
    runner.log(f"ray: {cluster['nodes']} node(s), {cluster['cpus']:g} CPUs; {len(tasks)} tasks "
               "(method x video)")

    def done(task: Task, entry: dict[str, Any]) -> None:
        runner._set(task.meta["method"], task.meta["video"], **entry)
        runner.save_record()

    def failed(task: Task, message: str) -> None:
        runner.log(f"{task.key} failed on Ray: {message}", logging.WARNING)
        runner._set(task.meta["method"], task.meta["video"], status="error", stage="run", error=message)
        runner.save_record()

    run_tasks(tasks, done, failed)


class LocalCluster:
    """A Ray cluster of ``nodes`` node processes on this machine (``cpus`` each), for tests and perf/.

    Each node is one ``ray start --block`` with this interpreter (so workers import this z2h), in its own
    session: stopping it (SIGTERM, then SIGKILL to its process group) ends exactly what it started.
    ``with LocalCluster(2) as address: ...``; this process stays connected as a driver inside the block.
    """

    def __init__(self, nodes: int = 2, cpus: int = 1, timeout: float = 120):
        self.nodes, self.cpus, self.timeout = nodes, cpus, timeout
        self.procs: list[subprocess.Popen] = []
        self.tmp = ""
        self._auth: str | None = None

    def __enter__(self) -> str:
        import builtins
        import os
        import socket
        import sys
        import tempfile

        self._print = builtins.print  # ray.init swaps in its tqdm-safe print; __exit__ puts ours back

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.tmp = tempfile.mkdtemp(prefix="z2hray", dir="/tmp")  # Ray's socket paths must be short
        # A throwaway cluster on this machine: no token auth. Left unset, Ray turns it on whenever a
        # ~/.ray/auth_token exists (any earlier local ray.init writes one), and this driver, not given
        # the token, then cannot connect. Set here so the drivers this process starts inherit it too.
        self._auth = os.environ.get("RAY_AUTH_MODE")
        os.environ["RAY_AUTH_MODE"] = "disabled"
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        ray_cli = [sys.executable, "-c",
                   "import sys; from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()"]
        common = [f"--num-cpus={self.cpus}", "--block", "--disable-usage-stats"]
        self.address = f"127.0.0.1:{port}"
        try:
            for n in range(self.nodes):
                first = ["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={self.tmp}"]
                args = first if n == 0 else [f"--address={self.address}"]
                self.procs.append(subprocess.Popen([*ray_cli, "start", *args, *common], env=env,
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                   start_new_session=True))
                self._wait(n + 1)
        except BaseException:
            self.__exit__()
            raise
        return self.address

    def _wait(self, n: int) -> None:
        import ray

        deadline = time.time() + self.timeout
        while time.time() < deadline:
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError("ray start exited early")
            try:
                if not ray.is_initialized():
                    ray.init(address=self.address, logging_level=logging.ERROR, log_to_driver=False)
                if sum(1 for node in ray.nodes() if node["Alive"]) >= n:
                    return
            except ConnectionError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the local Ray cluster at {self.address} did not reach {n} nodes")

    def __exit__(self, *exc: Any) -> None:
        import builtins
        import os
        import shutil
        import signal

        import ray

        ray.shutdown()
        builtins.print = self._print  # ray.shutdown leaves its print in place for the rest of the process
        for proc in reversed(self.procs):  # worker nodes first, then the head
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: only what it started
        self.procs.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if self._auth is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = self._auth


# -- tasks --------------------------------------------------------------------------------------------
def render_video(cmd: list[str], logfile: str) -> dict[str, Any]:
    """Run the Blender-side benchmark worker (benchmark/worker.py) as a subprocess on this node; its
    output goes to ``logfile`` (on the shared --out). Raises when the worker fails, so it is retried."""
    from z2h.benchmark.worker import parse_event

    start = time.perf_counter()
    events: list[dict[str, Any]] = []
    with open(logfile, "a") as f:
        f.write(" ".join(cmd) + "\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            event = parse_event(line)
            if event is None:
                f.write(line)
            else:
                events.append(event)
        code = proc.wait()
    errors = [e["message"] for e in events if e.get("event") == "error"]
    if code != 0:
        raise RuntimeError(f"worker exited with code {code}: {errors[-1] if errors else 'see ' + logfile}")
    return {"seconds": round(time.perf_counter() - start, 2), "node": _node()}


def produce_video(config: Any, method: str, video: str, key: str) -> dict[str, Any]:
    """`z2h eval run`'s work for one method x video on this node: run the method (or find it cached),
    write its frames and .output.json atomically, score it (the metrics cache). Returns the video's
    record entry. ``key`` is the driver's output key: a node with other code or versions refuses."""
    from z2h.eval.runner import Runner

    runner = Runner(config)
    runner.load_videos([video])
    built = runner.methods[method] = runner.build(method)  # scoring looks methods up (flow EPE)
    mine = runner.output_key(method, video)
    if mine != key:
        raise RuntimeError(f"{method} on {video}: this node's cache key {mine} differs from the driver's "
                           f"{key} (other z2h code, settings or package versions on this node)")
    runner.produce(method, built, runner.videos[video])
    runner.score(method, runner.videos[video])
    return {**runner.record["methods"][method]["videos"][video], "node": _node()}


def _node() -> str:
    """This task's Ray node (an id prefix: two nodes on one host have one hostname)."""
    import ray

    return ray.get_runtime_context().get_node_id()[:8]

