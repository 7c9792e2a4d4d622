"""Shader-node helpers (bpy): spec materials, procedural textures, and the appearance edits.

Edits work on any Principled-BSDF material, so the add-on can apply them to a user's own object:
a ``color`` edit sets an unlinked Base Color, or recolours a linked one (texture, image) with a
"Color" blend that keeps the pattern's lightness; a ``texture`` edit plugs in a new pattern; a
``material`` edit sets colour/roughness/metallic.
"""

from __future__ import annotations

import bpy

from .spec import Edit, Material, Texture

BASE_COLOR_NODE = "z2h_base_color"
SURFACE_COORDS_NODE = "z2h_surface_coords"  # rest-shape object coordinates of a deforming mesh


def _rgba(c: tuple[float, ...]) -> tuple[float, float, float, float]:
    return (c[0], c[1], c[2], c[3] if len(c) > 3 else 1.0)


def _socket(sockets, identifier: str):
    for s in sockets:
        if s.identifier == identifier:
            return s
    raise KeyError(identifier)


def mix_color(tree, a, b, factor: float = 1.0, blend: str = "MIX"):
    """A Mix (colour) node of inputs ``a``/``b`` (sockets or RGBA values); returns its output socket."""
    node = tree.nodes.new("ShaderNodeMix")
    node.data_type, node.blend_type = "RGBA", blend
    _socket(node.inputs, "Factor_Float").default_value = factor
    for ident, v in (("A_Color", a), ("B_Color", b)):
        if isinstance(v, bpy.types.NodeSocket):
            tree.links.new(v, _socket(node.inputs, ident))
        else:
            _socket(node.inputs, ident).default_value = _rgba(v)
    return _socket(node.outputs, "Result_Color"), node


def texture_socket(tree, tex: Texture, base_color, coords: str = "Object"):
    """Build a procedural pattern in ``tree``; returns its colour output socket.

    ``base_color`` (an RGBA value or a colour socket) is the first colour unless ``tex.color1`` is set.
    ``coords="Object"`` pins the pattern to the object (it moves with it), which keeps pixel
    correspondence meaningful; on a deforming mesh (see :func:`pin_to_rest_shape`) the rest-shape
    coordinates are used, so it deforms with it too. Worlds use ``"Generated"`` (the view direction).
    """
    c1 = _rgba(tex.color1) if tex.color1 else base_color
    c2 = _rgba(tex.color2)
    pinned = tree.nodes.get(SURFACE_COORDS_NODE)
    if coords == "Object" and pinned is not None:
        coord = pinned.outputs["Vector"]
    else:
        coord = tree.nodes.new("ShaderNodeTexCoord").outputs[coords]
    if tex.kind == "checker":
        node = tree.nodes.new("ShaderNodeTexChecker")
        if isinstance(c1, bpy.types.NodeSocket):
            tree.links.new(c1, node.inputs["Color1"])
        else:
            node.inputs["Color1"].default_value = _rgba(c1)
        node.inputs["Color2"].default_value = c2
        node.inputs["Scale"].default_value = tex.scale
        tree.links.new(coord, node.inputs["Vector"])
        return node.outputs["Color"]
    if tex.kind == "noise":
        node = tree.nodes.new("ShaderNodeTexNoise")
        node.inputs["Detail"].default_value = 4.0
        fac = node.outputs["Fac"]
    elif tex.kind in ("wave", "stripes"):
        node = tree.nodes.new("ShaderNodeTexWave")
        node.bands_direction = "DIAGONAL"  # bands show on every face of a box, whatever its axis
        fac = node.outputs["Fac"]
    else:  # voronoi
        node = tree.nodes.new("ShaderNodeTexVoronoi")
        fac = node.outputs["Distance"]
    node.inputs["Scale"].default_value = tex.scale
    tree.links.new(coord, node.inputs["Vector"])
    if tex.kind == "stripes":  # hard-edged bands
        step = tree.nodes.new("ShaderNodeMath")
        step.operation = "GREATER_THAN"
        step.inputs[1].default_value = 0.5
        tree.links.new(fac, step.inputs[0])
        fac = step.outputs[0]
    out, mix = mix_color(tree, c1, c2)
    tree.links.new(fac, _socket(mix.inputs, "Factor_Float"))
    return out


def pin_to_rest_shape(mat, mesh) -> None:
    """Make the patterns of ``mat`` stick to ``mesh``'s surface when modifiers deform it.

    "Object" texture coordinates are the DEFORMED positions, so a pattern swims across a waving or
    twisting surface and the renderer's motion vectors (the benchmark's true flow) stop describing the
    video. "Generated" coordinates are the rest shape's, scaled to the texture space; with the texture
    space set to the rest shape's bounds, a Mapping node turns them back into rest-shape object
    coordinates: the same pattern as before on the undeformed mesh, carried along by the deformation.
    """
    axes = [[v.co[i] for v in mesh.vertices] for i in range(3)]
    size = [max((max(a) - min(a)) / 2, 0.5) for a in axes]  # a flat axis still needs a non-zero size
    centre = [(max(a) + min(a)) / 2 for a in axes]
    mesh.use_auto_texspace = False
    mesh.texspace_location, mesh.texspace_size = centre, size
    tree = mat.node_tree
    mapping = tree.nodes.new("ShaderNodeMapping")
    mapping.name, mapping.vector_type = SURFACE_COORDS_NODE, "POINT"
    # generated g in 0..1 over [centre - size, centre + size]: object = g * 2 size + (centre - size)
    mapping.inputs["Scale"].default_value = [2 * s for s in size]
    mapping.inputs["Location"].default_value = [c - s for c, s in zip(centre, size, strict=True)]
    tree.links.new(tree.nodes.new("ShaderNodeTexCoord").outputs["Generated"], mapping.inputs["Vector"])
    # patterns built before: onto the rest-shape coordinates (a new link to an input replaces the old one)
    for to_socket in [k.to_socket for k in tree.links
                      if k.from_node.type == "TEX_COORD" and k.from_socket.name == "Object"]:
        tree.links.new(mapping.outputs["Vector"], to_socket)


def principled_nodes(mat) -> list:
    return [n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED"] if mat.node_tree else []


def make_material(name: str, m: Material):
    """A new Principled-BSDF material from a spec :class:`Material`."""
    mat = bpy.data.materials.new(name)
    if mat.node_tree is None or not principled_nodes(mat):  # older Blender: nodes are opt-in
        mat.use_nodes = True
    bsdf = principled_nodes(mat)[0]
    bsdf.inputs["Base Color"].default_value = _rgba(m.base_color)
    bsdf.inputs["Roughness"].default_value = m.roughness
    bsdf.inputs["Metallic"].default_value = m.metallic
    mat.diffuse_color = _rgba(m.base_color)  # what Workbench draws
    mat.roughness, mat.metallic = m.roughness, m.metallic
    if m.texture is not None:
        # The base colour feeds the pattern through a named RGB node, so a colour edit changes just
        # that colour and the pattern stays.
        rgb = mat.node_tree.nodes.new("ShaderNodeRGB")
        rgb.name = BASE_COLOR_NODE
        rgb.outputs[0].default_value = _rgba(m.base_color)
        base = rgb.outputs[0] if m.texture.color1 is None else m.base_color
        mat.node_tree.links.new(texture_socket(mat.node_tree, m.texture, base), bsdf.inputs["Base Color"])
    return mat


def apply_edit(mat, edit: Edit) -> None:
    """Apply ``edit`` in place to ``mat`` (pass a copy: the caller restores the original)."""
    tree = mat.node_tree
    named = tree.nodes.get(BASE_COLOR_NODE) if tree else None
    for bsdf in principled_nodes(mat):
        base = bsdf.inputs["Base Color"]
        if edit.color is not None and edit.kind in ("color", "material"):
            if named is not None and base.is_linked:
                named.outputs[0].default_value = _rgba(edit.color)
            elif base.is_linked:
                src = base.links[0].from_socket
                out, _ = mix_color(tree, src, edit.color, blend="COLOR")
                tree.links.new(out, base)
            else:
                base.default_value = _rgba(edit.color)
        if edit.kind == "texture":
            current = named.outputs[0].default_value if named else base.default_value
            current = tuple(current)
            for link in list(base.links):
                tree.links.remove(link)
            tree.links.new(texture_socket(tree, edit.texture, current), base)
        if edit.roughness is not None:
            bsdf.inputs["Roughness"].default_value = edit.roughness
        if edit.metallic is not None:
            bsdf.inputs["Metallic"].default_value = edit.metallic
    if edit.color is not None:
        mat.diffuse_color = _rgba(edit.color)
    elif edit.kind == "texture":
        mat.diffuse_color = _rgba(edit.texture.color1 or edit.texture.color2)


def world_nodes(world, color: tuple[float, ...], strength: float, texture: Texture | None) -> None:
    """Background of a plain colour or a procedural pattern."""
    if world.node_tree is None:
        world.use_nodes = True
    tree = world.node_tree
    bg = next((n for n in tree.nodes if n.type == "BACKGROUND"), None)
    bg = bg or tree.nodes.new("ShaderNodeBackground")
    out = next((n for n in tree.nodes if n.type == "OUTPUT_WORLD"), None)
    out = out or tree.nodes.new("ShaderNodeOutputWorld")
    tree.links.new(bg.outputs[0], out.inputs["Surface"])
    bg.inputs["Color"].default_value = _rgba(color)
    bg.inputs["Strength"].default_value = strength
    world.color = color[:3]
    if texture is not None:
        tree.links.new(texture_socket(tree, texture, color, coords="Generated"), bg.inputs["Color"])
