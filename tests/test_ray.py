"""`--ray` on a real local cluster (z2h.ray_tasks.LocalCluster: a head and a second worker node, each a
`ray start --block` process of this interpreter, stopped in teardown): results identical to local runs,
failed tasks retried once then recorded."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from bench_fixtures import tiny_spec  # noqa: E402

from z2h.io import read_frames  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BLENDER_PY = ROOT / ".venv-blender" / "bin" / "python"
needs_blender = pytest.mark.skipif(not BLENDER_PY.exists(), reason="no Blender-side env")



@pytest.fixture(scope="module")
def cluster():
    """ADDRESS of a real 2-node local cluster (1 CPU each), stopped in teardown (by its process ids)."""
    from z2h.ray_tasks import LocalCluster

    with LocalCluster(nodes=2, cpus=1) as address:
        yield address


def z2h(*args, check=True):
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "z2h", *map(str, args)], env=env, capture_output=True,
                       text=True, timeout=900)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def same_folder(a: Path, b: Path, skip: tuple[str, ...] = ()) -> None:
    """Same files; PNGs with the same pixels, other files byte for byte."""
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and not set(p.parts) & set(skip))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()
                           and not set(p.parts) & set(skip))
    for rel in files:
        if rel.suffix == ".png":
            np.testing.assert_array_equal(_png(a / rel), _png(b / rel), err_msg=str(rel))
        else:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im)


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("specs")
    for name, dx in (("left", -0.3), ("right", 0.3)):
        (folder / f"{name}.toml").write_text(tiny_spec(dx))
    return sorted(folder.glob("*.toml"))


@needs_blender
@pytest.mark.slow
def test_bench_build_on_ray_matches_the_local_build(cluster, specs, tmp_path):
    local, remote = tmp_path / "local", tmp_path / "ray"
    z2h("bench", "build", *specs, "--out", local, "--samples", "1", "--jobs", "2")
    r = z2h("bench", "build", *specs, "--out", remote, "--samples", "1", "--ray", cluster)
    assert "ray: 2 node(s)" in r.stderr and "built 2/2 videos" in r.stderr
    nodes = {line.rsplit("on node ", 1)[1] for line in r.stderr.splitlines() if "on node" in line}
    assert len(nodes) == 2  # one video per node: both nodes did work
    same_folder(local, remote, skip=(".logs", "manifest.json"))
    manifests = [json.loads((f / "manifest.json").read_text()) for f in (local, remote)]
    for m in manifests:
        m.pop("created")
    assert manifests[0] == manifests[1]
    # caching and resume as locally: a second --ray build with --resume renders nothing new
    before = (remote / "left" / "original" / "0000.png").stat().st_mtime_ns
    z2h("bench", "build", *specs, "--out", remote, "--samples", "1", "--ray", cluster, "--resume")
    assert (remote / "left" / "original" / "0000.png").stat().st_mtime_ns == before


def flaky(marker: str) -> str:
    """Fails on its first attempt (the marker file is created), succeeds on the second."""
    if not os.path.exists(marker):
        Path(marker).write_text("failed once")
        raise RuntimeError("first attempt fails")
    return "ok"


def dies(marker: str) -> str:
    """Its worker process dies on the first attempt."""
    if not os.path.exists(marker):
        Path(marker).write_text("died once")
        os._exit(3)
    return "survived"


def always_fails(message: str) -> str:
    raise ValueError(message)


def fine(text: str) -> int:
    return len(text)


def test_a_failed_task_is_retried_once_then_recorded_without_stopping_the_others(cluster, tmp_path):
    from ray import cloudpickle

    from z2h import ray_tasks

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    try:
        ray_tasks.init(cluster)
        tasks = [ray_tasks.Task("flaky", flaky, (str(tmp_path / "flaky"),)),
                 ray_tasks.Task("dies", dies, (str(tmp_path / "dies"),)),
                 ray_tasks.Task("bad", always_fails, ("broken input",)),
                 ray_tasks.Task("fine", fine, ("abc",))]
        done, failed = {}, {}
        ray_tasks.run_tasks(tasks, lambda t, r: done.update({t.key: r}),
                            lambda t, m: failed.update({t.key: m}))
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert done == {"flaky": "ok", "dies": "survived", "fine": 3}
    assert list(failed) == ["bad"]
    assert "ValueError: broken input" in failed["bad"] and "after 2 attempts" in failed["bad"]


@needs_blender
@pytest.mark.slow
def test_eval_on_ray_matches_the_local_run(cluster, specs, tmp_path):
    bench = tmp_path / "bench"
    z2h("bench", "build", *specs, "--out", bench, "--samples", "1", "--jobs", "2")
    args = ["--methods", "colormap,flow-dis-chained,z2h-zero", "--lpips", "none", "--progress", "none",
            "--set", "z2h-zero:work_size=64"]
    z2h("eval", "run", bench, "--out", tmp_path / "local", *args)
    r = z2h("eval", "run", bench, "--out", tmp_path / "ray", *args, "--ray", cluster)
    assert "6 tasks" in r.stderr
    local, remote = (tmp_path / d for d in ("local", "ray"))
    assert (local / "metrics.csv").read_text() == (remote / "metrics.csv").read_text()
    for method in ("colormap", "flow-dis-chained", "z2h-zero"):
        for video in ("left", "right"):
            np.testing.assert_array_equal(read_frames(local / method / video),
                                          read_frames(remote / method / video))
    record = json.loads((remote / "run.json").read_text())
    entries = [v for m in record["methods"].values() for v in m["videos"].values()]
    assert all(e["status"] == "done" and e["node"] for e in entries)
    # cached exactly as a local run: a second run computes nothing
    r = z2h("eval", "run", bench, "--out", remote, *args, "--ray", cluster)
    assert "0 tasks" in r.stderr
    statuses = {v["status"] for m in json.loads((remote / "run.json").read_text())["methods"].values()
                for v in m["videos"].values()}
    assert statuses == {"cached"}
