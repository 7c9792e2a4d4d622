"""Spec validation, TOML round trip and the seeded generator (no rendering)."""

import tomllib

import pytest

from z2h.benchmark.generate import generate, random_spec
from z2h.benchmark.spec import SpecError, dumps_spec, load_spec, retime, spec_from_dict

TINY = """
frames = 4
[[objects]]
name = "a"
shape = "cube"
[objects.material]
base_color = [0.8, 0.1, 0.1]
[[objects]]
name = "b"
shape = "uv_sphere"
[[objects.keys]]
frame = 3
location = [1, 0, 0]
[edit]
object = "a"
kind = "color"
color = [0.1, 0.2, 0.9]
"""


def write(tmp_path, text, name="x.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_valid_spec_defaults(tmp_path):
    s = load_spec(write(tmp_path, TINY))
    assert s.name == "x" and s.frames == 4 and s.resolution == (256, 256) and s.anchor == 0
    assert [o.name for o in s.objects] == ["a", "b"]
    assert s.objects[1].keys[0].location == (1.0, 0.0, 0.0) and s.objects[1].keys[0].rotation is None


@pytest.mark.parametrize(
    "old, new, field",
    [
        (
            "base_color = [0.8, 0.1, 0.1]",
            "base_color = [0.8, 2, 0.1]",
            "objects[0].material.base_color: expected 3 or 4",
        ),
        ('shape = "uv_sphere"', 'shape = "blob"', "objects[1].shape: expected one of"),
        ("frame = 3", "frame = 4", "objects[1].keys[0].frame: expected an integer in 0..3"),
        ('object = "a"', 'object = "zz"', "edit.object: no object named 'zz'"),
        ("frames = 4", "frames = 4\nanchor = 9", "anchor: expected an integer in 0..3"),
        ('kind = "color"', 'kind = "color"\ncolour = 1', "edit.colour: unknown field"),
        ("color = [0.1, 0.2, 0.9]", "", "edit.color: a colour edit needs"),
        ('name = "b"', 'name = "a"', "objects[1].name: duplicate object name"),
    ],
)
def test_errors_name_file_and_field(tmp_path, old, new, field):
    assert old in TINY
    path = write(tmp_path, TINY.replace(old, new, 1))
    with pytest.raises(SpecError) as e:
        load_spec(path)
    assert str(e.value).startswith(f"{path}: ") and field in str(e.value)


def test_parse_error_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match="cannot parse"):
        load_spec(write(tmp_path, "frames = [", "bad.toml"))
    with pytest.raises(SpecError, match="file not found"):
        load_spec(tmp_path / "nope.toml")


def test_dump_round_trip_and_retime(tmp_path):
    s = load_spec(write(tmp_path, TINY))
    again = spec_from_dict(tomllib.loads(dumps_spec(s)), s.source)
    assert again == s
    r = retime(s, 7)
    assert r.frames == 7 and r.objects[1].keys[0].frame == 6 and s.objects[1].keys[0].frame == 3


def test_generator_is_seeded_and_valid(tmp_path):
    a = generate(6, 3, tmp_path / "a")
    b = generate(6, 3, tmp_path / "b")
    c = generate(6, 4, tmp_path / "c")
    texts = [p.read_text() for p in a]
    assert texts == [p.read_text() for p in b]
    assert texts != [p.read_text() for p in c]
    for p in a:
        s = load_spec(p)  # every generated spec validates
        assert s.edit.object in [o.name for o in s.objects] and s.tags
    with pytest.raises(FileExistsError):
        generate(1, 3, tmp_path / "a")


def test_generator_defeats_colour_keying_often():
    import random

    rng = random.Random(0)
    specs = [random_spec(rng, f"g{i}") for i in range(40)]
    hard = {"distractor", "textured_object", "texture_edit", "color_in_background"}
    share = sum(bool(hard & set(s.tags)) for s in specs) / len(specs)
    assert share >= 0.5


MORE = TINY + """
[[more_edits]]
object = "b"
kind = "color"
color = [0.9, 0.9, 0.1]

[[lights]]
kind = "point"
[[lights.keys]]
frame = 0
location = [1, 2, 3]
[[lights.keys]]
frame = 3
location = [-1, 2, 3]
"""


def test_second_edit_and_moving_light_round_trip(tmp_path):
    s = load_spec(write(tmp_path, MORE))
    assert [e.object for e in s.more_edits] == ["b"] and s.more_edits[0].color == (0.9, 0.9, 0.1)
    assert [k.location for k in s.lights[0].keys] == [(1.0, 2.0, 3.0), (-1.0, 2.0, 3.0)]
    back = spec_from_dict(tomllib.loads(dumps_spec(s)), "y")
    assert back.more_edits == s.more_edits and back.lights == s.lights
    assert [k.frame for k in retime(s, 7).lights[0].keys] == [0, 6]


@pytest.mark.parametrize(
    "old, new, field",
    [
        ('object = "b"', 'object = "a"', "more_edits[0].object: object 'a' is edited twice"),
        ('object = "b"', 'object = "q"', "more_edits[0].object: no object named 'q'"),
        ("frame = 3\nlocation = [-1", "frame = 5\nlocation = [-1",
         "lights[0].keys[1].frame: expected an integer"),
    ],
)
def test_more_edits_and_light_key_errors(tmp_path, old, new, field):
    text = MORE[: len(TINY)] + MORE[len(TINY):].replace(old, new)
    with pytest.raises(SpecError, match=field.replace("[", r"\[").replace("]", r"\]")):
        load_spec(write(tmp_path, text))
