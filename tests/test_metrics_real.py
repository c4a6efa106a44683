"""segtie.metrics on real masks (Kvasir-SEG, DRIVE) against independent references:
brute-force surface distances, medpy, scikit-learn's AUC/AP and a SciPy KD-tree."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from scipy.spatial.distance import cdist

from realdata import SHARED_DATA, require_archive
from segtie import metrics

KVASIR_ZIP = SHARED_DATA / "kvasir-seg.zip"


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
