"""perf/edit_scale.py --quick: the memory/speed script runs end to end and peak memory stays flat."""

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import write_random_vgg_cache

ROOT = Path(__file__).resolve().parents[1]


def test_edit_scale_quick(tmp_path):
    write_random_vgg_cache(tmp_path / "cache")
    env = {**os.environ, "Z2H_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "perf" / "edit_scale.py"), "--quick", "--json",
                        str(tmp_path / "rows.json"), "--plot", str(tmp_path / "plot.png")],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert [row["frames"] for row in rows] == [4, 16] and all(row["status"] == "ok" for row in rows)
    assert all(row["peak_rss_mb"] > 100 and row["seconds_per_frame"] > 0 for row in rows)
    # 4x the frames, (nearly) the same peak memory: nothing per frame is kept
    assert rows[1]["peak_rss_mb"] < rows[0]["peak_rss_mb"] + 25
    assert "MB per extra frame" in r.stdout and (tmp_path / "plot.png").stat().st_size > 1000
