"""The Blender API differences between 4.2 LTS, 4.5 LTS and 5.0 that this code meets, in one place.

Every other module asks here instead of testing ``bpy.app.version`` itself, so supporting a new
Blender means reading this file (docs/addon.md lists what changes in 5.1/5.2). The add-on bundles
this module with the rest of ``benchmark/``; CI runs the Blender-side tests on bpy 4.2, 4.5 and 5.0.

What differs:
- EEVEE's engine id: ``BLENDER_EEVEE_NEXT`` on 4.2-4.5, ``BLENDER_EEVEE`` again from 5.0.
- Image formats: 5.0 split ``ImageFormatSettings.file_format`` into ``media_type`` (IMAGE,
  MULTI_LAYER_IMAGE, VIDEO) + ``file_format``; 4.x has one enum with ``OPEN_EXR_MULTILAYER`` in it.
- Sequencer: ``SequenceEditor.strips``/``strips_all`` from 4.4 (``sequences``/``sequences_all``
  before, removed in 5.0).
- Animation: actions are layered ("slotted") from 4.4 and ``Action.fcurves`` is gone in 5.0; the
  F-curves are in the channelbag of the object's slot.
- Node trees: 4.x materials and worlds get a node tree only after ``use_nodes = True``; 5.0 always
  has one and deprecates ``use_nodes``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import bpy

VERSION: tuple[int, int, int] = tuple(bpy.app.version)

# Our names for the engines (the 5.0 ids) -> this Blender's ids.
_EEVEE = "BLENDER_EEVEE_NEXT" if (4, 2, 0) <= VERSION < (5, 0, 0) else "BLENDER_EEVEE"
_MEDIA_TYPE = "media_type" in bpy.types.ImageFormatSettings.bl_rna.properties  # 5.0+


def engine_id(name: str) -> str:
    """This Blender's id of render engine ``name`` (``BLENDER_EEVEE``, ``CYCLES``, ``BLENDER_WORKBENCH``)."""
    return _EEVEE if name in ("BLENDER_EEVEE", "BLENDER_EEVEE_NEXT") else name


def engine_name(engine_id_: str) -> str:
    """The inverse of :func:`engine_id`: our (5.0) name of this Blender's engine id."""
    return "BLENDER_EEVEE" if engine_id_ in ("BLENDER_EEVEE", "BLENDER_EEVEE_NEXT") else engine_id_


def file_format_values(file_format: str) -> list[tuple[str, str]]:
    """The ``ImageFormatSettings`` attributes to set, in order, for ``file_format`` ("PNG", "JPEG",
    "OPEN_EXR", or "OPEN_EXR_MULTILAYER" for a multilayer EXR)."""
    if not _MEDIA_TYPE:
        return [("file_format", file_format)]
    if file_format == "OPEN_EXR_MULTILAYER":
        return [("media_type", "MULTI_LAYER_IMAGE")]  # its only format: OPEN_EXR
    return [("media_type", "IMAGE"), ("file_format", file_format)]


@contextmanager
def file_format(settings: bpy.types.ImageFormatSettings, fmt: str) -> Iterator[None]:
    """Set ``settings`` to ``fmt`` (see :func:`file_format_values`) and restore the old format after."""
    saved = [(attr, getattr(settings, attr)) for attr, _ in file_format_values(fmt)]
    saved += [(a, getattr(settings, a)) for a in ("file_format",) if a not in dict(saved)]
    try:
        for attr, value in file_format_values(fmt):
            setattr(settings, attr, value)
        yield
    finally:
        for attr, value in saved:  # media_type first: it decides which file formats are valid
            setattr(settings, attr, value)


def strips(editor: bpy.types.SequenceEditor):
    """The top-level strips of a Sequencer (``strips`` from 4.4, ``sequences`` before)."""
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def all_strips(editor: bpy.types.SequenceEditor):
    """Every strip, also inside meta strips."""
    return editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all


def node_tree(owner):
    """The shader node tree of a material or world, created on 4.x where nodes are opt-in."""
    if owner.node_tree is None:
        owner.use_nodes = True
    return owner.node_tree


def fcurves(owner) -> list:
    """The F-curves animating ``owner`` (an object or other ID) through its action, on every version."""
    anim = getattr(owner, "animation_data", None)
    if anim is None or anim.action is None:
        return []
    action = anim.action
    if getattr(action, "layers", None):  # layered action (4.4+): the channelbag of the owner's slot
        slot = anim.action_slot
        return [fc for layer in action.layers for strip in layer.strips for bag in strip.channelbags
                if bag.slot == slot for fc in bag.fcurves]
    return list(action.fcurves)
