"""'Set up backend': a virtual environment with the pinned torch and z2h, made from Blender, so a user
needs no terminal. Each step is a subprocess followed like every other task (a :class:`~.jobs.Run`
with a log); it needs the network, so it respects Blender's Allow Online Access setting."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import bpy

from .client import is_windows

# The backend's pins (pyproject.toml, ml extra): a bare `torch` would pull a multi-GB CUDA build.
TORCH = ("torch==2.14.1", "torchvision==0.29.1")


def venv_python(folder: str | os.PathLike) -> Path:
    """The python of the venv in ``folder``."""
    folder = Path(folder)
    return folder / "Scripts" / "python.exe" if is_windows() else folder / "bin" / "python"


def z2h_requirement(source: str) -> str:
    """``source`` (a z2h checkout folder, a wheel, or a pip requirement; empty: ``z2h``) with the ML extra."""
    source = source.strip() or "z2h"
    if "/" in source or os.sep in source or source.endswith(".whl"):  # a path, not a package name
        source = os.path.abspath(os.path.expanduser(source))
    return source if "[" in source else f"{source}[ml]"


def setup_steps(folder: str | os.PathLike, source: str = "",
                base_python: str | None = None) -> list[tuple[str, list[str]]]:
    """(label, argv) of each step: venv, pip, torch (pinned), z2h, the VGG16 weights."""
    python = str(venv_python(folder))
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
    return [
        ("Creating the environment", [base_python or sys.executable, "-m", "venv", str(folder)]),
        ("Installing torch (a large download)", [*pip, *TORCH]),
        ("Installing z2h", [*pip, z2h_requirement(source)]),
        ("Fetching the VGG16 weights", [python, "-m", "z2h", "weights", "fetch"]),
    ]


def online_access() -> bool:
    """Blender's Preferences › System › Allow Online Access (4.2+; older Blenders have no such switch)."""
    return bool(getattr(bpy.app, "online_access", True))
