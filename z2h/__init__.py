"""z2h: reference-based video appearance editing (Zero-to-Hero, arXiv 2505.23134).

Importing this package is cheap on purpose: the Blender side imports ``z2h.benchmark`` with bpy and
numpy<2 only, so nothing here may import torch or the ML stack.
"""

__version__ = "0.1.0"

# Packages whose versions shape results; recorded in every run.json.
RECORDED_PACKAGES = ("z2h", "numpy", "torch", "torchvision", "diffusers", "opencv-python-headless",
                     "scikit-image", "lpips", "pandas")


def versions() -> dict[str, str]:
    """Python's version and those of the installed RECORDED_PACKAGES (for run records)."""
    import platform
    from importlib import metadata

    found = {"python": platform.python_version()}
    for pkg in RECORDED_PACKAGES:
        try:
            found[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return found
