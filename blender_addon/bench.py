"""Where the benchmark builder's code comes from: the only place that knows.

In the add-on zip, ``z2h addon build`` copies ``benchmark/`` in as the subpackage ``benchmark``; run from
a checkout (tests, ``z2h.blender_addon``), the same code is the installed package ``z2h.benchmark``.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def module(name: str) -> ModuleType:
    """The benchmark builder's module ``name`` (e.g. "render", "spec")."""
    try:
        return importlib.import_module(f".benchmark.{name}", __package__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.benchmark":
            raise  # the bundled copy exists but something inside it is missing: a real error
    return importlib.import_module(f"z2h.benchmark.{name}")
