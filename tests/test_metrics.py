"""Tests for segtie.metrics: hand-computed cases, conventions, errors, real masks."""

import io
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from scipy.spatial.distance import cdist

from segtie import metrics

KVASIR_ZIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "kvasir-seg.zip"


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

def test_empty_conventions():
    empty = np.zeros((8, 8), dtype=np.uint8)
    some = square((8, 8), 2, 2, 3)
    assert metrics.score_case(empty, empty) == {"dice": 1.0, "iou": 1.0, "hd95": 0.0}
    ref_empty = metrics.score_case(empty, some)
    assert all(math.isnan(v) for v in ref_empty.values())
    pred_empty = metrics.score_case(some, empty)
    assert pred_empty["dice"] == 0.0 and pred_empty["iou"] == 0.0
    assert math.isnan(pred_empty["hd95"])
    a, b = metrics.surface_distances(some, empty)
    assert a.size == 9 - 1 and np.isinf(a).all() and b.size == 0


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
    if not KVASIR_ZIP.is_file():
        pytest.skip(f"Kvasir-SEG archive not found at {KVASIR_ZIP}")
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
