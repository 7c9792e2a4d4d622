"""Tables (md/latex/csv, best bold, notes, breakdowns), plots and the `z2h eval` command line."""

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from eval_fixtures import make_bench

from z2h.cli import main
from z2h.eval.report import summarize, table


def write_results(folder, rows, methods=None, protocol="default"):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)
    record = {"protocol": protocol, "lpips": "alex", "methods": methods or {}}
    (folder / "run.json").write_text(json.dumps(record))
    return folder


def rows_for(method, video, psnr, lpips, frames=3, anchor=0, width=100, step=5.0, psnr_m=None):
    """Rows with a constant value per video; the anchor row gets a wild value that must not count."""
    out = []
    for t in range(frames):
        a = t == anchor
        out.append({"method": method, "video": video, "frame": t, "anchor": a, "distance": abs(t - anchor),
                    "displacement_px": abs(t - anchor) * step, "width": width, "tags": "rotation;occlusion",
                    "psnr": 99.0 if a else psnr, "ssim": 0.5, "lpips": 0.0 if a else lpips,
                    "psnr_masked": np.nan if psnr_m is None else psnr_m, "ssim_masked": 0.4,
                    "lpips_masked": 0.3})
    return out


@pytest.fixture
def results(tmp_path):
    rows = (rows_for("a", "v1", 20.0, 0.30, psnr_m=15) + rows_for("a", "v2", 30.0, 0.10, psnr_m=25)
            + rows_for("b", "v1", 24.0, 0.25, psnr_m=16) + rows_for("b", "v2", 24.0, 0.05, psnr_m=17))
    methods = {"a": {"source": "OpenCV DIS preset MEDIUM", "videos": {"v1": {"status": "done"}}},
               "b": {"engine": "offline",
                     "videos": {"v3": {"status": "error", "error": "RuntimeError: boom"}}}}
    return write_results(tmp_path / "results", rows, methods)


def test_summary_means_per_video_then_over_videos_without_the_anchor(results):
    df = pd.read_csv(results / "metrics.csv")
    s = summarize(df)
    assert s.loc["a", ("psnr", "mean")] == pytest.approx(25.0)  # (20 + 30) / 2; anchor's 99 excluded
    assert s.loc["a", ("psnr", "std")] == pytest.approx(np.std([20, 30], ddof=1))
    assert s.loc["b", ("lpips", "mean")] == pytest.approx(0.15)
    anchor = summarize(df, anchor=True)
    assert anchor.loc["a", ("psnr", "mean")] == pytest.approx(99.0)


def test_markdown_table_bolds_the_best_per_column_with_arrows_and_notes(results):
    md = table(results, "md")
    header = md.splitlines()[0]
    assert "PSNR ↑" in header and "LPIPS ↓" in header and "SSIM-m ↑" in header
    row_a = next(line for line in md.splitlines() if line.startswith("| a |"))
    row_b = next(line for line in md.splitlines() if line.startswith("| b |"))
    assert "**25.00**" in row_a and "**0.1500**" not in row_a  # a best on PSNR (25 vs 24)
    assert "**0.1500**" in row_b and "**24.00**" not in row_b  # b best on LPIPS (0.15 vs 0.20)
    assert "**0.5000**" in row_a and "**0.5000**" in row_b  # ties are both bold
    assert "20.00" in row_a or "**20.00**" in row_a  # masked PSNR (15 + 25) / 2
    assert "Protocol default" in md and "Engine: b: offline" in md and "a: OpenCV DIS preset MEDIUM" in md
    assert "b FAILED on v3 (its means cover the other videos only): RuntimeError: boom" in md
    assert "Anchor frame" in md and "**99.00**" in md


def test_latex_and_csv_tables(results):
    tex = table(results, "latex", std=True)
    assert r"\textbf{25.00 $\pm$ 7.07}" in tex and r"PSNR $\uparrow$" in tex and r"\toprule" in tex
    assert r"\textbf{0.1500 $\pm$ 0.1414}" in tex
    text = table(results, "csv")
    df = pd.read_csv(io.StringIO(text), comment="#")
    assert list(df["method"]) == ["a", "b"]
    assert df.set_index("method").loc["a", "psnr"] == pytest.approx(25.0)
    best = dict(zip(df["method"], df["best"], strict=True))
    assert "psnr" in best["a"].split(";") and "lpips" not in best["a"].split(";")
    assert "lpips" in best["b"].split(";") and "psnr_masked" in best["a"].split(";")
    assert "# Protocol default: native resolution" in text


def test_breakdowns_by_motion_distance_tag_and_per_video(tmp_path):
    rows = []
    for method, slow, fast in (("a", 30.0, 10.0), ("b", 25.0, 15.0)):
        rows += rows_for(method, "slow", slow, 0.1, frames=4, step=1.0)
        rows += rows_for(method, "fast", fast, 0.5, frames=4, step=20.0)
    results = write_results(tmp_path / "r", rows)
    df = pd.read_csv(results / "metrics.csv")
    by_motion = summarize(df, by="motion")
    # slow: 1-3 px of 100 px -> small; fast: 20-60 px -> large
    assert by_motion.loc[("small", "a"), ("psnr", "mean")] == pytest.approx(30.0)
    assert by_motion.loc[("large", "b"), ("psnr", "mean")] == pytest.approx(15.0)
    md = table(results, "md", by="motion")
    small_a = next(line for line in md.splitlines() if line.startswith("| small | a |"))
    large_b = next(line for line in md.splitlines() if line.startswith("| large | b |"))
    assert "**30.00**" in small_a and "**15.00**" in large_b  # best within each bin
    assert "small < 3%" in md
    by_distance = summarize(df, by="distance")
    assert set(by_distance.index.get_level_values(0)) == {"1-2", "3-5"}
    by_tag = summarize(df, by="tag")
    assert by_tag.loc[("rotation", "a"), ("psnr", "mean")] == pytest.approx(20.0)
    per_video = table(results, "md", per_video=True)
    assert "| fast | b | **15.00**" in per_video and "| slow | a | **30.00**" in per_video


def test_run_table_plot_through_the_cli(tmp_path, capsys):
    bench = make_bench(tmp_path / "bench")
    out = tmp_path / "results"
    methods = "no-edit,colormap,flow-dis-chained,flow-dis-chained-fb"
    code = main(["eval", "run", str(bench), "--methods", methods, "--out", str(out), "--lpips", "none",
                 "--progress", "none"])
    assert code == 0
    assert main(["eval", "table", str(out), "--format", "md", "--out", str(out / "table.md")]) == 0
    md = (out / "table.md").read_text()
    assert "flow-dis-chained-fb" in md and "Ewarp" in md and "EPE" in md
    assert main(["eval", "plot", str(out), "--frames", "0,2,4"]) == 0
    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert pngs == ["psnr_masked_by_motion.png", "psnr_masked_vs_distance.png", "strip_pan-left.png",
                    "strip_pan-right.png"]
    from PIL import Image

    with Image.open(out / "plots" / "strip_pan-left.png") as im:
        assert im.size[1] > im.size[0] / 2  # 6 rows (original, truth, 4 methods) x 3 frames
    assert main(["eval", "plot", str(out), "--metric", "lpips"]) == 1
    assert "no values for 'lpips'" in capsys.readouterr().err
    assert main(["eval", "list"]) == 0
    listing = capsys.readouterr().out
    assert "flow-tvl1-chained-fb" in listing and "z2h-zero" in listing
    assert "needs `z2h weights fetch`" in listing and "needs the ebsynth binary" in listing
    assert main(["eval", "table", str(tmp_path / "nothing")]) == 1
    # a method option changes the settings, so the method runs again with them
    assert main(["eval", "run", str(bench), "--methods", "flow-dis-chained", "--out", str(out),
                 "--lpips", "none", "--progress", "none", "--set", "flow-dis-chained:preset=fast"]) == 0
    record = json.loads((out / "run.json").read_text())
    assert "preset FAST" in record["methods"]["flow-dis-chained"]["source"]
    assert record["methods"]["flow-dis-chained"]["videos"]["pan-left"]["status"] == "done"
    assert main(["eval", "run", str(bench), "--out", str(out), "--set", "oops"]) == 1
    assert "expected METHOD:KEY=VALUE" in capsys.readouterr().err


def test_eval_help_does_not_import_torch():
    code = ("import sys, contextlib, io\n"
            "from z2h.cli import main\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['eval', 'run', '--help'])\n"
            "print(sorted(m for m in ('torch', 'cv2', 'pandas', 'matplotlib') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_result_cut_short_by_a_time_budget_is_flagged(results):
    record = json.loads((results / "run.json").read_text())
    record["methods"]["b"]["videos"]["v1"] = {
        "status": "done", "stats": {"train": {"steps": 120, "steps_planned": 800, "budget_hit": True}}}
    (results / "run.json").write_text(json.dumps(record))
    md = table(results, "md")
    assert any(line.startswith("| b † |") for line in md.splitlines())
    assert any(line.startswith("| a |") for line in md.splitlines())
    assert "b†: a time budget cut its training short on v1" in md
    record["methods"]["b"]["videos"]["v1"]["stats"]["train"]["budget_hit"] = False
    (results / "run.json").write_text(json.dumps(record))
    assert "†" not in table(results, "md")


def test_timing_column_truth_row_and_method_order(tmp_path):
    """s/frame from run.json, the ground truth's own Ewarp as a reference row (never bold), chosen rows."""
    from z2h.eval.report import TRUTH, markdown_rows
    from z2h.eval.runner import RunConfig, run

    bench = make_bench(tmp_path / "bench")
    out = tmp_path / "r"
    run(RunConfig(bench=bench, out=out, methods=["no-edit", "flow-dis-chained", "colormap"], lpips=None))
    md = markdown_rows(out, methods=["flow-dis-chained", "no-edit"], timing=True)
    lines = md.splitlines()
    assert "s/frame ↓" in lines[0] and "Ewarp x1e3 ↓" in lines[0]
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| flow-dis-chained", "| no-edit", f"| {TRUTH}"]
    cells = dict(zip(lines[0].split(" | "), lines[-1].split(" | "), strict=True))
    df = pd.read_csv(out / "metrics.csv")
    gt = df[~df["anchor"]].groupby("video")["warp_error_gt"].mean().mean() * 1e3
    assert cells["Ewarp x1e3 ↓"] == f"{gt:.3f}" and cells["PSNR ↑"] == "–"
    record = json.loads((out / "run.json").read_text())
    secs = np.mean([v["seconds_per_frame"] for v in record["methods"]["no-edit"]["videos"].values()])
    no_edit = dict(zip(lines[0].split(" | "), lines[3].split(" | "), strict=True))
    assert no_edit["s/frame ↓ |"].strip(" |*") == f"{secs:.3f}"
    # the truth row (lowest Ewarp here: exact pans) is a reference, never the bold one
    assert "**" not in lines[-1]
    with pytest.raises(ValueError, match="no scores of nope"):
        markdown_rows(out, methods=["nope"])
    assert f"| {TRUTH} |" not in table(out, "md", truth_row=False) and f"| {TRUTH} |" in table(out, "md")


def test_a_method_on_fewer_videos_is_flagged(results):
    import pandas as pd

    from z2h.eval.report import notes

    df = pd.read_csv(results / "metrics.csv")
    one = df["method"].iloc[0]
    df = df[(df["method"] != one) | (df["video"] == df["video"].iloc[0])]
    lines = notes(df, {}, None)
    total = df["video"].nunique()
    assert f"{one}: scored on 1 of the {total} videos only; its means are not comparable." in lines
    assert not any("scored on" in line for line in notes(pd.read_csv(results / "metrics.csv"), {}, None))
