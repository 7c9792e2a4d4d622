"""z2h: reference-based video appearance editing (Zero-to-Hero, arXiv 2505.23134).

Importing this package is cheap on purpose: the Blender side imports ``z2h.benchmark`` with bpy and
numpy<2 only, so nothing here may import torch or the ML stack.
"""

__version__ = "0.1.0"
