"""`z2h report`: results blocks in the docs are rewritten from result folders and checked with a tolerance."""

import pytest
from eval_fixtures import make_bench

from z2h.cli import main
from z2h.eval.docs import BLOCKS, numbers_match, read_block, write_block
from z2h.eval.runner import RunConfig, run

DOC = """# Title

Prose stays.

<!-- results:demo -->
| stale | table |
<!-- /results:demo -->

<!-- results:demo-videos -->
<!-- /results:demo-videos -->

More prose.
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    bench = make_bench(root / "bench")
    out = root / "results"
    run(RunConfig(bench=bench, out=out, methods=["no-edit", "colormap", "flow-dis-chained"], lpips=None))
    return out


def test_blocks_are_replaced_between_their_markers_only():
    text = write_block(DOC, "demo", "| new |\n", "README.md")
    assert read_block(text, "demo", "README.md") == "| new |"
    assert text.startswith("# Title\n\nProse stays.") and text.endswith("More prose.\n")
    assert read_block(text, "demo-videos", "README.md") == ""
    with pytest.raises(ValueError, match="README.md has no block <!-- results:bce -->"):
        write_block(DOC, "bce", "x", "README.md")


def test_numbers_match_within_the_stated_tolerance():
    old = "| Method | PSNR ↑ | s/frame ↓ |\n|---|---|---|\n| z2h | **21.02** | 3.1 |"
    assert numbers_match(old, old.replace("**21.02**", "21.03").replace("3.1", "9.9")) == []
    assert numbers_match(old, old.replace("21.02", "21.21")) == ["z2h: 21.02 in the docs, 21.21 regenerated"]
    assert numbers_match(old, old.replace("z2h", "z2h-zero")) == [
        "row 'z2h' is in the docs, not regenerated", "row 'z2h-zero' is regenerated, not in the docs"]
    assert numbers_match(old, old + "\n| extra | 1 | 2 |") == ["row 'extra' is regenerated, not in the docs"]
    # rows that need a binary or weights (EbSynth, RAFT) may be missing on a bare machine
    assert numbers_match(old + "\n| ebsynth | 20.00 | 4 |", old) == []
    raft = old + "\n| flow-raft-direct | 20.00 | 4 |"
    assert numbers_match(raft, raft.replace("20.00", "21.00")) == [
        "flow-raft-direct: 20.00 in the docs, 21.00 regenerated"]
    # EbSynth's CPU build is not deterministic (OpenMP threads share rand()): its row must be there, its
    # numbers are not compared
    assert numbers_match(old + "\n| ebsynth | 20.00 | 4 |", old + "\n| ebsynth | 21.00 | 4 |") == []


def test_report_rewrites_the_docs_and_check_catches_drift(results, tmp_path, capsys):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "README.md").write_text(DOC)
    args = ["report", "demo", "--demo", str(results), "--root", str(root)]
    assert main(["report", "demo", "--check", "--demo", str(results), "--root", str(root)]) == 1
    assert main(args) == 0
    text = (root / "README.md").read_text()
    table = read_block(text, "demo", "README.md")
    lines = table.splitlines()
    assert lines[0].startswith("| Method | PSNR ↑") and [x.split(" |")[0] for x in lines[2:]] == [
        "| no-edit", "| colormap", "| flow-dis-chained", "| ground truth"]
    videos = read_block(text, "demo-videos", "README.md").splitlines()
    assert videos[0] == "| video | colormap | flow-dis-chained |" and len(videos) == 4
    assert "Prose stays." in text and "More prose." in text
    capsys.readouterr()
    assert main(["report", "demo", "--check", "--demo", str(results), "--root", str(root)]) == 0
    # a number edited by hand (or a code change that moved it) fails the check, naming the row
    row = lines[3].split(" | ")
    row[1] = f"{float(row[1].strip('*')) + 1:.2f}"
    (root / "README.md").write_text(text.replace(lines[3], " | ".join(row)))
    assert main(["report", "demo", "--check", "--demo", str(results), "--root", str(root)]) == 1
    assert "[demo] colormap:" in capsys.readouterr().err


def test_missing_inputs_and_unknown_parts_are_clear(results, tmp_path, capsys):
    root = tmp_path / "repo"
    root.mkdir()
    (root / "README.md").write_text(DOC)
    assert main(["report", "nope", "--root", str(root)]) == 2
    assert "unknown part nope" in capsys.readouterr().err
    assert main(["report", "demo", "--demo", str(tmp_path / "none"), "--root", str(root)]) == 1
    assert "run `z2h eval run" in capsys.readouterr().err
    assert (root / "README.md").read_text() == DOC  # nothing half-written


def test_every_block_has_its_markers_in_the_repository():
    from z2h.eval.docs import ROOT

    for name, block in BLOCKS.items():
        read_block((ROOT / block.doc).read_text(), name, block.doc)


def test_make_targets_exist():
    from z2h.eval.docs import PARTS, ROOT

    make = (ROOT / "Makefile").read_text()
    for part in PARTS:
        assert f"results-{part}:" in make
    assert "results:" in make and "check-demo:" in make
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("make test") < ci.index("make check-demo")  # CI runs the demo check after the tests


def test_make_results_bce_names_registered_methods():
    """The full-benchmark run names methods that exist (a typo would only show after an hour of work)."""
    import re
    import subprocess

    from z2h.eval.docs import ROOT
    from z2h.eval.methods import REGISTRY

    r = subprocess.run(["make", "-n", "results-bce"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    if r.returncode != 0 and "make: not found" in r.stderr:
        pytest.skip("no make")
    methods = re.search(r"eval run \S+ --methods (\S+)", r.stdout).group(1).split(",")
    assert {"z2h", "z2h-zero", "colormap", "no-edit", "flow-raft-direct", "ebsynth"} <= set(methods)
    assert set(methods) <= set(REGISTRY)


def test_differences_and_motion_pivot_are_computed_from_the_results(tmp_path):
    import json

    import pandas as pd

    from z2h.eval.docs import differences, pivot

    rows = []
    scores = (("z2h", 30.0), ("z2h-zero", 25.0), ("flow-dis-direct", 27.0), ("flow-dis-chained", 20.0))
    for method, psnr_m in scores:
        for video, shift in (("a", 1.0), ("b", 20.0)):
            for t in range(3):
                rows.append({"method": method, "video": video, "frame": t, "anchor": t == 0, "distance": t,
                             "displacement_px": t * shift, "width": 100, "tags": "x",
                             "psnr_masked": psnr_m + (2.0 if video == "a" else 0.0), "lpips_masked": 0.1})
    pd.DataFrame(rows).to_csv(tmp_path / "metrics.csv", index=False)
    (tmp_path / "run.json").write_text(json.dumps({"methods": {}}))
    text = differences(tmp_path)
    assert "- masked PSNR, z2h − z2h-zero: +5.00 dB (31.00 against 26.00)" in text
    assert "- masked PSNR, z2h − flow-dis-direct: +3.00 dB (31.00 against 28.00)" in text  # the best flow
    motion = pivot(tmp_path, "motion").splitlines()
    assert motion[0] == "| method | small | large |"  # video a moves 1-2 px (small), b 20-40 px (large)
    assert motion[2] == "| flow-dis-direct | 29.00 | 27.00 |"
    assert motion[-1] == "| z2h | **32.00** | **30.00** |"
