"""Every perf/ script runs in its --quick mode and writes its Markdown table (so none of them rots).

The numbers of a quick run mean nothing; this checks that each script still runs against the current
code, times both of its sides and writes the table `z2h report perf` puts into docs/.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_random_vgg_cache

from z2h import weights

ROOT = Path(__file__).resolve().parent.parent
ALL = sorted(p.name for p in (ROOT / "perf").glob("*.py") if p.name != "timing.py")
# Scripts with a quick mode run by their own test file, and what it is called there.
ELSEWHERE = {"edit_scale.py": "test_edit_scale.py", "gpu_smoke.py": "test_gpu_smoke.py"}
# No quick mode yet, each for a reason: ray_speedup starts a real Ray cluster on a benchmark folder;
# lift_quality scores existing eval results at two resolutions (an analysis, it times nothing).
NO_QUICK = {"ray_speedup.py", "lift_quality.py"}
SCRIPTS = [s for s in ALL if s not in ELSEWHERE and s not in NO_QUICK]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Random VGG16 weights for the Zero-Stage; LPIPS uses the fetched weights when there are some."""
    cache = tmp_path_factory.mktemp("cache")
    write_random_vgg_cache(cache)
    return {**os.environ, "Z2H_CACHE": str(cache), "OMP_NUM_THREADS": "1"}


def test_every_perf_script_is_covered():
    """A new perf script runs below in its --quick mode, or names the test that runs it quickly (ELSEWHERE),
    or says why it has no quick mode (NO_QUICK)."""
    assert SCRIPTS == ["attention_speed.py", "edit_speed.py", "hero_steps.py", "lora_routing_speed.py",
                       "metrics_speed.py", "v2_speed.py", "zero_speed.py"]
    for script, test in ELSEWHERE.items():
        assert script in (ROOT / "tests" / test).read_text()
    assert set(ALL) == set(SCRIPTS) | set(ELSEWHERE) | NO_QUICK


# How each script's table shows its reference side (the alternative it is timed against); hero_steps.py
# is a sweep of our own setting against the Zero-Stage alone.
REFERENCE = {"attention_speed.py": "dense s", "metrics_speed.py": "reference ms/frame",
             "zero_speed.py": "(reference)", "edit_speed.py": "(reference)",
             "hero_steps.py": "Zero-Stage only", "lora_routing_speed.py": "masked adapters",
             "v2_speed.py": "(reference)"}


@pytest.mark.parametrize("script", SCRIPTS)
def test_perf_script_quick_mode(script, env, tmp_path):
    md = tmp_path / "out.md"
    extra = []
    if script == "metrics_speed.py":  # LPIPS needs the real AlexNet weights, not the random VGG cache
        env = {k: v for k, v in env.items() if k != "Z2H_CACHE"} | (
            {"Z2H_CACHE": os.environ["Z2H_CACHE"]} if "Z2H_CACHE" in os.environ else {})
        extra = [] if weights.is_fetched() else ["--no-lpips"]
    r = subprocess.run([sys.executable, str(ROOT / "perf" / script), "--quick", "--md", str(md), *extra],
                       env=env, cwd=ROOT, text=True, capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    text = md.read_text()
    lines = text.splitlines()
    assert lines[0].startswith("# ") and ("median (min–max)" in text or script == "hero_steps.py")
    table = [line for line in lines if line.startswith("|")]
    assert len(table) >= 4  # header, rule, our side and the reference side
    assert REFERENCE[script] in text
