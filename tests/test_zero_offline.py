"""The offline Zero-Stage engine, its errors, the eval method and ``z2h zero`` end to end.

The VGG16 weights here are random (seeded) and saved by the tests into a private Z2H_CACHE, so the real
loading path runs without `z2h weights fetch`; the colour term plus random conv features still match.
"""

import json

import numpy as np
import pytest
import torch
from conftest import write_random_vgg_cache
from skimage import data

from z2h.cli import main
from z2h.io import read_frames, write_frames, write_image
from z2h.models.vgg import VGGFeatures
from z2h.zero_stage import ZeroStage, ZeroStageConfig, ZeroStageMethod
from z2h.zero_stage.offline import OfflineZeroStage, working_size

CFG = dict(work_size=96, batch_size=4)


@pytest.fixture
def weights(tmp_path, monkeypatch):
    monkeypatch.setenv("Z2H_CACHE", str(tmp_path / "cache"))
    return write_random_vgg_cache(tmp_path / "cache")


@pytest.fixture(scope="module")
def engine():
    """An offline engine with a seeded random VGG16 shared by the tests (saves the loading)."""
    torch.manual_seed(1)
    model = VGGFeatures(pretrained=False)
    return lambda **over: OfflineZeroStage(ZeroStageConfig(**{**CFG, **over}), model=model)


def _psnr(a, b, mask=None):
    e = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean(-1)
    e = e[mask] if mask is not None else e
    return 10 * np.log10(255**2 / e.mean())


def _recolour(img):
    """The edit: swap and scale channels (a strong, spatially uniform colour change)."""
    out = img.astype(np.float64)[..., [2, 0, 1]] * [1.0, 0.8, 0.6] + [0, 30, 0]
    return out.clip(0, 255).round().astype(np.uint8)


def _translated_video(shifts, size=96):
    """Crops of a textured photo at the given (dy, dx) offsets: a known translation per frame."""
    img = data.astronaut()
    y0, x0 = 120, 150
    return np.stack([img[y0 + dy:y0 + dy + size, x0 + dx:x0 + dx + size] for dy, dx in shifts])


def test_known_translation_is_recovered(engine):
    shifts = [(0, 0), (8, 12), (-12, 20), (16, -8)]
    frames = _translated_video(shifts)
    gt = _recolour(frames)
    out = engine()(frames, 0, gt[0])
    assert out.shape == frames.shape and out.dtype == np.uint8
    for t, (dy, dx) in enumerate(shifts[1:], 1):
        valid = np.zeros(frames.shape[1:3], bool)  # target pixels whose content is in the anchor, 8 px margin
        valid[max(0, -dy) + 8:96 - max(0, dy) - 8, max(0, -dx) + 8:96 - max(0, dx) - 8] = True
        got, unedited = _psnr(out[t], gt[t], valid), _psnr(frames[t], gt[t], valid)
        assert got > 30 and got > unedited + 15, (t, got, unedited)


def test_identity_gives_the_reference(engine):
    frames = _translated_video([(0, 0), (0, 0)], size=64)
    reference = _recolour(frames[0])
    got = {}
    for transfer in ("ratio", "residual", "copy"):
        out = engine(transfer=transfer, work_size=64)(frames, 1, reference)
        got[transfer] = min(_psnr(out[0], reference), _psnr(out[1], reference))
    assert got["ratio"] > 30 and got["residual"] > 30 and got["copy"] > 18, got
    # copy moves the reference's own (token-resolution) colour: blurrier than applying a change.
    assert got["ratio"] > got["copy"] + 5, got


def test_general_k_and_progress(engine):
    frames = _translated_video([(0, 0), (4, 4), (8, 0)], size=64)
    calls = []
    out = engine(k=8, batch_size=2, work_size=64)(frames, 0, _recolour(frames[0]),
                                                   progress=lambda d, t: calls.append((d, t)))
    assert out.shape == frames.shape
    assert calls == [(0, 3), (2, 3), (3, 3)]
    # k = 8 averages 8 matches: the result differs from k = 1 (which is a pure gather).
    k1 = engine(work_size=64)(frames, 0, _recolour(frames[0]))
    assert not np.array_equal(out[1:], k1[1:])


def test_bad_inputs_have_clear_errors(weights):
    frames = _translated_video([(0, 0), (4, 4)], size=32)
    stage = ZeroStage(ZeroStageConfig(**CFG))
    with pytest.raises(ValueError, match=r"reference image is 16x16 .* video frames are 32x32"):
        stage(frames, 0, frames[0, :16, :16])
    for anchor in (2, -1):
        with pytest.raises(ValueError, match=rf"anchor frame {anchor} is out of range: the video has 2 fr"):
            stage(frames, anchor, frames[0])
    with pytest.raises(ValueError, match="video is empty"):
        stage(frames[:0], 0, frames[0])
    with pytest.raises(ValueError, match="uint8"):
        stage(frames.astype(np.float32), 0, frames[0])
    with pytest.raises(ValueError, match="transfer must be one of"):
        ZeroStageConfig(transfer="warp")
    with pytest.raises(ValueError, match="engine must be one of"):
        ZeroStageConfig(engine="magic")


def test_missing_weights_name_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("Z2H_CACHE", str(tmp_path / "empty"))
    frames = _translated_video([(0, 0)], size=32)
    with pytest.raises(FileNotFoundError, match="z2h weights fetch"):
        ZeroStage()(frames, 0, frames[0])


def test_loaded_weights_are_the_saved_ones(weights):
    from safetensors.torch import load_file

    saved = load_file(str(weights / "vgg16_features.safetensors"))
    model = VGGFeatures(("relu2_2",))
    assert len(model.features) == 9
    assert torch.equal(model.features[7].weight, saved["7.weight"])
    assert not VGGFeatures(("relu2_2",), pretrained=False).features[7].weight.equal(saved["7.weight"])


def test_method_and_engine_dispatch(weights):
    from z2h.eval.methods import get_method

    method = get_method("z2h-zero", k=4, work_size=32)
    assert method.name == "z2h-zero" and isinstance(method, ZeroStageMethod)
    s = method.settings()
    assert s["engine"] == "offline" and s["k"] == 4 and "zero_model" not in s
    frames = _translated_video([(0, 0), (4, 0)], size=32)
    assert method(frames, 0, frames[0]).shape == frames.shape
    diffusion = ZeroStage(engine="diffusion", zero_model="/nowhere")
    assert type(diffusion.engine).__name__ == "DiffusionZeroStage"
    assert diffusion.settings()["engine"] == "diffusion" and "colour_weight" not in diffusion.settings()


def test_working_size_keeps_aspect():
    assert working_size(720, 1280, 256, 8) == (144, 256)
    assert working_size(96, 96, 256, 8) == (256, 256)
    assert working_size(100, 30, 64, 8) == (64, 16)


def test_cli_end_to_end(weights, tmp_path, capsys):
    frames = _translated_video([(0, 0), (4, 8), (8, 16), (12, 24)], size=64)
    write_frames(tmp_path / "video", frames)
    write_image(tmp_path / "ref.png", _recolour(frames[1]))
    out = tmp_path / "out"
    argv = ["zero", "--video", str(tmp_path / "video"), "--anchor", "1", "--reference",
            str(tmp_path / "ref.png"), "--out", str(out), "--progress", "json", "--work-size", "64"]
    assert main(argv) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[-1] == {"event": "done", "out": str(out), "partial": False,
                          "message": events[-1]["message"]}
    assert [e["step"] for e in events if e.get("stage") == "zero"][-1] == 4
    result = read_frames(out)
    assert result.shape == frames.shape
    assert _psnr(result[1], _recolour(frames[1])) > 30
    record = json.loads((out / "run.json").read_text())
    assert record["engine"] == "offline" and record["frames"] == 4 and record["settings"]["k"] == 1
    assert record["timing"]["zero_s"] > 0 and "torch" in record["versions"]

    assert main(argv) == 1  # non-empty --out is refused
    assert "not empty; pass --overwrite" in capsys.readouterr().out
    write_image(out / "0009.png", frames[0])  # a stale frame of an earlier, longer run
    assert main([*argv, "--overwrite", "--k", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"000{i}.png" for i in range(4)] + ["run.json"]
    assert json.loads((out / "run.json").read_text())["settings"]["k"] == 2
    capsys.readouterr()

    bad = [*argv[:4], "7", *argv[5:8], str(tmp_path / "out2"), "--progress", "none"]
    assert bad[4] == "7" and bad[8] == str(tmp_path / "out2")
    assert main(bad) == 1
    assert "anchor frame 7 is out of range: the video has 4 frames" in capsys.readouterr().err


@pytest.mark.parametrize("work_size", [32, 64])  # relu2_2: 64 tokens < 128 channels, and 256 tokens > 128
def test_basis_is_the_principal_subspace(work_size):
    e = OfflineZeroStage(ZeroStageConfig(work_size=work_size, feature_dim=16, layers=("relu2_2",)),
                         model=VGGFeatures(("relu2_2",), pretrained=False))
    anchor = torch.from_numpy(_translated_video([(0, 0)], size=work_size)).permute(0, 3, 1, 2).float() / 255
    size = (work_size, work_size)
    basis = e.basis(anchor, size)
    feat = e.tokens(anchor, size)[0][0, :, :-4].double()
    assert basis.shape == (128, 16)
    assert torch.allclose(basis.T.double() @ basis.double(), torch.eye(16, dtype=torch.float64), atol=1e-4)
    top = torch.linalg.svdvals(feat)[:16].pow(2).sum()
    assert torch.isclose((feat @ basis.double()).pow(2).sum(), top, rtol=1e-4)
