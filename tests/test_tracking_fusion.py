"""z2h v2 additions on synthetic videos with known answers: tracking, colour lookup, flow fusion."""

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from z2h.color_transform import ColourTransform
from z2h.flow_fusion import FusionConfig, candidates, fuse
from z2h.tracking import edit_region, fb_check, track

SIZE = 96


def _texture(rng, h, w, base):
    """A smooth random pattern around ``base`` colour (flow needs texture to lock on)."""
    import cv2

    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)
    noise = noise / noise.std()
    return np.clip(np.array(base, np.float32) * (1 + 0.3 * noise[..., None]), 0, 255)


def twins_video(frames=8, step=3, edited_colour=(200, 40, 30)):
    """Two identical textured squares on a textured floor, moving apart; only the left one is edited.

    Returns original, edited (ground truth) frames and masks of the edited and the unedited square.
    """
    rng = np.random.default_rng(0)
    floor = _texture(rng, SIZE, SIZE + 8 * frames, (90, 110, 90))
    skin = _texture(rng, 24, 24, (40, 90, 200))
    gain = np.array(edited_colour, np.float32) / np.array((40, 90, 200), np.float32)
    orig, edit, m_edit, m_twin = [], [], [], []
    for t in range(frames):
        o = floor[:, t : t + SIZE].copy()
        e = o.copy()
        me, mt = np.zeros((SIZE, SIZE), bool), np.zeros((SIZE, SIZE), bool)
        for x0, y0, mask, edited in ((20 - step * t // 2, 30, me, True), (50 + step * t, 40, mt, False)):
            o[y0 : y0 + 24, x0 : x0 + 24] = skin
            e[y0 : y0 + 24, x0 : x0 + 24] = np.clip(skin * gain, 0, 255) if edited else skin
            mask[y0 : y0 + 24, x0 : x0 + 24] = True
        orig.append(o)
        edit.append(e)
        m_edit.append(me)
        m_twin.append(mt)
    as8 = lambda xs: np.stack(xs).round().astype(np.uint8)  # noqa: E731
    return as8(orig), as8(edit), np.stack(m_edit), np.stack(m_twin)


def psnr_in(pred, gt, masks, skip=0):
    vals = []
    for t in range(len(gt)):
        if t != skip and masks[t].any():
            d = pred[t].astype(float)[masks[t]] - gt[t][masks[t]]
            vals.append(10 * np.log10(255**2 / max((d**2).mean(), 1e-6)))
    return float(np.mean(vals))


def checker_edit(orig, m_edit):
    """Texture edit: a checker pattern on the edited square, carried with its motion."""
    cells = (np.indices((24, 24)) // 6).sum(0) % 2
    pattern = np.where(cells[..., None] == 1, (230, 200, 40), (120, 20, 160)).astype(np.uint8)
    edit = orig.copy()
    for t in range(len(orig)):
        ys, xs = np.nonzero(m_edit[t])
        edit[t][ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = pattern
    return edit


def naive_recolour(orig, anchor, reference):
    """What appearance matching does with twins: every look-alike pixel gets the edit."""
    ct = ColourTransform().fit(orig[anchor], reference, edit_region(orig[anchor], reference))
    return np.stack([ct.apply(f) for f in orig])


def test_edit_region_is_where_the_reference_differs():
    orig, edit, m_edit, _ = twins_video(frames=2)
    region = edit_region(orig[0], edit[0]) > 0.5
    assert region[m_edit[0]].all()  # all of the edit ...
    assert region.sum() <= (24 + 2) ** 2  # ... and at most a 1-pixel rim (the 3x3 noise blur) around it


def test_fb_check_flags_inconsistent_flow():
    h, w = 20, 30
    right = np.zeros((h, w, 2), np.float32)
    right[..., 0] = 2
    assert fb_check(right, -right)[:, :-2].all()  # consistent inside the frame
    assert not fb_check(right, right)[5:15, 5:25].any()  # going forth and forth again is not a round trip


def test_tracking_keeps_the_unedited_twin_unchanged():
    orig, edit, m_edit, m_twin = twins_video()
    naive = naive_recolour(orig, 0, edit[0])
    assert psnr_in(naive, edit, m_twin) < 20  # a global colour map recolours the twin too
    out, stats = fuse(orig, 0, edit[0], naive, naive, FusionConfig())
    assert psnr_in(out, edit, m_twin) >= 40  # the twin keeps its original pixels
    assert psnr_in(out, edit, m_edit) >= 25
    assert m_edit[0].sum() <= stats["edit_region_px"] <= 26**2


def test_identity_survives_without_the_fill_fallback_only_through_flow():
    orig, edit, m_edit, m_twin = twins_video()
    seed = edit_region(orig[0], edit[0])
    tr = track(orig, 0, seed, candidates=np.ones(orig.shape[:3], np.float32))  # "everything looks edited"
    labels = tr.labels > 0.5
    assert labels[m_twin].mean() < 0.02  # the twin never takes the edited label
    assert labels[m_edit].mean() > 0.95


def test_object_that_leaves_and_returns_is_redetected_by_correspondence():
    orig, edit, m_edit, _ = twins_video(frames=6)
    # frames 2-3 lose the edited square (as if it left the frame): cut it out of the video
    orig, edit = orig.copy(), edit.copy()
    for t in (2, 3):
        orig[t][m_edit[t]] = orig[t][~m_edit[t] & ~np.roll(m_edit[t], 30, 1)][: m_edit[t].sum()]
        edit[t] = orig[t]
    cand = candidates(naive_recolour(orig, 0, edit[0]), orig)
    tr = track(orig, 0, edit_region(orig[0], edit[0]), cand)
    assert (tr.labels[5] > 0.5)[m_edit[5]].mean() > 0.9  # back in view: labelled again


@pytest.mark.parametrize("gain", [(1.6, 0.5, 0.4), (0.5, 0.9, 1.4)])
def test_colour_lookup_reproduces_a_recolouring_exactly(gain):
    orig, _, m_edit, _ = twins_video(frames=2)
    rng = np.random.default_rng(1)
    frame = orig[0]
    edited = frame.copy()
    edited[m_edit[0]] = np.clip(frame[m_edit[0]] * np.array(gain), 0, 255).round().astype(np.uint8)
    ct = ColourTransform().fit(frame, edited, m_edit[0].astype(np.float32))
    out = ct.apply(frame)
    assert psnr_in(out[None], edited[None], m_edit[:1], skip=-1) > 38
    # a texture-like edit (one colour -> many) is flagged unreliable; the plain recolouring is not
    assert ct.assess(frame, 6.0)[0][m_edit[0]].mean() > 0.8
    scrambled = frame.copy()
    scrambled[m_edit[0]] = rng.integers(0, 256, (m_edit[0].sum(), 3))
    ct2 = ColourTransform().fit(frame, scrambled, m_edit[0].astype(np.float32))
    assert ct2.assess(frame, 6.0)[0][m_edit[0]].mean() < 0.2


def test_lookup_reads_the_table_with_the_weights_the_fit_splats_with():
    from z2h.color_transform import corners, lookup

    rng = np.random.default_rng(2)
    table = rng.normal(0, 20, (9, 9, 9, 3))
    colours = rng.integers(0, 256, (500, 3)).astype(np.uint8)
    colours[:3] = [[0, 0, 0], [255, 255, 255], [0, 128, 255]]  # the table's faces and corners
    idx, wts = corners(colours, 9)
    splat = np.einsum("nk,nkc->nc", wts, table.reshape(-1, 3)[idx])
    np.testing.assert_allclose(lookup(colours, table), splat, atol=1e-9)
    np.testing.assert_allclose(lookup(colours[:, None], table[..., 0])[:, 0], splat[:, 0], atol=1e-9)


def test_flow_fusion_carries_a_texture_edit_the_restorer_missed():
    orig, _, m_edit, _ = twins_video()
    edit = checker_edit(orig, m_edit)
    no_help = orig.copy()  # a restorer that learnt nothing
    flow_only = FusionConfig(colour=False)
    out, stats = fuse(orig, 0, edit[0], no_help, no_help, flow_only)
    inner = np.stack([binary_erosion(m, iterations=3) for m in m_edit])  # flow is least sure at edges
    assert psnr_in(no_help, edit, inner) < 12
    assert psnr_in(out, edit, inner) > 25
    assert stats["flow_weight_mean"] > 0


def test_paper_preset_turns_every_addition_off():
    from z2h.pipeline import EditConfig

    cfg = EditConfig.from_options(preset="paper")
    assert not cfg.fusion.enabled and cfg.hero.pseudo_pairs == 0 and cfg.zero.k == 1
    assert cfg.settings()["preset"] == "paper"
    assert EditConfig.from_options().fusion.enabled
    with pytest.raises(ValueError, match="unknown preset"):
        EditConfig.from_options(preset="fast")


def test_gate_follows_a_thin_part_the_track_lost_but_not_a_separate_look_alike():
    """The end of a turning helix comes into view far from the tracked label: the gate follows the
    clearly recoloured pixels connected to the label; a separate look-alike stays out."""
    from z2h.flow_fusion import Fuser

    frame = np.full((SIZE, SIZE, 3), 120, np.uint8)
    frame[10:13, 10:90] = (200, 40, 30)  # a thin bar, 3 px x 80 px
    frame[40:60, 40:60] = (200, 40, 30)  # a separate look-alike
    looked_up = frame.astype(np.float32)
    looked_up[(frame == (200, 40, 30)).all(-1)] = (40, 90, 200)  # the lookup recolours both
    label = np.zeros((SIZE, SIZE), np.float32)
    label[10:13, 10:20] = 1  # the track kept only one end of the bar
    fuser = Fuser(0, frame, frame, FusionConfig())
    gate = fuser.gate(label, looked_up, frame.astype(np.float32))
    assert (gate[11, 10:80] > 0.5).all()  # 60 px along the bar, beyond the 16-px near zone
    assert gate[45:55, 45:55].max() == 0


def test_temporal_smoothing_steadies_a_noisy_restorer_on_a_still_video():
    """Still video, so the flow is zero and consistent everywhere: a restorer whose frames carry
    independent noise (sigma) becomes the recursive average s_t = a s_(t-1) + (1 - a) r_t. With a = 0.5
    and a clean anchor, frame-to-frame differences shrink from sigma sqrt(2) to sigma sqrt(1/3) in the
    long run: a ratio of sqrt(1/6) = 0.41."""
    rng = np.random.default_rng(0)
    n = 24
    frame = _texture(rng, SIZE, SIZE, (120, 110, 100)).astype(np.uint8)
    frames = np.repeat(frame[None], n, 0)
    reference = np.clip(frame.astype(int) + 30, 0, 255).astype(np.uint8)
    noisy = reference[None] + rng.normal(0, 8, (n, SIZE, SIZE, 3))
    restored = np.clip(noisy, 0, 255).round().astype(np.uint8)
    restored[0] = reference
    steady = FusionConfig(track=False, colour=False, flow=False, temporal=0.5)
    out, _ = fuse(frames, 0, reference, restored, restored, steady)

    def jitter(video):
        return float(np.diff(video[8:].astype(float), axis=0).std())

    ratio = jitter(out) / jitter(restored)
    assert 0.33 < ratio < 0.5, ratio
    assert abs(out[8:].astype(float).mean() - reference.mean()) < 1  # steadier, not biased
    plain, _ = fuse(frames, 0, reference, restored, restored, FusionConfig(track=False, colour=False,
                                                                           flow=False, temporal=0.0))
    assert np.array_equal(plain, restored)  # every addition off: the restorer's frames as they were
    with pytest.raises(ValueError, match="temporal"):
        FusionConfig(temporal=1.0)


def test_a_look_alike_touching_the_edited_object_stays_unchanged():
    """The edited square slides until it touches its static twin. Connected to the tracked label, the twin
    would join the gate (the lookup recolours it too); its flow chain leads back to a pixel the user left
    as it was in the anchor, though, so it is vetoed and keeps its pixels."""
    rng = np.random.default_rng(1)
    floor = _texture(rng, SIZE, SIZE, (90, 110, 90))
    skin = _texture(rng, 24, 24, (40, 90, 200))
    gain = np.array((200, 40, 30), np.float32) / np.array((40, 90, 200), np.float32)
    orig, edit, twin = [], [], np.zeros((SIZE, SIZE), bool)
    twin[40:64, 59:83] = True
    for t in range(8):
        o = floor.copy()
        o[twin] = skin.reshape(-1, 3)
        e = o.copy()
        x0 = 14 + 3 * t  # touches the twin (x = 59) at t = 7
        o[40:64, x0 : x0 + 24] = skin
        e[40:64, x0 : x0 + 24] = np.clip(skin * gain, 0, 255)
        orig.append(o)
        edit.append(e)
    orig, edit = (np.stack(v).round().astype(np.uint8) for v in (orig, edit))
    naive = naive_recolour(orig, 0, edit[0])
    far_side = np.zeros_like(twin)
    far_side[:, 63:] = True  # the twin beyond the gate's 3-px rim
    masks = np.repeat((twin & far_side)[None], 8, 0)
    assert psnr_in(naive, edit, masks) < 20
    out, _ = fuse(orig, 0, edit[0], naive, naive, FusionConfig())
    assert psnr_in(out[6:], edit[6:], masks[6:]) >= 40


def test_direct_match_to_the_anchor_carries_a_texture_edit_across_a_broken_chain():
    """The edited square vanishes for one frame (a glitch), so no flow chain reaches the anchor after it.
    Matching later frames to the anchor directly brings the texture edit back; the chain alone cannot."""
    orig, _, m_edit, _ = twins_video(frames=6)
    edit = checker_edit(orig, m_edit)
    glitch = orig.copy()
    glitch[2][m_edit[2]] = orig[2][~m_edit[2]].mean(0).astype(np.uint8)  # the square hidden in frame 2
    no_help = glitch.copy()  # a restorer that learnt nothing; the Zero-Stage found where the edit is
    inner = np.stack([binary_erosion(m, iterations=3) for m in m_edit])[3:]
    direct, _ = fuse(glitch, 0, edit[0], no_help, edit, FusionConfig(colour=False))
    chain_only, _ = fuse(glitch, 0, edit[0], no_help, edit, FusionConfig(colour=False, direct=False))
    assert psnr_in(chain_only[3:], edit[3:], inner, skip=-1) < 15
    assert psnr_in(direct[3:], edit[3:], inner, skip=-1) > 20


def test_gate_has_no_holes():
    """A recoloured ring whose centre the edit left as it was (e.g. a white checker square): the gate
    covers the centre too, so its anti-aliased edge is not cut off."""
    from z2h.flow_fusion import Fuser

    frame = np.full((SIZE, SIZE, 3), 120, np.uint8)
    label = np.zeros((SIZE, SIZE), np.float32)
    label[20:70, 20:70] = 1
    label[35:55, 35:55] = 0  # the unchanged centre, 20 px wide
    fuser = Fuser(0, frame, frame, FusionConfig())
    gate = fuser.gate(label, frame.astype(np.float32), frame.astype(np.float32))
    assert (gate[30:60, 30:60] == 1).all()
    assert gate[:14].max() == 0 and gate[76:].max() == 0  # and nothing beyond the 3-px growth


def test_every_pixel_of_the_object_gets_the_whole_edit_up_to_a_touching_look_alike():
    """The gate's soft edge lies outside the object, on pixels the lookup leaves as they are: next to a
    vetoed twin, the edited square's last column still gets the whole edit, and the twin none."""
    from z2h.flow_fusion import Fuser

    frame = np.full((SIZE, SIZE, 3), 120, np.uint8)
    frame[30:54, 20:68] = (200, 40, 30)  # the edited square (x 20..43) and its twin (x 44..67), touching
    looked_up = frame.astype(np.float32)
    looked_up[30:54, 20:68] = (40, 90, 200)  # the lookup recolours both
    label = np.zeros((SIZE, SIZE), np.float32)
    label[30:54, 20:44] = 1
    veto = np.zeros((SIZE, SIZE), bool)
    veto[30:54, 44:68] = True  # the twin's chain leads to an unedited look-alike in the anchor
    gate = Fuser(0, frame, frame, FusionConfig()).gate(label, looked_up, frame.astype(np.float32), veto)
    assert (gate[30:54, 20:44] == 1).all()
    assert gate[30:54, 44:68].max() == 0
    ring = gate[25:27, 20:44]  # beyond the 3-px growth above the square: background, partly covered
    assert 0 < ring.min() and ring.max() < 1


def test_a_shadow_on_a_look_alike_does_not_make_it_the_edited_object():
    """A shadow falls on the unedited twin (far from the edited square): its colours change, so the flow's
    photometric check fails there and the tracker would re-detect the twin from the colour candidates.
    The twin's look-alike mark is carried along the same flow, and a known look-alike is not re-detected."""
    orig, edit, m_edit, m_twin = twins_video(frames=6, step=4)
    orig, edit = orig.copy(), edit.copy()
    for video in (orig, edit):
        video[5][m_twin[5]] = (video[5][m_twin[5]] * 0.6).astype(np.uint8)  # 36 px from the edited square
    naive = naive_recolour(orig, 0, edit[0])
    assert psnr_in(naive[5:], edit[5:], m_twin[5:], skip=-1) < 12
    out, _ = fuse(orig, 0, edit[0], naive, naive, FusionConfig())
    assert psnr_in(out[5:], edit[5:], m_twin[5:], skip=-1) >= 40
    assert psnr_in(out, edit, m_edit) >= 25


def test_look_alikes_lie_a_dis_patch_away_from_the_edit():
    from z2h.flow_fusion import LOOKALIKE_MARGIN, lookalikes

    anchor = np.full((SIZE, SIZE, 3), 120, np.uint8)
    anchor[20:70, 10:90] = (40, 90, 200)  # one colour: the object (x 10..39) and the background beside it
    reference = anchor.copy()
    reference[20:70, 10:40] = (200, 40, 30)
    looked_up = anchor.copy()
    looked_up[20:70, 10:90] = (200, 40, 30)
    like = lookalikes(anchor, reference, looked_up) > 0.5
    assert LOOKALIKE_MARGIN >= 8  # DIS (preset MEDIUM) matches 8-px patches
    assert not like[20:70, 40:40 + LOOKALIKE_MARGIN].any()
    assert like[20:70, 41 + LOOKALIKE_MARGIN : 90].all()
    assert not like[:, :40].any()


def test_refined_anchor_positions_stay_sub_pixel_on_a_turning_fine_texture():
    """A fine texture turns 3 degrees per frame. Chained flow drifts; the chain is refined against the
    anchor every frame, at full resolution: after 11 frames the median position error is 0.14 px (at
    DIS's default half resolution it is 0.23 px, which is what costs a texture edit its sharpness)."""
    import cv2

    rng = np.random.default_rng(4)
    tex = cv2.GaussianBlur(rng.uniform(0, 255, (SIZE, SIZE)).astype(np.float32), (0, 0), 1.0)
    tex = np.repeat(((tex - tex.mean()) * (60 / tex.std()) + 128)[..., None], 3, -1)
    centre = (SIZE / 2 - 0.5, SIZE / 2 - 0.5)
    turn = [cv2.getRotationMatrix2D(centre, 3.0 * t, 1.0) for t in range(12)]
    frames = np.stack([cv2.warpAffine(tex, m, (SIZE, SIZE), flags=cv2.INTER_CUBIC,
                                      borderMode=cv2.BORDER_REFLECT) for m in turn])
    tr = track(np.clip(frames, 0, 255).round().astype(np.uint8), 0, np.ones((SIZE, SIZE), np.float32))
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    back = cv2.invertAffineTransform(turn[-1])  # last frame's pixel -> its anchor position
    truth = np.stack([back[0, 0] * xs + back[0, 1] * ys + back[0, 2],
                      back[1, 0] * xs + back[1, 1] * ys + back[1, 2]], -1)
    disk = np.hypot(xs - centre[0], ys - centre[1]) < 30
    err = np.linalg.norm(tr.coords[-1] - truth, axis=-1)[disk]
    assert tr.valid[-1][disk].mean() > 0.9
    assert np.median(err) < 0.18, np.median(err)


def test_where_only_the_restorer_speaks_a_wrong_colour_the_lookup_wins():
    """A noisy reference makes the lookup look unreliable (weight ~0.1), and with flow off no chain backs
    the restorer, which is 40 levels off. Its disagreement with the lookup far exceeds the lookup's expected
    error (~11 levels), so inside the tracked object the two are weighed by error: 17 dB -> 33 dB."""
    orig, edit, m_edit, _ = twins_video(edited_colour=(80, 60, 150))
    rng = np.random.default_rng(5)
    reference = edit[0].astype(float)
    reference[m_edit[0]] += rng.normal(0, 6, (m_edit[0].sum(), 3))
    reference = np.clip(reference, 0, 255).round().astype(np.uint8)
    wrong = np.clip(edit.astype(int) + 40, 0, 255).astype(np.uint8)
    inner = np.stack([binary_erosion(m, iterations=4) for m in m_edit])
    cfg = dict(flow=False, temporal=0.0, direct=False)
    plain, _ = fuse(orig, 0, reference, wrong, wrong, FusionConfig(arbitrate=False, **cfg))
    weighed, _ = fuse(orig, 0, reference, wrong, wrong, FusionConfig(**cfg))
    assert psnr_in(plain, edit, inner) < 20
    assert psnr_in(weighed, edit, inner) > 30


def same_colour_background_video(frames=10, step=1, period=8):
    """An orange textured square sliding right over diagonal stripes of its own orange and cream; the
    anchor recolours the square purple. Returns original, edited frames and the square's masks."""
    rng = np.random.default_rng(1)
    orange = _texture(rng, SIZE, SIZE, (230, 150, 60))
    cream = _texture(rng, SIZE, SIZE, (245, 235, 215))
    stripes = ((np.indices((SIZE, SIZE)).sum(0) // period) % 2 == 0)[..., None]
    floor = np.where(stripes, orange, cream)
    skin = _texture(rng, 28, 28, (230, 150, 60))
    gain = np.array((110, 90, 200), np.float32) / np.array((230, 150, 60), np.float32)
    orig, edit, masks = [], [], []
    for t in range(frames):
        o, m = floor.copy(), np.zeros((SIZE, SIZE), bool)
        o[34:62, 20 + step * t : 48 + step * t] = skin
        m[34:62, 20 + step * t : 48 + step * t] = True
        e = o.copy()
        e[m] = np.clip(o[m] * gain, 0, 255)
        orig.append(o)
        edit.append(e)
        masks.append(m)
    as8 = lambda xs: np.stack(xs).round().astype(np.uint8)  # noqa: E731
    return as8(orig), as8(edit), np.stack(masks)


def test_flow_carries_no_unchanged_background_into_the_object_the_label_lags_behind():
    """DIS smooths flow across the leading edge of a square moving over stripes of its own colour, so the
    tracked label lags and the edge pixels' chains come from the background, carrying "no change". The gate
    still takes them for the square; with a perfect restorer, they must get its answer: 33 dB -> 40 dB."""
    orig, edit, m = same_colour_background_video()
    out, stats = fuse(orig, 0, edit[0], edit, edit, FusionConfig(temporal=0.0))
    assert psnr_in(out, edit, m) > 38
    assert 0 < stats["flow_weight_mean"] < 0.2  # flow still carries the label's pixels


def test_the_gate_grows_no_further_than_a_dis_patch_into_a_carried_look_alike():
    """A twin touches the edited square, and its chain broke (no veto), but the tracker still carries its
    look-alike mark. The lookup recolours both, so the gate would grow over the whole twin; it stops
    8 px (LOOKALIKE_MARGIN) from the label, where the mark may still be the lagging label's own edge."""
    from z2h.flow_fusion import LOOKALIKE_MARGIN, Fuser

    frame = np.full((SIZE, SIZE, 3), 120, np.uint8)
    frame[30:54, 20:76] = (200, 40, 30)  # the edited square (x 20..43) and its twin (x 44..75), touching
    looked_up = frame.astype(np.float32)
    looked_up[30:54, 20:76] = (40, 90, 200)
    label = np.zeros((SIZE, SIZE), np.float32)
    label[30:54, 20:40] = 1  # the label lags 4 px behind the square's right edge
    marked = np.zeros((SIZE, SIZE), np.float32)
    marked[30:54, 40:76] = 1  # what the lagging edge passed over, and the twin
    fuser = Fuser(0, frame, frame, FusionConfig())
    unmarked = fuser.gate(label, looked_up, frame.astype(np.float32))
    gate = fuser.gate(label, looked_up, frame.astype(np.float32), marked=marked)
    assert (unmarked[30:54, 20:76] == 1).all()  # without the mark, the whole twin joins
    assert (gate[30:54, 20:44] == 1).all()  # the square's lagging edge still gets the whole edit
    assert gate[30:54, 40 + LOOKALIKE_MARGIN + 1 : 76].max() == 0
