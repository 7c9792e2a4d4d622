"""The eval cache serves a result only when nothing it depends on changed (eval/cache.py, eval/runner.py).

Each test changes one thing a score or an output depends on and checks that exactly the right work
is redone: a mask or a metric module re-scores without re-running methods, a method's code re-runs that
method only, and a method folder copied into another results folder stays cached.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cache_methods import CALLS
from eval_fixtures import make_bench

from z2h.eval import cache
from z2h.eval import methods as registry
from z2h.eval.runner import RunConfig, run
from z2h.io import read_image, read_mask, write_image


@pytest.fixture
def bench(tmp_path, monkeypatch):
    CALLS.clear()
    monkeypatch.setitem(registry.REGISTRY, "recording", "cache_methods:Recording")
    return make_bench(tmp_path / "bench")


def go(bench, out, methods=("recording",), **kw):
    return run(RunConfig(bench=bench, out=out, methods=list(methods), lpips=None, **kw))


def scores(out, method="recording", video="pan-right"):
    df = pd.read_csv(out / "metrics.csv")
    return df[(df["method"] == method) & (df["video"] == video)].set_index("frame")


def metrics_key(out, method="recording", video="pan-right"):
    return json.loads((out / method / video / ".metrics-default-none.json").read_text())["key"]


def test_changed_mask_rescores_with_the_correct_value_and_no_rerun(bench, tmp_path):
    out = tmp_path / "r"
    go(bench, out)
    before = scores(out).loc[3, "psnr_masked"]
    # The mask of frame 3 becomes a small square in a corner: the masked PSNR must follow it.
    mask = np.zeros((48, 64), np.uint8)
    mask[16:32, 8:40] = 255  # half on the edited disk, half off it
    write_image(bench / "pan-right" / "mask" / "0003.png", mask)
    go(bench, out)
    assert CALLS == ["call", "call"]  # the method's frames stay cached: it never saw the mask
    after = scores(out).loc[3, "psnr_masked"]
    pred = read_image(out / "recording" / "pan-right" / "0003.png").astype(float)
    edited = read_image(bench / "pan-right" / "edited" / "0003.png").astype(float)
    m = read_mask(bench / "pan-right" / "mask" / "0003.png")
    expected = 10 * np.log10(255**2 / ((pred - edited) ** 2)[m].mean())
    assert after == pytest.approx(expected, abs=1e-6) and after != pytest.approx(before, abs=1e-3)


@pytest.mark.parametrize("change", ["edited", "meta", "flow"])
def test_every_ground_truth_file_is_in_the_score_key(bench, tmp_path, change):
    out = tmp_path / "r"
    go(bench, out)
    key = metrics_key(out)
    video = bench / "pan-right"
    if change == "edited":
        write_image(video / "edited" / "0002.png", np.zeros((48, 64, 3), np.uint8))
    elif change == "meta":
        meta = json.loads((video / "meta.json").read_text())
        meta["per_frame"][2]["displacement_px"] = 40.0
        (video / "meta.json").write_text(json.dumps(meta))
    else:
        np.savez(video / "flow.npz", forward=np.zeros((4, 48, 64, 2), np.float16),
                 backward=np.zeros((4, 48, 64, 2), np.float16))
    go(bench, out)
    assert metrics_key(out) != key and CALLS == ["call", "call"]
    if change == "meta":
        assert scores(out).loc[2, "displacement_px"] == 40.0


def test_changed_original_frame_reruns_the_method(bench, tmp_path):
    out = tmp_path / "r"
    go(bench, out)
    write_image(bench / "pan-left" / "original" / "0004.png", np.zeros((48, 64, 3), np.uint8))
    go(bench, out)
    assert CALLS == ["call", "call", "call"]  # pan-left only


@pytest.mark.parametrize("module", ["temporal.py", "lpips_net.py", "metrics.py", "scoring.py"])
def test_changed_metric_module_rescores(bench, tmp_path, monkeypatch, module):
    out = tmp_path / "r"
    go(bench, out)
    key = metrics_key(out)
    stamp = (out / "recording" / "pan-right" / ".metrics-default-none.json").stat().st_mtime_ns
    real = cache.read_source
    monkeypatch.setattr(cache, "read_source",
                        lambda p: real(p) + (b"\n# changed\n" if Path(p).name == module else b""))
    go(bench, out)
    assert metrics_key(out) != key and CALLS == ["call", "call"]
    assert (out / "recording" / "pan-right" / ".metrics-default-none.json").stat().st_mtime_ns != stamp


def test_method_code_keys_only_that_method(monkeypatch):
    """A z2h change must not re-run the baselines, nor a baseline change z2h."""
    targets = {n: registry.REGISTRY[n] for n in ("z2h", "z2h-zero", "colormap", "flow-dis-chained")}
    before = {n: cache.method_code_hash(t) for n, t in targets.items()}
    real = cache.read_source

    def changed(name):
        monkeypatch.setattr(cache, "read_source",
                            lambda p: real(p) + (b"#\n" if Path(p).as_posix().endswith(name) else b""))
        return {n for n, t in targets.items() if cache.method_code_hash(t) != before[n]}

    assert changed("hero_stage/offline.py") == {"z2h"}
    assert changed("zero_stage/offline.py") == {"z2h", "z2h-zero"}
    assert changed("models/restorer.py") == {"z2h"}
    assert changed("baselines/flow.py") == {"flow-dis-chained"}
    assert changed("baselines/colormap.py") == {"colormap"}
    assert changed("z2h/progress.py") == set()  # progress reporting cannot change a result


def test_method_code_change_reruns_it(bench, tmp_path, monkeypatch):
    out = tmp_path / "r"
    go(bench, out)
    real = cache.read_source
    monkeypatch.setattr(cache, "read_source",
                        lambda p: real(p) + (b"#\n" if Path(p).name == "cache_methods.py" else b""))
    go(bench, out)
    assert CALLS == ["call"] * 4


def test_a_method_folder_copied_into_other_results_stays_cached(bench, tmp_path):
    """Several people's runs are combined by copying method folders; nothing is recomputed."""
    a, b = tmp_path / "a", tmp_path / "b"
    go(bench, a)
    go(bench, b, methods=["no-edit"])
    shutil.copytree(a / "recording", b / "recording")
    record = go(bench, b, methods=["recording", "no-edit"])
    assert CALLS == ["call", "call"]
    assert {v["status"] for v in record["methods"]["recording"]["videos"].values()} == {"cached"}
    copied = record["methods"]["recording"]["videos"]["pan-left"]
    assert copied["seconds"] >= 0 and "metrics_seconds" not in copied  # timing kept, not re-scored
    assert set(pd.read_csv(b / "metrics.csv")["method"]) == {"recording", "no-edit"}
    assert metrics_key(b) == metrics_key(a)


def test_code_hashes_import_nothing_heavy():
    """Keys are computed from source files; no method module (torch, diffusers, OpenCV) gets imported."""
    import subprocess
    import sys

    code = ("import sys; from z2h.eval import cache, methods\n"
            "[cache.method_code_hash(t) for t in methods.REGISTRY.values()]; cache.scoring_code_hash()\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'cv2', 'peft') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
