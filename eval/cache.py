"""Cache keys of `z2h eval run`: a result is reused only when nothing it depends on has changed.

Two keys per (method, video), both independent of the results folder and of every other method, so a
``RESULTS/<method>/<video>/`` folder copied into another results folder of the same benchmark still
counts as cached:

- the **output key** (the method's frames): the method's name and settings, the source of the method's
  own modules (its registry module and every z2h module it imports, transitively), the versions of the
  packages that shape results, and the method's inputs (original frames, reference, anchor index);
- the **score key** (its metrics): the output key, the bytes of the frames actually in the folder, every
  file of the video in the benchmark (ground-truth edited frames, masks, meta.json, flow.npz, ...), the
  source of every module the scores depend on (:data:`SCORING_MODULE` and its z2h imports) and the
  protocol and LPIPS settings.

So a z2h change re-runs z2h only, a baseline change re-runs that baseline only, and a change to a mask
or a metric module re-scores without re-running any method. Modules that cannot change a result
(:data:`NO_EFFECT`: progress reporting) are left out so that plumbing changes keep the cache.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np

SCORING_MODULE = "z2h.eval.scoring"  # builds every score row; its z2h imports are followed
NO_EFFECT = frozenset({"z2h.progress"})  # progress bars and cancel points only
ROOT_PACKAGE = "z2h"


def digest(*parts: Any) -> str:
    """Short sha256 of arrays (their bytes), bytes, and JSON-able values, in order."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str((p.dtype.str, p.shape)).encode())
            h.update(np.ascontiguousarray(p).tobytes())
        elif isinstance(p, bytes):
            h.update(p)
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def read_source(path: Path) -> bytes:
    """The bytes a module's code hash is made of (one place, so tests can change what is seen)."""
    return Path(path).read_bytes()


def _spec(module: str):
    try:
        return importlib.util.find_spec(module)  # imports the parent PACKAGE only (never a plain module)
    except (ImportError, ValueError):
        return None


@functools.cache
def _package_dirs(package: str) -> tuple[str, ...]:
    """Folders of a package's submodules; () for a plain module or an unknown name."""
    spec = _spec(package)
    return tuple(spec.submodule_search_locations or ()) if spec else ()


@functools.cache
def _origin(module: str) -> str | None:
    """The source file of ``module``, found without importing it (nor any plain module)."""
    parent, _, leaf = module.rpartition(".")
    if parent:
        dirs = _package_dirs(parent)
        if not dirs:  # `from z2h.x.module import name`: name is not a module
            return None
        for d in dirs:
            for path in (Path(d) / leaf / "__init__.py", Path(d) / f"{leaf}.py"):
                if path.is_file():
                    return str(path)
    spec = _spec(module)  # e.g. z2h.eval, which lives in eval/ (package-dir mapping)
    return spec.origin if spec and spec.origin and spec.origin.endswith(".py") else None


def _imports(module: str, path: str) -> set[str]:
    """z2h modules ``module`` imports anywhere in its source (lazy imports in functions included)."""
    tree = ast.parse(read_source(Path(path)))
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            if base.split(".")[0] == ROOT_PACKAGE:  # `from z2h.eval import metrics` imports a submodule
                found |= {f"{base}.{a.name}" for a in node.names if _origin(f"{base}.{a.name}")}
    return {m for m in found if m.split(".")[0] == ROOT_PACKAGE and m not in NO_EFFECT and _origin(m)}


def module_closure(module: str) -> list[str]:
    """``module`` and every z2h module it imports, transitively (sorted); :data:`NO_EFFECT` left out."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = _origin(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        todo += sorted(_imports(name, path) - seen)
    return sorted(seen)


def code_hash(module: str) -> str:
    """Hash of the source of ``module`` and its z2h imports (names and bytes)."""
    modules = module_closure(module)
    if not modules:
        raise ValueError(f"cannot find the source of module {module!r}")
    return digest(*[x for m in modules for x in (m, read_source(Path(_origin(m))))])


def method_code_hash(target: str) -> str:
    """Code hash of a registry target ``"module:factory"`` (the factory's module and its imports)."""
    return code_hash(target.split(":")[0])


def scoring_code_hash() -> str:
    """Code hash of everything that computes scores (metrics, temporal, LPIPS, data loading, ...)."""
    return code_hash(SCORING_MODULE)


def method_input_hash(original: np.ndarray, reference: np.ndarray, anchor: int) -> str:
    """What a method sees: the original frames, the reference and the anchor index."""
    return digest(original, reference, int(anchor))


def folder_hash(folder: Path, pattern: str = "**/*") -> str:
    """Names and bytes of every file under ``folder`` matching ``pattern`` (sorted, hidden files skipped)."""
    folder = Path(folder)
    files = sorted(p for p in folder.glob(pattern)
                   if p.is_file() and not any(s.startswith(".") for s in p.relative_to(folder).parts))
    return digest(*[x for p in files for x in (p.relative_to(folder).as_posix(), p.read_bytes())])
