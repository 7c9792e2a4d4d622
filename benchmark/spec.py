"""Scene specs: dataclasses, validation of TOML/JSON files, and writing specs back as TOML.

A spec describes one benchmark video declaratively (objects, materials, keyframed motion, camera,
lights, world, the edit). Every validation error names the file and the field, e.g.
``scenes/x.toml: objects[2].material.base_color: expected 3 or 4 numbers in 0..1``.
Frame numbers in a spec run from 0 to ``frames - 1``. Angles are in degrees.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

SHAPES = ("cube", "uv_sphere", "ico_sphere", "cylinder", "cone", "torus", "plane", "monkey", "helix", "star")
TEXTURES = ("checker", "noise", "wave", "voronoi", "stripes")
DEFORMS = ("twist", "bend", "taper", "wave")
LIGHTS = ("sun", "point", "area")
EDIT_KINDS = ("color", "texture", "material")
TAGS = (
    "small_translation",
    "large_translation",
    "rotation",
    "camera_orbit",
    "scale",
    "occlusion",
    "distractor",
    "textured_object",
    "textured_background",
    "moving_background",
    "glossy",
    "thin",
    "deformation",
    "texture_edit",
    "color_in_background",
    "moving_light",
    "specular",
    "multi_edit",
    "leaves_frame",
)


class SpecError(ValueError):
    """An invalid spec; the message starts with ``file: field:``."""


@dataclass
class Texture:
    """A procedural pattern between two colours, in the object's own coordinates (it moves with it)."""

    kind: str = "checker"
    color1: tuple[float, ...] | None = None  # None: the material's base colour
    color2: tuple[float, ...] = (0.9, 0.9, 0.9)
    scale: float = 4.0


@dataclass
class Material:
    base_color: tuple[float, ...] = (0.8, 0.8, 0.8)
    roughness: float = 0.5
    metallic: float = 0.0
    texture: Texture | None = None


@dataclass
class Key:
    """A keyframe; unset channels keep the object's rest value at that frame."""

    frame: int = 0
    location: tuple[float, ...] | None = None
    rotation: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None


@dataclass
class Deform:
    """A non-rigid deformation (SimpleDeform or Wave modifier), animated from 0 to ``amount``."""

    kind: str = "twist"
    amount: float = 90.0  # degrees for twist/bend, factor for taper, height for wave
    axis: str = "Z"


@dataclass
class Object:
    name: str = ""
    shape: str = "cube"
    location: tuple[float, ...] = (0.0, 0.0, 0.0)
    rotation: tuple[float, ...] = (0.0, 0.0, 0.0)
    scale: tuple[float, ...] = (1.0, 1.0, 1.0)
    smooth: bool = True
    material: Material = field(default_factory=Material)
    keys: list[Key] = field(default_factory=list)
    deform: Deform | None = None


@dataclass
class Camera:
    location: tuple[float, ...] = (0.0, -8.0, 3.0)
    target: tuple[float, ...] = (0.0, 0.0, 0.5)
    lens: float = 50.0
    orbit: float = 0.0  # degrees around the target's vertical axis over the clip


@dataclass
class Light:
    kind: str = "sun"
    location: tuple[float, ...] = (4.0, -4.0, 6.0)
    rotation: tuple[float, ...] = (40.0, 0.0, 30.0)
    energy: float = 3.0
    color: tuple[float, ...] = (1.0, 1.0, 1.0)
    size: float = 1.0
    keys: list[Key] = field(default_factory=list)  # animated location/rotation (a moving light)


@dataclass
class World:
    color: tuple[float, ...] = (0.05, 0.05, 0.06)
    strength: float = 1.0
    texture: Texture | None = None


@dataclass
class Edit:
    """What changes in the edited video.

    ``color``: a new base colour (on a textured object the pattern's base colour changes, the rest
    stays); ``texture``: a new pattern; ``material``: colour, roughness and/or metallic.
    """

    object: str = ""
    kind: str = "color"
    color: tuple[float, ...] | None = None
    texture: Texture | None = None
    roughness: float | None = None
    metallic: float | None = None


@dataclass
class Spec:
    name: str = ""
    frames: int = 24
    fps: int = 24
    resolution: tuple[int, int] = (256, 256)
    anchor: int = 0
    tags: list[str] = field(default_factory=list)
    camera: Camera = field(default_factory=Camera)
    world: World = field(default_factory=World)
    lights: list[Light] = field(default_factory=lambda: [Light()])
    objects: list[Object] = field(default_factory=list)
    edit: Edit = field(default_factory=Edit)
    more_edits: list[Edit] = field(default_factory=list)  # further objects edited in the same anchor
    source: str = ""  # file the spec came from (not written back)


# ---------------------------------------------------------------------------------------- validation
class _Ctx:
    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, msg: str) -> None:
        raise SpecError(f"{self.source}: {where}: {msg}")

    def number(self, v: Any, where: str, lo: float = -math.inf, hi: float = math.inf) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi or v != v:
            self.fail(where, f"expected a number in {lo}..{hi}, got {v!r}")
        return float(v)

    def integer(self, v: Any, where: str, lo: int, hi: int = 1 << 31) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            self.fail(where, f"expected an integer in {lo}..{hi}, got {v!r}")
        return int(v)

    def vec(self, v: Any, where: str, n: int = 3) -> tuple[float, ...]:
        ok = isinstance(v, list | tuple) and len(v) == n
        if not ok or any(isinstance(x, bool) or not isinstance(x, int | float) for x in v):
            self.fail(where, f"expected {n} numbers, got {v!r}")
        return tuple(float(x) for x in v)

    def color(self, v: Any, where: str) -> tuple[float, ...]:
        ok = isinstance(v, list | tuple) and len(v) in (3, 4)
        if not ok or any(isinstance(x, bool) or not isinstance(x, int | float) or not 0 <= x <= 1 for x in v):
            self.fail(where, f"expected 3 or 4 numbers in 0..1, got {v!r}")
        return tuple(float(x) for x in v)

    def choice(self, v: Any, where: str, options: tuple[str, ...]) -> str:
        if v not in options:
            self.fail(where, f"expected one of {', '.join(options)}, got {v!r}")
        return v

    def table(self, v: Any, where: str, cls: type) -> dict:
        if not isinstance(v, dict):
            self.fail(where, f"expected a table, got {type(v).__name__}")
        known = {f.name for f in fields(cls)} - {"source"}
        for k in v:
            if k not in known:
                self.fail(
                    f"{where}.{k}" if where else k, f"unknown field (known: {', '.join(sorted(known))})"
                )
        return v


def _texture(c: _Ctx, d: Any, w: str) -> Texture:
    d = c.table(d, w, Texture)
    t = Texture()
    t.kind = c.choice(d.get("kind", t.kind), f"{w}.kind", TEXTURES)
    if "color1" in d:
        t.color1 = c.color(d["color1"], f"{w}.color1")
    t.color2 = c.color(d.get("color2", t.color2), f"{w}.color2")
    t.scale = c.number(d.get("scale", t.scale), f"{w}.scale", 0.01, 1000)
    return t


def _material(c: _Ctx, d: Any, w: str) -> Material:
    d = c.table(d, w, Material)
    m = Material()
    m.base_color = c.color(d.get("base_color", m.base_color), f"{w}.base_color")
    m.roughness = c.number(d.get("roughness", m.roughness), f"{w}.roughness", 0, 1)
    m.metallic = c.number(d.get("metallic", m.metallic), f"{w}.metallic", 0, 1)
    if "texture" in d:
        m.texture = _texture(c, d["texture"], f"{w}.texture")
    return m


def _object(c: _Ctx, d: Any, w: str, frames: int) -> Object:
    d = c.table(d, w, Object)
    o = Object()
    if not isinstance(d.get("name"), str) or not d["name"]:
        c.fail(f"{w}.name", "expected a non-empty string")
    o.name = d["name"]
    o.shape = c.choice(d.get("shape", o.shape), f"{w}.shape", SHAPES)
    o.location = c.vec(d.get("location", o.location), f"{w}.location")
    o.rotation = c.vec(d.get("rotation", o.rotation), f"{w}.rotation")
    o.scale = c.vec(d.get("scale", o.scale), f"{w}.scale")
    if not isinstance(d.get("smooth", True), bool):
        c.fail(f"{w}.smooth", "expected true or false")
    o.smooth = d.get("smooth", True)
    o.material = _material(c, d.get("material", {}), f"{w}.material")
    o.keys = _keys(c, d.get("keys", []), w, frames)
    if "deform" in d:
        dd = c.table(d["deform"], f"{w}.deform", Deform)
        o.deform = Deform(
            kind=c.choice(dd.get("kind", "twist"), f"{w}.deform.kind", DEFORMS),
            amount=c.number(dd.get("amount", 90.0), f"{w}.deform.amount", -3600, 3600),
            axis=c.choice(dd.get("axis", "Z"), f"{w}.deform.axis", ("X", "Y", "Z")),
        )
    return o


def _keys(c: _Ctx, keys: Any, w: str, frames: int) -> list[Key]:
    if not isinstance(keys, list):
        c.fail(f"{w}.keys", "expected a list of tables")
    out = []
    for i, k in enumerate(keys):
        kw = f"{w}.keys[{i}]"
        k = c.table(k, kw, Key)
        key = Key(frame=c.integer(k.get("frame"), f"{kw}.frame", 0, frames - 1))
        for ch in ("location", "rotation", "scale"):
            if ch in k:
                setattr(key, ch, c.vec(k[ch], f"{kw}.{ch}"))
        out.append(key)
    return out


def spec_from_dict(d: dict, source: str = "<spec>") -> Spec:
    """Validate a parsed spec; raises :class:`SpecError` naming ``source`` and the field."""
    c = _Ctx(source)
    d = c.table(d, "", Spec)
    s = Spec(source=source)
    s.name = d.get("name") or Path(source).stem
    if not isinstance(s.name, str) or not s.name.replace("_", "").replace("-", "").isalnum():
        c.fail("name", f"expected letters, digits, '_' or '-', got {s.name!r}")
    s.frames = c.integer(d.get("frames", s.frames), "frames", 2, 10000)
    s.fps = c.integer(d.get("fps", s.fps), "fps", 1, 240)
    res = d.get("resolution", list(s.resolution))
    if not isinstance(res, list) or len(res) != 2:
        c.fail("resolution", f"expected [width, height], got {res!r}")
    s.resolution = (c.integer(res[0], "resolution[0]", 8, 8192), c.integer(res[1], "resolution[1]", 8, 8192))
    s.anchor = c.integer(d.get("anchor", 0), "anchor", 0, s.frames - 1)
    tags = d.get("tags", [])
    if not isinstance(tags, list):
        c.fail("tags", "expected a list of strings")
    s.tags = [c.choice(t, f"tags[{i}]", TAGS) for i, t in enumerate(tags)]

    cd = c.table(d.get("camera", {}), "camera", Camera)
    s.camera = Camera(
        location=c.vec(cd.get("location", s.camera.location), "camera.location"),
        target=c.vec(cd.get("target", s.camera.target), "camera.target"),
        lens=c.number(cd.get("lens", s.camera.lens), "camera.lens", 1, 5000),
        orbit=c.number(cd.get("orbit", 0.0), "camera.orbit", -3600, 3600),
    )
    wd = c.table(d.get("world", {}), "world", World)
    s.world = World(
        color=c.color(wd.get("color", s.world.color), "world.color"),
        strength=c.number(wd.get("strength", 1.0), "world.strength", 0, 1000),
        texture=_texture(c, wd["texture"], "world.texture") if "texture" in wd else None,
    )
    lights = d.get("lights", [asdict(Light())])
    if not isinstance(lights, list):
        c.fail("lights", "expected a list of tables")
    s.lights = []
    for i, ld in enumerate(lights):
        w = f"lights[{i}]"
        ld = c.table(ld, w, Light)
        s.lights.append(
            Light(
                kind=c.choice(ld.get("kind", "sun"), f"{w}.kind", LIGHTS),
                location=c.vec(ld.get("location", Light.location), f"{w}.location"),
                rotation=c.vec(ld.get("rotation", Light.rotation), f"{w}.rotation"),
                energy=c.number(ld.get("energy", Light.energy), f"{w}.energy", 0, 1e7),
                color=c.color(ld.get("color", Light.color), f"{w}.color"),
                size=c.number(ld.get("size", Light.size), f"{w}.size", 0, 1000),
                keys=_keys(c, ld.get("keys", []), w, s.frames),
            )
        )
    objects = d.get("objects")
    if not isinstance(objects, list) or not objects:
        c.fail("objects", "expected a non-empty list of tables ([[objects]])")
    s.objects = [_object(c, o, f"objects[{i}]", s.frames) for i, o in enumerate(objects)]
    names = [o.name for o in s.objects]
    for i, n in enumerate(names):
        if n in names[:i]:
            c.fail(f"objects[{i}].name", f"duplicate object name {n!r}")

    if "edit" not in d:
        c.fail("edit", "missing [edit] table")
    s.edit = _edit(c, d["edit"], names)
    more = d.get("more_edits", [])
    if not isinstance(more, list):
        c.fail("more_edits", "expected a list of tables ([[more_edits]])")
    s.more_edits = [_edit(c, e, names, f"more_edits[{i}]") for i, e in enumerate(more)]
    edited = [e.object for e in [s.edit, *s.more_edits]]
    for i, n in enumerate(edited):
        if n in edited[:i]:
            c.fail(f"more_edits[{i - 1}].object", f"object {n!r} is edited twice")
    return s


def _edit(c: _Ctx, ed: Any, names: list[str] | None, w: str = "edit") -> Edit:
    ed = c.table(ed, w, Edit)
    e = Edit(object=ed.get("object", ""), kind=c.choice(ed.get("kind", "color"), f"{w}.kind", EDIT_KINDS))
    if names is not None and e.object not in names:
        c.fail(f"{w}.object", f"no object named {e.object!r} (objects: {', '.join(names)})")
    if "color" in ed:
        e.color = c.color(ed["color"], f"{w}.color")
    if "texture" in ed:
        e.texture = _texture(c, ed["texture"], f"{w}.texture")
    if "roughness" in ed:
        e.roughness = c.number(ed["roughness"], f"{w}.roughness", 0, 1)
    if "metallic" in ed:
        e.metallic = c.number(ed["metallic"], f"{w}.metallic", 0, 1)
    if e.kind == "color" and e.color is None:
        c.fail(f"{w}.color", "a colour edit needs color = [r, g, b]")
    if e.kind == "texture" and e.texture is None:
        c.fail(f"{w}.texture", "a texture edit needs a texture table")
    if e.kind == "material" and e.color is None and e.roughness is None and e.metallic is None:
        c.fail(w, "a material edit needs color, roughness or metallic")
    return e


def edit_from_dict(d: dict, source: str = "<edit>") -> Edit:
    """Validate an edit given as a dict (e.g. from the add-on's UI): ``{"kind": "color", "color": [...]}``."""
    return _edit(_Ctx(source), d, None)


def load_spec(path: str | Path) -> Spec:
    """Read and validate a ``.toml`` or ``.json`` spec file."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a folder, expected a .toml or .json spec file") from None
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise SpecError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise SpecError(f"{path}: cannot parse: {e}") from None
    return spec_from_dict(data, str(path))


def retime(spec: Spec, frames: int) -> Spec:
    """The same motion over ``frames`` frames: keyframes and anchor are scaled to the new length."""
    from copy import deepcopy

    s = deepcopy(spec)
    if frames == spec.frames:
        return s
    f = (frames - 1) / (spec.frames - 1)
    for o in [*s.objects, *s.lights]:
        for k in o.keys:
            k.frame = round(k.frame * f)
    s.anchor, s.frames = round(spec.anchor * f), frames
    return s


def effective_spec(spec: Spec, frames: int | None = None, resolution: tuple[int, ...] | None = None) -> Spec:
    """The spec as rendered with ``bench build --frames/--resolution`` (W or W H) overrides."""
    s = retime(spec, frames) if frames else spec
    if resolution:
        from copy import deepcopy

        s = deepcopy(s)
        s.resolution = (resolution[0], resolution[1] if len(resolution) > 1 else resolution[0])
    return s


# ------------------------------------------------------------------------------------------- writing
def spec_to_dict(spec: Spec) -> dict:
    """A plain dict that :func:`spec_from_dict` accepts (None fields and ``source`` dropped)."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if x is not None and k != "source"}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return clean(asdict(spec))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(round(v, 6)) if isinstance(v, float) else str(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic strings
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _toml_table(d: dict, prefix: str, out: list[str]) -> None:
    subtables = []
    for k, v in d.items():
        is_tables = isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
        if (isinstance(v, dict) and k not in ("texture",)) or is_tables:
            subtables.append((k, v))
        else:
            out.append(f"{k} = {_toml_value(v)}")
    for k, v in subtables:
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.append(f"\n[{name}]")
            _toml_table(v, name + ".", out)
        else:
            for item in v:
                out.append(f"\n[[{name}]]")
                _toml_table(item, name + ".", out)


def dumps_spec(spec: Spec) -> str:
    """The spec as TOML text."""
    out: list[str] = []
    _toml_table(spec_to_dict(spec), "", out)
    return "\n".join(out).lstrip("\n") + "\n"


def dump_spec(spec: Spec, path: str | Path) -> None:
    """Write the spec as TOML (atomically)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(dumps_spec(spec))
    os.replace(tmp, path)
