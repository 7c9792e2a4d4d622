"""Logs: plain lines when stderr is not a terminal, -q/-v control what reaches stderr."""

import io

from eval_fixtures import make_bench

from z2h.cli import main
from z2h.progress import Reporter


def test_no_bar_noise_when_not_a_terminal():
    stream = io.StringIO()
    rep = Reporter("bar", stream=stream)  # default: a line per 10% only after 10 s without one
    step = rep.stage("zero")
    for i in range(1, 101):
        step(i, 100)
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text  # tqdm wrote both into log files
    assert text.splitlines() == ["z2h: zero 100/100 (100%)"]  # a quick stage: one line
    for i in range(1, 4):  # a stage that runs again reports again
        step(i, 3)
    assert stream.getvalue().splitlines()[-1] == "z2h: zero 3/3 (100%)"


def test_a_slow_stage_reports_each_tenth():
    stream = io.StringIO()
    step = Reporter("bar", stream=stream, line_interval=0).stage("hero-train")
    for i in range(1, 801):
        step(i, 800)
    lines = stream.getvalue().splitlines()
    assert lines == [f"z2h: hero-train {80 * k}/800 ({10 * k}%)" for k in range(1, 11)]


def _eval(tmp_path, capsys, top, *flags):
    bench = tmp_path / "bench"
    if not bench.exists():
        make_bench(bench)
    capsys.readouterr()
    # capsys's stderr is not a terminal, as in `make demo > log`
    code = main([*top, "eval", "run", str(bench), "--methods", "no-edit", "--lpips", "none", "--out",
                 str(tmp_path / "out"), *flags])
    return code, capsys.readouterr().err


def test_quiet_and_verbose(tmp_path, capsys):
    code, text = _eval(tmp_path, capsys, ["-v"])
    assert code == 0
    assert "\r" not in text and "z2h: score 2/2 (100%)" in text and "2 videos" in text
    code, text = _eval(tmp_path, capsys, [], "-v")  # after the command, too
    assert "no-edit on pan-left: cached" in text  # debug
    code, text = _eval(tmp_path, capsys, [])  # default level: info, no debug
    assert "2 videos" in text and "cached" not in text
    code, text = _eval(tmp_path, capsys, ["-q"])
    assert code == 0 and text == ""
    code, text = _eval(tmp_path, capsys, [], "--videos", "nope", "-qq")
    assert code == 1 and "nope" in text  # errors are never silenced
