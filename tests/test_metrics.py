"""Tests for segtie.metrics: hand-computed overlap and distance cases, conventions, errors.

Real masks against independent references (brute force, medpy, scikit-learn, a KD-tree)
are in test_metrics_real.py; AUC/AP, summaries and the bootstrap in
test_metrics_summary.py."""

import math

import numpy as np
import pytest

from segtie import metrics


def square(shape, top, left, side):
    mask = np.zeros(shape, dtype=np.uint8)
    mask[top:top + side, left:left + side] = 1
    return mask


# ----------------------------------------------------------------- dice / iou

def test_dice_iou_hand_computed():
    y_true = np.array([[1, 1, 0, 0],
                       [1, 1, 0, 0],
                       [0, 0, 0, 0],
                       [0, 0, 0, 0]])
    y_pred = np.array([[0, 1, 1, 0],
                       [0, 1, 1, 0],
                       [0, 0, 0, 0],
                       [0, 0, 0, 0]])
    # |A| = |B| = 4, |A & B| = 2, |A | B| = 6.
    assert metrics.dice(y_true, y_pred) == pytest.approx(2 * 2 / 8)
    assert metrics.iou(y_true, y_pred) == pytest.approx(2 / 6)
    assert metrics.dice(y_true, y_true) == 1.0
    assert metrics.iou(y_true, 1 - y_true) == 0.0


def test_dice_iou_accept_bool_and_float():
    y_true = np.eye(4, dtype=bool)
    y_pred = np.eye(4, dtype=np.float32)
    y_pred[0, 1] = 1.0
    # |A| = 4, |B| = 5, |A & B| = 4.
    assert metrics.dice(y_true, y_pred) == pytest.approx(8 / 9)
    assert metrics.iou(y_true, y_pred) == pytest.approx(4 / 5)


# ------------------------------------------------------------------------ hd95

@pytest.mark.parametrize("k", [1, 2, 3])
def test_hd95_shifted_squares(k):
    y_true = square((20, 20), 5, 5, 6)
    y_pred = square((20, 20), 5, 5 + k, 6)
    assert metrics.hd95(y_true, y_pred) == pytest.approx(k)
    assert metrics.hd95(y_pred, y_true) == pytest.approx(k)


def test_hd95_single_pixels():
    y_true = np.zeros((10, 10), dtype=bool)
    y_pred = np.zeros((10, 10), dtype=bool)
    y_true[2, 3] = True
    y_pred[5, 7] = True
    assert metrics.hd95(y_true, y_pred) == pytest.approx(5.0)
    assert metrics.hd95(y_true, y_pred, spacing=(2.0, 1.0)) == pytest.approx(math.sqrt(52))


def test_hd95_anisotropic_spacing_scales_one_axis():
    base = square((20, 20), 5, 5, 6)
    right = square((20, 20), 5, 7, 6)  # shifted 2 columns
    down = square((20, 20), 7, 5, 6)  # shifted 2 rows
    assert metrics.hd95(base, down, spacing=(2.0, 1.0)) == pytest.approx(4.0)
    assert metrics.hd95(base, right, spacing=(2.0, 1.0)) == pytest.approx(2.0)
    assert metrics.hd95(base, right, spacing=(1.0, 0.5)) == pytest.approx(1.0)


def test_surface_uses_8_neighbourhood_and_image_border():
    mask = square((7, 7), 1, 1, 5).astype(bool)
    mask[1, 1] = False  # (2, 2) now has a background diagonal neighbour only
    true_to_pred, pred_to_true = metrics.surface_distances(mask, mask)
    assert true_to_pred.size == 15 + 1
    np.testing.assert_array_equal(pred_to_true, 0.0)
    full = np.ones((4, 4), dtype=bool)  # outside the image counts as background
    assert metrics.surface_distances(full, full)[0].size == 12
    assert metrics.hd95(full, full) == 0.0


# ------------------------------------------------------------ empty conventions

NAN = math.nan
# Columns of the conventions table in segtie/metrics/__init__.py; 8x8 image, 3x3 square.
CONVENTIONS = {
    "both empty": dict(dice=1.0, iou=1.0, precision=1.0, recall=1.0, specificity=1.0,
                       hd95=0.0, assd=0.0, nsd=1.0),
    "reference empty": dict(dice=NAN, iou=NAN, precision=NAN, recall=NAN,
                            specificity=55 / 64, hd95=NAN, assd=NAN, nsd=NAN),
    "prediction empty": dict(dice=0.0, iou=0.0, precision=NAN, recall=0.0,
                             specificity=1.0, hd95=math.hypot(8, 8), assd=math.hypot(8, 8),
                             nsd=0.0),
}


def test_a_missed_structure_takes_the_image_diagonal_in_the_distance_unit():
    some = square((12, 20), 2, 2, 3)
    empty = np.zeros((12, 20), np.uint8)
    assert metrics.hd95(some, empty) == pytest.approx(math.sqrt(12 ** 2 + 20 ** 2))
    assert metrics.assd(some, empty, spacing=(0.5, 2.0)) == pytest.approx(
        math.sqrt(6 ** 2 + 40 ** 2))
    assert metrics.missed_penalty((12, 20), (0.5, 2.0)) == pytest.approx(math.hypot(6, 40))
    # Missing it is never better than any prediction that finds it, however far off.
    far = square((12, 20), 9, 17, 3)
    assert metrics.hd95(some, far) < metrics.hd95(some, empty)


@pytest.mark.parametrize("case", sorted(CONVENTIONS))
def test_empty_conventions(case):
    empty = np.zeros((8, 8), dtype=np.uint8)
    some = square((8, 8), 2, 2, 3)
    y_true, y_pred = {"both empty": (empty, empty), "reference empty": (empty, some),
                      "prediction empty": (some, empty)}[case]
    scores = metrics.score_case(y_true, y_pred)
    assert list(scores) == list(metrics.METRIC_NAMES)
    np.testing.assert_equal(scores, CONVENTIONS[case])
    for name in ("dice", "iou", "precision", "recall", "specificity"):
        np.testing.assert_equal(getattr(metrics, name)(y_true, y_pred), scores[name])
    for name in ("hd95", "assd", "nsd"):
        np.testing.assert_equal(getattr(metrics, name)(y_true, y_pred), scores[name])


# (tp, fp, fn) -> Dice, by hand: the table of segtie.metrics
DICE_COUNTS = [
    ((0, 0, 0), 1.0),        # both empty
    ((0, 3, 0), NAN),        # reference empty, false positives
    ((0, 0, 4), 0.0),        # prediction empty
    ((0, 2, 5), 0.0),        # no overlap
    ((3, 1, 2), 6 / 9),
    ((5, 0, 0), 1.0),
    ((1, 7, 0), 2 / 9),
    ((1000, 1, 1), 2000 / 2002),
]


def test_dice_from_counts_numpy_and_keras_ops_agree_on_the_table():
    from keras import ops

    counts, want = zip(*DICE_COUNTS)
    tp, fp, fn = zip(*counts)
    got_np = metrics.dice_from_counts(np.array(tp), np.array(fp), np.array(fn))
    assert got_np.dtype == np.float64
    np.testing.assert_equal(got_np, np.array(want))
    got_ops = ops.convert_to_numpy(metrics.dice_from_counts(
        *(ops.convert_to_tensor(np.array(c, "float32")) for c in (tp, fp, fn)), xp=ops))
    assert got_ops.dtype == np.float32
    np.testing.assert_array_equal(got_ops, got_np.astype(np.float32))  # NaN at NaN
    for (counts, value) in DICE_COUNTS:  # scalars, as metrics.dice calls it
        np.testing.assert_equal(float(metrics.dice_from_counts(*counts)), value)


def test_dice_is_dice_from_counts_of_the_confusion():
    rng = np.random.default_rng(3)
    for _ in range(20):
        y_true = rng.random((6, 7)) < rng.choice([0.0, 0.1, 0.5])
        y_pred = rng.random((6, 7)) < rng.choice([0.0, 0.1, 0.5])
        c = metrics.confusion(y_true, y_pred)
        value = metrics.dice(y_true, y_pred)
        assert type(value) is float
        np.testing.assert_equal(value, float(metrics.dice_from_counts(c.tp, c.fp, c.fn)))


def test_mean_defined_skips_nan_and_is_nan_when_none_is_defined():
    from keras import ops

    values = np.array([[NAN, 0.5, 1.0], [NAN, NAN, NAN], [0.0, 0.25, NAN]])
    want = np.array([0.75, NAN, 0.125])
    np.testing.assert_equal(metrics.mean_defined(values), want)
    got = ops.convert_to_numpy(metrics.mean_defined(
        ops.convert_to_tensor(values.astype("float32")), xp=ops))
    np.testing.assert_array_equal(got, want.astype("float32"))


def test_surface_distances_with_one_empty_mask():
    some = square((8, 8), 2, 2, 3)
    a, b = metrics.surface_distances(some, np.zeros((8, 8)))
    assert a.size == 9 - 1 and np.isinf(a).all() and b.size == 0


def test_confusion_metrics_hand_computed():
    y_true = square((6, 6), 0, 0, 3)  # 9 pixels
    y_pred = square((6, 6), 1, 1, 3)  # 9 pixels, 4 shared
    # TP 4, FP 5, FN 5, TN 36 - 14 = 22.
    assert metrics.confusion(y_true, y_pred) == (4, 5, 5, 22)
    assert metrics.precision(y_true, y_pred) == pytest.approx(4 / 9)
    assert metrics.recall(y_true, y_pred) == pytest.approx(4 / 9)
    assert metrics.specificity(y_true, y_pred) == pytest.approx(22 / 27)
    assert metrics.dice(y_true, y_pred) == pytest.approx(8 / 18)
    assert metrics.iou(y_true, y_pred) == pytest.approx(4 / 14)


def test_roi_restricts_every_metric():
    y_true = square((6, 6), 0, 0, 3)
    y_pred = square((6, 6), 1, 1, 3)
    roi = np.zeros((6, 6), bool)
    roi[:, :3] = True  # columns 0-2: TP 4, FP 2 (rows 3, col 1-2), FN 5, TN 18 - 11 = 7
    assert metrics.confusion(y_true, y_pred, roi) == (4, 2, 5, 7)
    assert metrics.precision(y_true, y_pred, roi) == pytest.approx(4 / 6)
    assert metrics.specificity(y_true, y_pred, roi) == pytest.approx(7 / 9)
    # Surfaces are taken of the masks cut by the ROI: same as cutting them by hand.
    assert metrics.hd95(y_true, y_pred, roi=roi) == metrics.hd95(y_true & roi,
                                                                 y_pred & roi)
    outside = np.zeros((6, 6), bool)
    outside[:, 4:] = True  # neither mask reaches here: both empty inside the ROI
    assert metrics.score_case(y_true, y_pred, roi=outside)["dice"] == 1.0
    with pytest.raises(ValueError, match=r"'c1'.*`roi` must have the masks' shape"):
        metrics.dice(y_true, y_pred, np.ones((5, 6)), case_id="c1")


def test_assd_and_nsd_single_pixels():
    y_true = np.zeros((10, 10), dtype=bool)
    y_pred = np.zeros((10, 10), dtype=bool)
    y_true[2, 3] = True
    y_pred[5, 7] = True  # 5 pixels apart in both directions
    assert metrics.assd(y_true, y_pred) == pytest.approx(5.0)
    assert metrics.nsd(y_true, y_pred, tolerance=5.0) == 1.0  # <= tolerance counts
    assert metrics.nsd(y_true, y_pred, tolerance=4.99) == 0.0
    assert metrics.assd(y_true, y_pred, spacing=(2.0, 1.0)) == pytest.approx(math.sqrt(52))


def test_assd_nsd_shifted_square_hand_computed():
    # 4x4 squares (rows 3-6), true in columns 2-5, prediction in columns 4-7; each
    # surface is its 12-pixel ring. True -> pred, per true surface pixel: top and bottom
    # rows, columns 2, 3, 4, 5 -> 2, 1, 0, 0 (columns 4-5 lie on the pred's top/bottom
    # edge); left column rows 4-5 -> 2 (to the pred's left column), right column rows
    # 4-5 -> 1. So four 0s, four 1s, four 2s; the same by symmetry the other way.
    y_true = square((10, 10), 3, 2, 4)
    y_pred = square((10, 10), 3, 4, 4)
    a, b = metrics.surface_distances(y_true, y_pred)
    np.testing.assert_allclose(np.sort(a), [0] * 4 + [1] * 4 + [2] * 4)
    np.testing.assert_allclose(np.sort(b), [0] * 4 + [1] * 4 + [2] * 4)
    assert metrics.assd(y_true, y_pred) == pytest.approx(12 / 12)
    assert metrics.nsd(y_true, y_pred, tolerance=1.0) == pytest.approx(16 / 24)
    assert metrics.hd95(y_true, y_pred) == pytest.approx(2.0)


def test_score_classes_one_vs_rest():
    y_true = np.zeros((6, 6), np.int64)
    y_true[:3, :3], y_true[3:, 3:] = 1, 2
    y_pred = y_true.copy()
    y_pred[0, 0] = 2
    scores = metrics.score_classes(y_true, y_pred, [1, 2])
    assert scores[1]["dice"] == pytest.approx(2 * 8 / 17)
    assert scores[2]["dice"] == pytest.approx(2 * 9 / 19)
    with pytest.raises(ValueError, match="integer label map"):
        metrics.score_classes(y_true.astype(float), y_pred, [1])


# ------------------------------------------------------------------ bad input

def test_shape_mismatch_names_both_shapes_and_case():
    with pytest.raises(ValueError, match=r"case7.*\(4, 4\) and \(4, 5\)"):
        metrics.dice(np.zeros((4, 4)), np.zeros((4, 5)), case_id="case7")


@pytest.mark.parametrize("bad", [
    np.full((4, 4), 2), np.full((4, 4), 0.5), np.full((4, 4), np.nan),
    np.full((4, 4), 255, dtype=np.uint8), np.zeros((4, 4, 1)), np.array([["a"] * 4] * 4)])
def test_bad_values_rejected(bad):
    for fn in (metrics.dice, metrics.iou, metrics.hd95, metrics.score_case):
        with pytest.raises(ValueError, match="y_pred"):
            fn(np.zeros((4, 4)), bad)


@pytest.mark.parametrize("spacing", [(0.0, 1.0), (1.0, -1.0), (1.0,), (1, 2, 3),
                                     (math.nan, 1.0), 1.0])
def test_bad_spacing_rejected(spacing):
    with pytest.raises(ValueError, match="spacing"):
        metrics.hd95(np.eye(4), np.eye(4), spacing=spacing)
    with pytest.raises(ValueError, match="'c3'.*spacing"):
        metrics.score_case(np.eye(4), np.eye(4), spacing, case_id="c3")
