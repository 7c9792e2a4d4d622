"""The streaming edit: lazy frame sequences, per-frame stores, anchor order, working resolution."""

import numpy as np
import pytest
from eval_fixtures import pan_video

from z2h.frames import ArrayStore, FolderFrames, FolderStore, ResizedFrames, anchor_order
from z2h.io import write_frames, write_image
from z2h.pipeline import EditConfig, edit, run_edit, working_shape

FAST = dict(work_size=64, hero_steps=30, pseudo_pairs=1, time_budget_s=None, threads=1, crop=32)


pytestmark = pytest.mark.usefixtures("random_vgg_cache")


def test_anchor_order_visits_every_frame_once_after_its_neighbour_towards_the_anchor():
    order = anchor_order(6, 2)
    assert order == [(2, None), (3, 2), (4, 3), (5, 4), (1, 2), (0, 1)]
    seen = set()
    for i, prev in order:
        assert prev is None or prev in seen
        seen.add(i)
    assert seen == set(range(6))
    with pytest.raises(ValueError, match="anchor 6 out of range"):
        anchor_order(6, 6)


def test_folder_frames_read_lazily_and_check_sizes_up_front(tmp_path):
    v = pan_video(frames=4, size=(32, 40))
    write_frames(tmp_path / "v", v["original"])
    frames = FolderFrames(tmp_path / "v")
    assert frames.shape == (4, 32, 40, 3) and len(frames) == 4
    np.testing.assert_array_equal(frames[2], v["original"][2])
    assert not frames[2].flags.writeable  # shared with the next reader of the same frame
    small = ResizedFrames(frames, (16, 20))
    assert small.shape == (4, 16, 20, 3) and small[3].shape == (16, 20, 3)
    write_image(tmp_path / "v" / "0002.png", v["original"][2][:, :30])
    with pytest.raises(ValueError, match="0002.png is 30x32, but 0000.png is 40x32"):
        FolderFrames(tmp_path / "v")


def test_streamed_edit_matches_the_in_memory_edit_and_writes_each_frame_when_done(tmp_path):
    v = pan_video(frames=5, size=(48, 48), step=(2, 1))
    write_frames(tmp_path / "v", v["original"])
    config = EditConfig.from_options(**FAST)
    expected = edit(v["original"], 1, v["edited"][1], config)
    written = []
    zero = FolderStore(tmp_path / "zero", (5, 48, 48, 3), lambda i, p: written.append(("zero", i)))
    out = FolderStore(tmp_path / "frames", (5, 48, 48, 3), lambda i, p: written.append(("frames", i)))
    run_edit(FolderFrames(tmp_path / "v"), 1, v["edited"][1], zero, out, config)
    # the anchor first, then outward; every zero frame before the first final frame
    assert written == [("zero", i) for i in (1, 2, 3, 4, 0)] + [("frames", i) for i in (1, 2, 3, 4, 0)]
    for t in range(5):
        np.testing.assert_array_equal(out[t], expected.frames[t])
        np.testing.assert_array_equal(zero[t], expected.zero_frames[t])


def test_frames_already_done_are_not_redone():
    v = pan_video(frames=4, size=(48, 48))
    config = EditConfig.from_options(**FAST)
    zero, out = ArrayStore((4, 48, 48, 3)), ArrayStore((4, 48, 48, 3))
    zero.array[2] = 7
    zero.done.add(2)
    out.array[3] = 9
    out.done.add(3)
    run_edit(v["original"], 0, v["edited"][0], zero, out, config)
    assert (zero.array[2] == 7).all() and (out.array[3] == 9).all()
    assert zero.done == out.done == {0, 1, 2, 3}


def test_working_resolution_runs_small_and_returns_full_size():
    assert working_shape(1080, 1920, 512) == (288, 512)
    assert working_shape(100, 80, 512) == (100, 80) and working_shape(100, 80, None) == (100, 80)
    v = pan_video(frames=3, size=(96, 96), step=(2, 1))
    config = EditConfig.from_options(**FAST, work_resolution=48)
    assert config.settings()["work_resolution"] == 48 and "work_resolution" not in \
        EditConfig.from_options(**FAST).settings()  # unset: eval cache keys of earlier runs stay valid
    res = edit(v["original"], 0, v["edited"][0], config)
    assert res.zero_frames.shape == (3, 48, 48, 3) and res.frames.shape == (3, 96, 96, 3)
    np.testing.assert_array_equal(res.frames[0], v["edited"][0])
    with pytest.raises(ValueError, match="lift must be one of"):
        EditConfig.from_options(lift="nearest")
