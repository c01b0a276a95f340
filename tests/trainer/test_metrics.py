"""The evaluation metrics on cases with known answers: KID, FID, blur, diversity, grouping, nearest neighbours,
the top-1 pick of scored candidates and the paired change of two drawings."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.metrics import (choose_grouping, diversity, fid, gaussian_blur, kid, nearest_distances, paired_change,
                             pick_top1, stray_pieces, top1)


def test_kid_is_zero_for_one_distribution_and_grows_with_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(600, 16)), rng.normal(size=(600, 16))
    same = kid(a, b, subsets=20, subset_size=300)
    near = kid(a, b + 0.3, subsets=20, subset_size=300)
    far = kid(a, b + 1.0, subsets=20, subset_size=300)
    assert abs(same["mean"]) < 3 * same["std"] + 1e-3  # unbiased: ~0, may be slightly negative
    assert same["mean"] < near["mean"] < far["mean"]
    assert near["mean"] > 10 * abs(same["mean"])
    assert same["subset_size"] == 300 and same["subsets"] == 20


def test_kid_rejects_mismatched_features():
    with pytest.raises(ValueError, match="same D"):
        kid(np.zeros((5, 3)), np.zeros((5, 4)))


def test_fid_matches_the_closed_form():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4000, 4))
    assert fid(a, a) == pytest.approx(0.0, abs=1e-6)
    # N(0, I) vs N(mu, 4 I) in d=4: |mu|^2 + tr(I + 4I - 2*2I) = |mu|^2 + 4
    b = rng.normal(size=(4000, 4)) * 2 + np.array([1.0, 0, 0, 0])
    assert fid(a, b) == pytest.approx(1.0 + 4.0, rel=0.1)


def test_gaussian_blur_keeps_flat_images_and_smooths_edges():
    flat = np.full((2, 16, 16, 3), 77, np.uint8)
    assert np.array_equal(gaussian_blur(flat, 1.5), flat)
    edge = np.zeros((1, 16, 16, 3), np.uint8)
    edge[:, :, 8:] = 255
    out = gaussian_blur(edge, 1.5)
    assert out.dtype == np.uint8 and out.shape == edge.shape
    assert 0 < out[0, 5, 7, 0] < 255 and out[0, 5, 0, 0] == 0 and out[0, 5, 15, 0] == 255


def test_diversity_ratio_sees_collapse():
    rng = np.random.default_rng(2)
    keys = np.repeat(np.arange(10), 8)[:, None]
    real = rng.normal(size=(80, 8)) + keys * 5.0
    same = rng.normal(size=(80, 8)) + keys * 5.0
    collapsed = 0.1 * rng.normal(size=(80, 8)) + keys * 5.0
    assert diversity(same, keys, real, keys)["ratio"] == pytest.approx(1.0, abs=0.15)
    d = diversity(collapsed, keys, real, keys)
    assert d["ratio"] < 0.2 and d["groups"] == 10
    assert diversity(real, keys, real, keys + 100)["ratio"] is None  # no shared groups


def test_diversity_leaves_out_pairs_drawn_for_the_same_real_image():
    """Real groups of two images that differ in an attribute the grouping leaves free; a model
    that draws every image's labels perfectly, twelve images per group cycling the two: pairs
    drawn with the same labels would read as missing variety, pairs drawn for the two real
    images match the real pair."""
    rng = np.random.default_rng(3)
    groups, n = 20, 12
    first = rng.integers(0, 8, groups)
    free = np.stack([first, (first + rng.integers(1, 8, groups)) % 8], 1)  # two different values per group

    def draw(values):
        return 5.0 * np.eye(8)[values] + 0.1 * rng.normal(size=(len(values), 8))

    real, keys_r = draw(free.ravel()), np.repeat(np.arange(groups), 2)
    origin = np.tile(np.arange(n) % 2, groups)
    gen, keys_g = draw(free[np.repeat(np.arange(groups), n), origin]), np.repeat(np.arange(groups), n)
    assert diversity(gen, keys_g, real, keys_r, origin_a=origin)["ratio"] == pytest.approx(1.0, abs=0.05)
    assert diversity(gen, keys_g, real, keys_r)["ratio"] < 0.6  # every pair: 30 of 66 drawn for one image


def test_choose_grouping_drops_attributes_until_groups_exist():
    rng = np.random.default_rng(3)
    labels = np.stack([rng.integers(0, 50, 200), rng.permutation(200)], 1)  # attribute 1: unique ids
    assert choose_grouping(labels, min_groups=8) == (0,)
    assert choose_grouping(labels[:, :1], min_groups=8) == (0,)
    assert choose_grouping(labels[:10], min_groups=8) == ()  # 10 rows over 50 values: no matches
    assert choose_grouping(np.repeat(labels[:20], 2, axis=0)) == (0, 1)  # exact duplicates cover every row


def test_nearest_distances_finds_exact_copies():
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(300, 5))
    q = np.concatenate([ref[[7, 42]], ref[:1] + 10])
    d, i = nearest_distances(q, ref, chunk=2)
    assert list(i[:2]) == [7, 42] and np.allclose(d[:2], 0, atol=1e-6) and d[2] > 5


def test_top1_keeps_each_rows_best_candidate_the_first_on_ties():
    scores = np.array([[0.1, 0.9, 0.5], [2.0, -1.0, 2.0], [-3.0, -2.0, -1.0]])
    assert top1(scores).tolist() == [1, 0, 2]
    candidates = np.arange(3 * 3 * 2).reshape(3, 3, 2)  # (N, K, ...) with a feature axis
    kept, idx = pick_top1(candidates, scores)
    assert idx.tolist() == [1, 0, 2] and kept.tolist() == [[2, 3], [6, 7], [16, 17]]
    with pytest.raises(ValueError, match="differ"):
        pick_top1(candidates[:, :2], scores)
    with pytest.raises(ValueError, match="finite"):
        top1(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        top1(np.zeros(3))


def test_paired_change_is_the_mean_difference_with_its_standard_error():
    before = np.array([[1, 0], [0, 0], [1, 1], [0, 1]])
    after = np.array([[1, 1], [1, 0], [1, 0], [0, 1]])
    mean, se = paired_change(before, after)
    assert mean.tolist() == [0.25, 0.0]  # column 0: one miss became a hit; column 1: one each way
    assert se[0] == pytest.approx(np.std([0, 1, 0, 0], ddof=1) / 2) and se[1] == pytest.approx(np.std([1, 0, -1, 0], ddof=1) / 2)
    assert paired_change(before, before)[1].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="same shape"):
        paired_change(before, after[:3])


def test_stray_pieces_counts_marks_apart_from_the_character():
    def canvas():
        img = np.full((32, 32, 3), (200, 180, 230), np.uint8)  # a flat pastel background
        img[8:28, 8:24] = (120, 80, 40)  # the character
        return img

    clean, speck, dot, two, graded = canvas(), canvas(), canvas(), canvas(), canvas()
    speck[0, 1:3] = 30  # a two-pixel dark speck at the frame
    dot[3, 3] = 30  # one stray pixel is noise, not a mark
    two[1:4, 27:30] = (250, 250, 120)  # a second drawn piece (a star, or an accessory apart)
    two[30, 0:2] = 0
    graded[..., 0] = np.clip(graded[..., 0].astype(int) + np.arange(32)[None, :], 0, 255)  # gentle gradient
    blank = np.full((32, 32, 3), 90, np.uint8)
    got = stray_pieces(np.stack([clean, speck, dot, two, graded, blank]), chunk=4)
    assert got.tolist() == [0, 1, 0, 2, 0, 0]

    # a face drawn as an outline, its skin the background's colour: its eyes are pieces of their own, within it
    face = np.full((32, 32, 3), (200, 180, 230), np.uint8)
    face[6, 6:26] = face[26, 6:26] = face[6:27, 6] = face[6:27, 25] = 40
    face[12:14, 11:13] = face[12:14, 19:21] = 40  # two eyes
    hair, specked, cornered = face.copy(), face.copy(), face.copy()
    hair[6, 10:22] = (200, 180, 230)  # hair the background's colour hides the top of the outline
    specked[2:4, 28:30] = 40  # a speck beside the face
    specked[29:31, 14:16] = 40  # and one below it
    cornered[26, 20:26] = cornered[20:27, 25] = (200, 180, 230)  # with the corner open, a dot there has the face
    cornered[24:26, 23:25] = 40  # on neither side in its row or column: it counts
    assert stray_pieces(np.stack([face, hair, specked, cornered])).tolist() == [0, 0, 2, 1]
    assert stray_pieces(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0,)


def test_stray_pieces_finds_one_piece_along_a_long_winding_stroke():
    # a serpentine 1-pixel stroke is one piece however long its path; a speck beyond it still counts
    img = np.full((40, 40, 3), 220, np.uint8)
    for k, r in enumerate(range(2, 31, 4)):  # eight rows joined at alternate ends: a path of about 270 pixels
        img[r, 2:34] = 20
        if r < 30:
            img[r + 1:r + 4, 33 if k % 2 == 0 else 2] = 20
    specked = img.copy()
    specked[36, 16:18] = 20  # below the last row: beyond the character in its column
    assert stray_pieces(np.stack([img, specked])).tolist() == [0, 1]
