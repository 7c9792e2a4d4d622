"""perf/gpu_smoke.py: the GPU smoke check runs its 7 checks with --tiny on the CPU (what CI runs), records a
failing or slow check without stopping, and builds the full-size models from their public configs."""

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCRIPT = Path(__file__).resolve().parents[1] / "perf" / "gpu_smoke.py"


@pytest.fixture(scope="module")
def smoke():
    spec = importlib.util.spec_from_file_location("gpu_smoke", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_smoke"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("gpu_smoke", None)


def test_tiny_smoke_check_passes_all_seven_checks(smoke, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert smoke.main(["--tiny", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == report  # one JSON report on stdout
    assert report["ok"] and report["kind"] == "tiny" and report["random_weights"]
    checks = report["checks"]
    assert [c["name"] for c in checks] == list(smoke.CHECKS)
    assert [c["check"] for c in checks] == list(range(1, 8))
    by = {c["name"]: c for c in checks}
    assert by["off_equals_stock"]["layers"] == 6 and by["off_equals_stock"]["max_rel_diff"] <= 1e-5
    cases = by["gather_equals_dense"]["cases"]
    assert {(c["n"], c["k"]) for c in cases} == {(64, 1), (64, 4), (256, 1), (256, 4)}
    assert by["zero_stage_frame"]["first_frame_s"] > 0
    for mode in ("mode1", "mode2"):
        train = by["flux_train_step"][mode]
        assert train["base_frozen"] and len(train["losses"]) == 2 and train["seconds_per_step"] > 0
    assert by["flux_train_step"]["mode2"]["resolution"] == [32, 32]  # target 32, conditions 16
    assert by["flux_train_step"]["mode2_masked_adapters"]["ok"]
    assert by["noisy_pass_ignores_adapters"]["max_abs_diff_vs_off"] == {"routed": 0.0, "masked": 0.0}
    assert by["checkpointing_grads"]["max_rel_diff"] <= by["checkpointing_grads"]["tolerance"]
    assert by["restore"]["frames"] == 2


def test_a_failing_or_slow_check_is_recorded_and_the_next_one_runs(smoke, monkeypatch):
    def broken(self):
        raise RuntimeError("out of memory (pretend)")

    def slow(self):
        time.sleep(30)
        return {"ok": True}

    monkeypatch.setattr(smoke.Smoke, "off_equals_stock", broken)
    monkeypatch.setattr(smoke.Smoke, "zero_stage_frame", slow)
    plan = smoke.Plan.make(tiny=True, device="cpu")
    t0 = time.perf_counter()
    report = smoke.run(plan, timeout=0.5, only={1, 2, 3})
    assert time.perf_counter() - t0 < 20
    first, second, third = report["checks"]
    assert not first["ok"] and "out of memory (pretend)" in first["error"]
    assert second["ok"]  # ran after the failure
    assert not third["ok"] and third["error"].startswith("CheckTimeout")
    assert not report["ok"]


def test_full_size_needs_a_gpu(smoke, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert smoke.main([]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err


def test_public_configs_build_the_full_size_models():
    """On the meta device (no memory, no compute): the published parameter counts."""
    from diffusers import AutoencoderKL, FluxTransformer2DModel, UNet2DConditionModel

    from z2h.models.flux import flux_dev_config
    from z2h.models.sd import sd21_base_config

    with torch.device("meta"):
        flux = FluxTransformer2DModel(**flux_dev_config()["transformer"])
        flux_vae = AutoencoderKL(**flux_dev_config()["vae"])
        unet = UNet2DConditionModel(**sd21_base_config()["unet"])
        sd_vae = AutoencoderKL(**sd21_base_config()["vae"])

    def count(m):
        return sum(p.numel() for p in m.parameters())

    assert count(flux) == 11_901_408_320  # FLUX.1-dev: "12 B"
    assert count(unet) == 865_910_724  # SD 2 U-Net: 866 M
    assert 83e6 < count(flux_vae) < 85e6 and 83e6 < count(sd_vae) < 85e6
    assert flux_vae.config.latent_channels == 16 and sd_vae.config.latent_channels == 4


def test_checks_5_to_7_run_on_fresh_adapters_when_training_failed(smoke, monkeypatch):
    def broken(self):
        raise RuntimeError("CUDA out of memory (pretend)")

    monkeypatch.setattr(smoke.Smoke, "flux_train_step", broken)
    report = smoke.run(smoke.Plan.make(tiny=True, device="cpu"), timeout=60, only={4, 5, 6})
    train, noisy, ckpt = report["checks"]
    assert not train["ok"] and "out of memory" in train["error"]
    assert noisy["ok"] and ckpt["ok"] and ckpt["max_rel_diff"] <= ckpt["tolerance"]
