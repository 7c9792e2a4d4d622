"""`z2h bench import`: a user's own frames become a valid benchmark that eval scores; check and eval agree."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_fixtures import make_bench, pan_video

from z2h.benchmark.check import check_benchmark
from z2h.cli import main
from z2h.eval.data import load_video
from z2h.io import read_mask, write_image


def user_folder(root, frames=11, jpg=True, rgb_masks=True):
    """original/edited as 1-based JPGs (1.jpg .. 11.jpg: natural order matters), masks as RGB PNGs."""
    v = pan_video(frames, (40, 48), (2, 0))
    for kind in ("original", "edited"):
        for t, f in enumerate(v[kind]):
            write_image(root / kind / f"{t + 1}.{'jpg' if jpg else 'png'}", f)
    for t, m in enumerate(v["masks"]):
        grey = (m * 255).astype(np.uint8)
        write_image(root / "masks" / f"mask_{t + 1}.png", np.stack([grey] * 3, -1) if rgb_masks else grey)
    return v


def test_import_jpg_frames_with_rgb_masks_and_evaluate(tmp_path, capsys):
    src, bench, results = tmp_path / "shot_A", tmp_path / "bench", tmp_path / "results"
    v = user_folder(src)
    assert main(["bench", "import", str(src), "--out", str(bench), "--anchor", "3.jpg",
                 "--tags", "handheld,recolour"]) == 0
    assert check_benchmark(bench) == ([], [])
    meta = json.loads((bench / "shot_A" / "meta.json").read_text())
    assert meta["frames"] == 11 and meta["anchor"] == 2 and meta["tags"] == ["handheld", "recolour"]
    assert "estimated from the masks" in meta["motion_source"]
    # the disk moves 2 px per frame with the pan: the mask centroid says so (a crop at the border aside)
    assert meta["per_frame"][10]["displacement_px"] == pytest.approx(16, abs=1.5)
    video = load_video(bench, "shot_A")
    assert np.array_equal(video.masks, v["masks"])  # 1-based names in natural order: 10.jpg after 9.jpg
    # JPG is not bit-exact, but each imported frame is closest to its own source frame
    err = np.abs(video.original[:, None].astype(int) - v["original"][None]).mean(axis=(2, 3, 4))
    assert (err.argmin(1) == np.arange(11)).all()
    assert main(["eval", "run", str(bench), "--methods", "no-edit,flow-dis-direct", "--out", str(results),
                 "--lpips", "none", "--progress", "none"]) == 0
    import pandas as pd

    df = pd.read_csv(results / "metrics.csv")
    assert set(df["method"]) == {"no-edit", "flow-dis-direct"} and len(df) == 22
    assert df["psnr_masked"].notna().all() and "flow_epe" not in df  # no true flow: no EPE
    dis = df[(df.method == "flow-dis-direct") & ~df.anchor]["psnr_masked"].mean()
    still = df[(df.method == "no-edit") & ~df.anchor]["psnr_masked"].mean()
    assert dis > still + 5  # the warp carries the recolour; leaving the frame unedited does not


def test_import_errors_name_the_file(tmp_path, capsys):
    src = tmp_path / "shot"
    user_folder(src, frames=4)
    (src / "masks" / "mask_4.png").unlink()
    assert main(["bench", "import", str(src), "--out", str(tmp_path / "b1")]) == 1
    assert "3 mask frames, but" in capsys.readouterr().err
    src2 = tmp_path / "shot2"
    user_folder(src2, frames=3)
    write_image(src2 / "masks" / "mask_1.png", np.zeros((40, 48, 3), np.uint8))
    assert main(["bench", "import", str(src2), "--out", str(tmp_path / "b2")]) == 1
    assert "mask of the anchor frame (1.jpg) is empty" in capsys.readouterr().err
    assert main(["bench", "import", str(src2), "--out", str(tmp_path / "b3"), "--anchor", "7"]) == 1
    assert "--anchor 7 outside 0..2" in capsys.readouterr().err
    assert main(["bench", "import", str(tmp_path / "nothing"), "--out", str(tmp_path / "b4")]) == 1
    assert "not a folder" in capsys.readouterr().err


def test_check_and_eval_agree_on_rgb_masks(tmp_path):
    bench = make_bench(tmp_path / "bench")
    mask_path = bench / "pan-left" / "mask" / "0002.png"
    grey = read_mask(mask_path)
    rgb = np.stack([(grey * 255).astype(np.uint8)] * 3, -1)
    rgb[..., 0] = 255  # a colour mask: luma decides (Pillow's "L"), in check and in eval alike
    write_image(mask_path, rgb)
    errors, _ = check_benchmark(bench)
    assert errors == []
    luma = (255 * 19595 + 0x8000) >> 16  # red channel only, outside the disk: 76, so outside
    assert luma <= 127
    assert np.array_equal(load_video(bench, "pan-left").masks[2], grey)
    # an anchor mask that is empty by that rule is an error for both
    anchor_path = bench / "pan-left" / "mask" / "0001.png"
    write_image(anchor_path, np.full(rgb.shape, (255, 0, 0), np.uint8))
    errors, _ = check_benchmark(bench)
    assert any("0001.png: empty mask at the anchor" in e for e in errors)
    with pytest.raises(ValueError, match="0001.png: empty mask at the anchor"):
        load_video(bench, "pan-left")
