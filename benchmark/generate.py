"""``z2h bench generate``: seeded random scene specs (same seed, same specs).

Each spec has a floor, 1-3 extra objects and one edited object with random motion (translation,
rotation, scale, or a camera orbit). About half of them defeat colour keying on purpose: a distractor
with the edited object's colour, a textured edited object, a texture edit, or the edited colour in
the background.
"""

from __future__ import annotations

import colorsys
import random
from pathlib import Path

from .spec import (
    SHAPES,
    TEXTURES,
    Camera,
    Deform,
    Edit,
    Key,
    Light,
    Material,
    Object,
    Spec,
    Texture,
    World,
    dump_spec,
    spec_from_dict,
    spec_to_dict,
)

SOLID = [s for s in SHAPES if s not in ("plane", "helix")]


def _color(
    rng: random.Random, sat: tuple[float, float] = (0.5, 0.9), val: tuple[float, float] = (0.5, 0.9)
) -> tuple[float, ...]:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val))
    return (round(r, 3), round(g, 3), round(b, 3))


def _texture(rng: random.Random, color1: tuple[float, ...] | None = None) -> Texture:
    return Texture(
        kind=rng.choice(TEXTURES),
        color1=color1,
        color2=_color(rng, (0.0, 0.6)),
        scale=round(rng.uniform(2, 8), 2),
    )


def random_spec(rng: random.Random, name: str, frames: int = 24, resolution: int = 256) -> Spec:
    """One random, valid spec."""
    tags: list[str] = []
    color = _color(rng)
    hero_mat = Material(
        base_color=color,
        roughness=round(rng.uniform(0.2, 0.8), 2),
        metallic=round(rng.choice([0.0, 0.0, 0.0, 0.8]), 2),
    )
    if hero_mat.metallic:
        tags.append("glossy")
    if rng.random() < 0.35:
        hero_mat.texture = _texture(rng)
        tags.append("textured_object")
    shape = rng.choice(SOLID)
    start = (round(rng.uniform(-1.2, 0), 2), round(rng.uniform(-0.5, 0.5), 2), 0.5)
    hero = Object(
        name="hero", shape=shape, location=start, smooth=shape not in ("cube", "star"), material=hero_mat
    )
    motion = rng.choice(["small_translation", "large_translation", "rotation", "scale", "camera_orbit"])
    tags.append(motion)
    last = frames - 1
    if motion in ("small_translation", "large_translation"):
        d = rng.uniform(0.3, 0.6) if motion == "small_translation" else rng.uniform(1.6, 2.4)
        end = (round(start[0] + d, 2), round(start[1] + rng.uniform(-0.5, 0.5), 2), 0.5)
        hero.keys = [Key(frame=0, location=start), Key(frame=last, location=end)]
    elif motion == "rotation":
        hero.keys = [
            Key(frame=0, rotation=(0, 0, 0)),
            Key(frame=last, rotation=(0, 0, rng.choice([180, 270, 360]))),
        ]
    elif motion == "scale":
        s = round(rng.uniform(1.5, 2.0), 2)
        hero.keys = [Key(frame=0, scale=(1, 1, 1)), Key(frame=last, scale=(s, s, s))]
    objects = [
        Object(
            name="floor",
            shape="plane",
            scale=(12, 12, 1),
            smooth=False,
            material=Material(base_color=_color(rng, (0.0, 0.3), (0.3, 0.6))),
        )
    ]
    objects.append(hero)
    world = World(color=_color(rng, (0.0, 0.4)), strength=round(rng.uniform(0.3, 0.6), 2))
    if rng.random() < 0.5:
        twin = Object(
            name="twin",
            shape=shape,
            location=(round(start[0] + 1.8, 2), round(start[1] + 1.2, 2), 0.5),
            smooth=hero.smooth,
            material=Material(**{**hero_mat.__dict__}),
        )
        objects.append(twin)
        tags.append("distractor")
    for i in range(rng.randint(0, 2)):
        objects.append(
            Object(
                name=f"prop{i}",
                shape=rng.choice(SOLID),
                location=(round(rng.uniform(-2.0, 2.0), 2), round(rng.uniform(1.0, 2.0), 2), 0.5),
                scale=(0.8, 0.8, 0.8),
                material=Material(base_color=_color(rng)),
            )
        )
    if rng.random() < 0.3:
        objects[0].material.texture = _texture(rng, color1=color)  # the hero's colour is in the floor
        tags += ["textured_background", "color_in_background"]
    if rng.random() < 0.15:
        hero.deform = Deform(kind="twist", amount=round(rng.uniform(45, 120)), axis="Z")
        tags.append("deformation")
    if rng.random() < 0.4:
        edit = Edit(object="hero", kind="texture", texture=_texture(rng, color1=_color(rng)))
        tags.append("texture_edit")
    else:
        edit = Edit(object="hero", kind="color", color=_color(rng))
    cam = Camera(
        location=(0.0, -6.5, 2.6),
        target=(0.0, 0.3, 0.5),
        lens=45.0,
        orbit=round(rng.uniform(60, 120), 1) if motion == "camera_orbit" else 0.0,
    )
    lights = [
        Light(
            kind="sun",
            rotation=(round(rng.uniform(20, 50)), 0, round(rng.uniform(0, 90))),
            energy=round(rng.uniform(2.5, 3.5), 2),
        )
    ]
    spec = Spec(
        name=name,
        frames=frames,
        resolution=(resolution, resolution),
        anchor=0,
        tags=sorted(set(tags)),
        camera=cam,
        world=world,
        lights=lights,
        objects=objects,
        edit=edit,
    )
    return spec_from_dict(spec_to_dict(spec), f"<generated {name}>")  # validated, normalised


def generate(
    n: int, seed: int, out: str | Path, frames: int = 24, resolution: int = 256, overwrite: bool = False
) -> list[Path]:
    """Write ``n`` specs ``gen_<seed>_<i>.toml`` into ``out``; refuses to replace files unless told."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for i in range(n):
        name = f"gen_{seed}_{i:03d}"
        path = out / f"{name}.toml"
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists: pass --overwrite to replace it")
        dump_spec(random_spec(rng, name, frames, resolution), path)
        paths.append(path)
    return paths
