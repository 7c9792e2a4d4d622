"""Blender-Color-Edit benchmark builder (Blender side: bpy, numpy and the standard library only)."""
