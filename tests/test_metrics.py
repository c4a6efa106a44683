"""Tests for segtie.metrics: hand-computed cases, conventions, errors, real masks."""

import io
import math
import zipfile

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from scipy.spatial.distance import cdist

from realdata import SHARED_DATA, require_archive
from segtie import metrics

KVASIR_ZIP = SHARED_DATA / "kvasir-seg.zip"


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


# ------------------------------------------------------------- ranking: AUC, AP

def mann_whitney_auc(y_true, scores):
    """AUC as P(score_pos > score_neg) + 0.5 P(equal), over all pairs (hand formula)."""
    pos, neg = scores[y_true], scores[~y_true]
    greater = (pos[:, None] > neg[None, :]).sum()
    equal = (pos[:, None] == neg[None, :]).sum()
    return (greater + 0.5 * equal) / (pos.size * neg.size)


def test_auc_ap_hand_computed_with_ties():
    y_true = np.array([[1, 0, 1], [0, 1, 0]], bool)
    probs = np.array([[0.9, 0.9, 0.4], [0.4, 0.4, 0.1]])
    # Pairs (pos, neg): 0.9 vs (0.9, 0.4, 0.1): 0.5 + 1 + 1; 0.4 vs: 0 + 0.5 + 1, twice.
    assert metrics.auc(y_true, probs) == pytest.approx((2.5 + 1.5 + 1.5) / 9)
    assert metrics.auc(y_true, probs) == pytest.approx(mann_whitney_auc(
        y_true.ravel(), probs.ravel()))
    # Thresholds 0.9: P 1/2, R 1/3; 0.4: P 3/5, R 1; 0.1: no recall step.
    assert metrics.average_precision(y_true, probs) == pytest.approx(
        1 / 3 * 1 / 2 + 2 / 3 * 3 / 5)


def test_ranking_conventions_and_errors():
    probs = np.full((3, 3), 0.3)
    assert all(math.isnan(v) for v in metrics.ranking_metrics(
        np.zeros((3, 3)), probs).values())
    full = metrics.ranking_metrics(np.ones((3, 3)), probs)
    assert math.isnan(full["auc"]) and full["ap"] == 1.0
    bad = probs.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"'img7'.*NaN"):
        metrics.score_case(np.eye(3), np.eye(3), probabilities=bad, case_id="img7")
    with pytest.raises(ValueError, match=r"'img7'.*\[0, 1\]"):
        metrics.auc(np.eye(3), probs * 5, case_id="img7")
    with pytest.raises(ValueError, match=r"'img7'.*shape"):
        metrics.auc(np.eye(3), np.zeros((3, 4)), case_id="img7")


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


# ------------------------------------------------------------------ summarize

def test_summarize_skips_nan():
    out = metrics.summarize({"dice": [1.0, math.nan, 0.5], "hd95": [math.nan]})
    assert out["dice"] == {"mean": 0.75, "median": 0.75, "std": 0.25, "count": 2,
                           "num_nan": 1}
    assert out["hd95"]["count"] == 0 and out["hd95"]["num_nan"] == 1
    assert math.isnan(out["hd95"]["mean"]) and math.isnan(out["hd95"]["std"])


# ------------------------------------------------- real masks vs brute force

def load_masks(count, step=4):
    """The first ``count`` Kvasir-SEG masks (sorted), binarized, subsampled by ``step``."""
    require_archive(KVASIR_ZIP)
    with zipfile.ZipFile(KVASIR_ZIP) as zf:
        names = sorted(n for n in zf.namelist()
                       if n.startswith("Kvasir-SEG/masks/") and n.endswith(".jpg"))[:count]
        masks = []
        for name in names:
            arr = np.asarray(Image.open(io.BytesIO(zf.read(name))))
            arr = arr[..., 0] if arr.ndim == 3 else arr
            masks.append(arr[::step, ::step] >= 128)
    return masks


def brute_surface(mask):
    """Foreground pixels whose 3x3 neighbourhood (zero-padded) has a background pixel."""
    padded = np.pad(mask, 1)
    h, w = mask.shape
    all_fg = np.ones_like(mask)
    for dr in range(3):
        for dc in range(3):
            all_fg &= padded[dr:dr + h, dc:dc + w]
    return mask & ~all_fg


def brute_directed(a, b, spacing):
    pa = np.argwhere(brute_surface(a)) * np.asarray(spacing)
    pb = np.argwhere(brute_surface(b)) * np.asarray(spacing)
    return cdist(pa, pb).min(axis=1)


def brute_hd95(a, b, spacing):
    return max(np.percentile(brute_directed(a, b, spacing), 95),
               np.percentile(brute_directed(b, a, spacing), 95))


def shifted(mask, dr, dc):
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(dr, 0):h + min(dr, 0), max(dc, 0):w + min(dc, 0)] = \
        mask[max(-dr, 0):h + min(-dr, 0), max(-dc, 0):w + min(-dc, 0)]
    return out


def real_pairs():
    masks = load_masks(3)
    pairs = []
    for m in masks:
        pairs.append((m, shifted(m, 7, -4)))
        pairs.append((m, ndimage.binary_erosion(m, iterations=5)))
    h = min(m.shape[0] for m in masks)
    w = min(m.shape[1] for m in masks)
    pairs.append((masks[0][:h, :w], masks[1][:h, :w]))
    return pairs


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.7, 1.3)])
def test_real_masks_match_brute_force(spacing):
    for y_true, y_pred in real_pairs():
        assert y_true.any() and y_pred.any()
        a, b = metrics.surface_distances(y_true, y_pred, spacing)
        np.testing.assert_allclose(a, brute_directed(y_true, y_pred, spacing), atol=1e-6)
        np.testing.assert_allclose(b, brute_directed(y_pred, y_true, spacing), atol=1e-6)
        assert metrics.hd95(y_true, y_pred, spacing) == pytest.approx(
            brute_hd95(y_true, y_pred, spacing), abs=1e-6)
        inter = np.sum(y_true & y_pred)
        assert metrics.dice(y_true, y_pred) == pytest.approx(
            2 * inter / (y_true.sum() + y_pred.sum()))


def test_real_masks_isotropic_spacing_scales_hd95():
    y_true, y_pred = real_pairs()[0]
    assert metrics.hd95(y_true, y_pred, (0.5, 0.5)) == pytest.approx(
        0.5 * metrics.hd95(y_true, y_pred), rel=1e-12)


# ------------------------------------------------ medpy as an independent reference

@pytest.mark.parametrize("spacing", [None, (0.7, 1.3)])
def test_real_masks_match_medpy(spacing):
    """medpy's surfaces with ``connectivity=2`` (3x3 ones) are ours; its ``hd95`` is the
    95th percentile of the union of both directed sets, ours the max of the two
    directed 95th percentiles, so each is checked against the matching reduction."""
    binary = pytest.importorskip("medpy.metric.binary")
    for y_true, y_pred in real_pairs():
        assert metrics.dice(y_true, y_pred) == pytest.approx(
            binary.dc(y_pred, y_true), abs=1e-12)
        assert metrics.iou(y_true, y_pred) == pytest.approx(
            binary.jc(y_pred, y_true), abs=1e-12)
        a, b = metrics.surface_distances(y_true, y_pred, spacing)
        assert max(a.max(), b.max()) == pytest.approx(
            binary.hd(y_pred, y_true, spacing, connectivity=2), abs=1e-6)
        assert np.percentile(np.hstack((a, b)), 95) == pytest.approx(
            binary.hd95(y_pred, y_true, spacing, connectivity=2), abs=1e-6)


# ------------------------- every metric on real masks vs independent implementations

DRIVE_ZIP = KVASIR_ZIP.with_name("DRIVE.zip")


def load_drive(index=1):
    """DRIVE test image ``index``: 1st observer, 2nd observer, field of view (bool)."""
    require_archive(DRIVE_ZIP)
    names = (f"DRIVE/test/1st_manual/{index:02d}_manual1.gif",
             f"DRIVE/test/2nd_manual/{index:02d}_manual2.gif",
             f"DRIVE/test/mask/{index:02d}_test_mask.gif")
    with zipfile.ZipFile(DRIVE_ZIP) as zf:
        return [np.asarray(Image.open(io.BytesIO(zf.read(n)))) > 0 for n in names]


def kdtree_directed(a, b, spacing):
    """Exact nearest-neighbour distances (k-d tree) between brute-force surfaces."""
    from scipy.spatial import cKDTree

    pa = np.argwhere(brute_surface(a)) * np.asarray(spacing)
    pb = np.argwhere(brute_surface(b)) * np.asarray(spacing)
    return cKDTree(pb).query(pa)[0]


def reference_scores(y_true, y_pred, probs, roi, spacing, tolerance):
    """Every metric from scikit-learn and k-d tree distances (no segtie code)."""
    from sklearn import metrics as skm

    t, p = (y_true & roi)[roi], (y_pred & roi)[roi]
    a = kdtree_directed(y_true & roi, y_pred & roi, spacing)
    b = kdtree_directed(y_pred & roi, y_true & roi, spacing)
    both = np.hstack((a, b))
    return {
        "dice": skm.f1_score(t, p), "iou": skm.jaccard_score(t, p),
        "precision": skm.precision_score(t, p), "recall": skm.recall_score(t, p),
        "specificity": skm.recall_score(t, p, pos_label=False),
        "hd95": max(np.percentile(a, 95), np.percentile(b, 95)),
        "assd": both.mean(), "nsd": np.mean(both <= tolerance),
        "auc": skm.roc_auc_score(t, probs[roi]),
        "ap": skm.average_precision_score(t, probs[roi]),
    }


def tied_probabilities(mask, sigma=2.0, levels=32):
    """A smooth score map from a mask, quantized so that many pixels tie."""
    smooth = ndimage.gaussian_filter(mask.astype(np.float64), sigma)
    return np.round(smooth * levels) / levels


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.7, 1.3)])
def test_drive_second_observer_matches_sklearn_and_kdtree(spacing):
    """DRIVE convention: the 2nd observer scored against the 1st inside the FOV."""
    first, second, fov = load_drive(1)
    probs = tied_probabilities(second)
    ours = metrics.score_case(first, second, spacing, probabilities=probs, roi=fov,
                              tolerance=1.5)
    expected = reference_scores(first, second, probs, fov, spacing, 1.5)
    assert list(ours) == list(metrics.METRIC_NAMES + metrics.RANKING_NAMES)
    for name, value in expected.items():
        assert ours[name] == pytest.approx(value, abs=1e-6), name
    assert 0.7 < ours["dice"] < 0.85  # the published inter-observer agreement


def test_kvasir_masks_every_metric_matches_references():
    for k, (y_true, y_pred) in enumerate(real_pairs()):
        roi = np.ones_like(y_true)
        roi[: y_true.shape[0] // 3] = k % 2 == 0  # every other pair cut by an ROI
        probs = tied_probabilities(y_pred, sigma=3.0)
        ours = metrics.score_case(y_true, y_pred, (0.5, 0.5), probabilities=probs,
                                  roi=roi, tolerance=2.0)
        expected = reference_scores(y_true, y_pred, probs, roi, (0.5, 0.5), 2.0)
        for name, value in expected.items():
            assert ours[name] == pytest.approx(value, abs=1e-6), (k, name)


@pytest.mark.parametrize("spacing", [None, (0.7, 1.3)])
def test_real_masks_assd_matches_medpy(spacing):
    """medpy 0.5's ``assd`` pools both directed sets, as ours; its ``asd`` is the mean
    of one directed set, so ours is also the surface-size-weighted mean of its two."""
    binary = pytest.importorskip("medpy.metric.binary")
    for y_true, y_pred in real_pairs():
        n_true, n_pred = brute_surface(y_true).sum(), brute_surface(y_pred).sum()
        to_pred = binary.asd(y_true, y_pred, spacing, connectivity=2)
        to_true = binary.asd(y_pred, y_true, spacing, connectivity=2)
        assert metrics.assd(y_true, y_pred, spacing) == pytest.approx(
            (n_true * to_pred + n_pred * to_true) / (n_true + n_pred), abs=1e-6)
        assert metrics.assd(y_true, y_pred, spacing) == pytest.approx(
            binary.assd(y_pred, y_true, spacing, connectivity=2), abs=1e-6)


# ------------------------------------------------------- bootstrap and ranking

def test_bootstrap_two_values_hand_derived():
    """Means of resamples of [0, 1] take 0, 0.5, 1 with probability 1/4, 1/2, 1/4, so
    the 2.5% and 97.5% quantiles are 0 and 1."""
    assert metrics.bootstrap_ci([0.0, 1.0], 4000, 0.95, seed=1) == (0.0, 1.0)
    assert metrics.bootstrap_ci([0.3], 10) == (0.3, 0.3)
    assert all(math.isnan(v) for v in metrics.bootstrap_ci([], 10))
    with pytest.raises(ValueError, match="NaN"):
        metrics.bootstrap_ci([math.nan], 10)


def test_bootstrap_close_to_normal_interval():
    values = np.random.default_rng(3).normal(0.7, 0.1, 400)
    low, high = metrics.bootstrap_ci(values, 2000, 0.95, seed=0)
    half = 1.96 * values.std() / math.sqrt(values.size)
    assert low == pytest.approx(values.mean() - half, abs=0.1 * half)
    assert high == pytest.approx(values.mean() + half, abs=0.1 * half)
    out = metrics.summarize({"dice": list(values) + [math.nan]}, 2000, 0.95, seed=0)
    assert (out["dice"]["ci_low"], out["dice"]["ci_high"]) == (low, high)
    assert out["dice"]["num_nan"] == 1


def test_rank_cases_skips_nan():
    assert metrics.rank_cases([0.5, math.nan, 0.9, 0.1, 0.7]) == {
        "best": 2, "median": 4, "worst": 3}
    assert metrics.rank_cases([math.nan]) is None
