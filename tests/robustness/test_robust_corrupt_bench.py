"""A corrupt benchmark gives one line naming the file and the problem, from `bench check` and `eval run`."""

import json

import pytest
from eval_fixtures import make_bench

from z2h.cli import main


def _edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _videos_not_string(b):
    m = json.loads((b / "manifest.json").read_text())
    m["videos"].append(7)
    (b / "manifest.json").write_text(json.dumps(m))
    return "manifest.json: videos[2]: expected an object"


def _name_not_string(b):
    m = json.loads((b / "manifest.json").read_text())
    m["videos"][0]["name"] = ["pan-right"]
    (b / "manifest.json").write_text(json.dumps(m))
    return "manifest.json: videos[0]: video name must be a string"


def _garbage_mask(b):
    (b / "pan-left" / "mask" / "0002.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return "pan-left/mask/0002.png"


def _truncated_mask(b):
    p = b / "pan-left" / "mask" / "0002.png"
    p.write_bytes(p.read_bytes()[:60])
    return "pan-left/mask/0002.png"


def _anchor_string(b):
    _edit_json(b / "pan-left" / "meta.json", anchor="1")
    return "pan-left/meta.json: 'anchor' must be an integer, got '1'"


def _resolution_int(b):
    _edit_json(b / "pan-left" / "meta.json", resolution=128)
    return "pan-left/meta.json: 'resolution' must be [width, height]"


def _truncated_flow(b):
    p = b / "pan-left" / "flow.npz"
    p.write_bytes(p.read_bytes()[:300])
    return "pan-left/flow.npz"


def _meta_not_utf8(b):
    (b / "pan-left" / "meta.json").write_bytes(b"\xff\xfe{}")
    return "pan-left/meta.json: not UTF-8"


CASES = [_videos_not_string, _name_not_string, _garbage_mask, _truncated_mask, _anchor_string,
         _resolution_int, _truncated_flow, _meta_not_utf8]


@pytest.mark.parametrize("corrupt", CASES, ids=[c.__name__[1:] for c in CASES])
def test_one_line_naming_the_file(tmp_path, capsys, corrupt):
    bench = make_bench(tmp_path / "bench")
    where = corrupt(bench)
    assert main(["bench", "check", str(bench)]) == 1
    check = capsys.readouterr()
    assert where in check.err and "Traceback" not in check.err, check.err
    assert main(["eval", "run", str(bench), "--methods", "no-edit", "--lpips", "none", "--out",
                 str(tmp_path / "results"), "--progress", "none"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if where in line]
    assert len(lines) == 1, err
