"""The tiny scene spec of the benchmark CLI, robustness and Ray tests: 16x16, 2 frames, renders in seconds."""


def tiny_spec(dx: float = 0.3) -> str:
    """A red cube that slides ``dx`` to the right and is recoloured blue."""
    return f"""
frames = 2
resolution = [16, 16]
[camera]
location = [0, -5, 2]
[[objects]]
name = "hero"
shape = "cube"
material = {{ base_color = [0.8, 0.1, 0.1] }}
[[objects.keys]]
frame = 0
[[objects.keys]]
frame = 1
location = [{dx}, 0, 0]
[edit]
object = "hero"
kind = "color"
color = [0.1, 0.2, 0.9]
"""
