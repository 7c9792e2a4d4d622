"""Progress reporting: JSON line contract and cooperative cancellation."""

import io
import json

import pytest

from z2h.progress import Cancelled, Reporter


def test_json_events_follow_the_contract():
    out = io.StringIO()
    rep = Reporter("json", stream=out)
    step = rep.stage("zero")
    for i in range(1, 4):
        step(i, 3)
    rep.emit("done", out="/x", partial=False)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert events[0] == {"event": "progress", "stage": "zero", "step": 1, "total": 3, "message": ""}
    assert [e["step"] for e in events[:3]] == [1, 2, 3]
    assert events[-1] == {"event": "done", "out": "/x", "partial": False}


def test_cancel_raises_at_the_next_step():
    rep = Reporter("none")
    step = rep.stage("hero")
    step(1, 10)
    rep.cancel()
    with pytest.raises(Cancelled, match="hero"):
        step(2, 10)


def test_bad_mode_is_rejected():
    with pytest.raises(ValueError, match="bar, json or none"):
        Reporter("fancy")
