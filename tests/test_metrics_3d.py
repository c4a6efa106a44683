"""Metrics on volumes: Dice, HD95, ASSD, NSD in mm on real Hippocampus labels, checked
against medpy (an independent implementation) and a brute-force computation to 1e-6."""

import gzip
import zipfile

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from segtie import metrics

CASES = ("hippocampus_001", "hippocampus_003")
SPACINGS = [(1.0, 1.0, 1.0), (0.8, 1.0, 1.5)]


@pytest.fixture(scope="module")
def labels(hippocampus_archive):
    with zipfile.ZipFile(hippocampus_archive) as archive:
        return [np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(archive.read(
            f"TrainingSet/labels/{case}.nii.gz"))).dataobj) for case in CASES]


@pytest.fixture(scope="module")
def pairs(labels):
    """(reference, prediction) pairs of real structures: shifted, eroded, another case's."""
    first, second = labels
    shape = tuple(min(a, b) for a, b in zip(first.shape, second.shape))
    crop = tuple(slice(0, s) for s in shape)
    return [(first == 1, np.roll(first == 1, (2, -1, 3), axis=(0, 1, 2))),
            (first == 2, ndimage.binary_erosion(first == 2, iterations=1)),
            (first[crop] == 2, second[crop] == 2)]


def brute_surface(mask):
    """Foreground voxels with a background voxel among their 26 neighbours (edge = background)."""
    padded = np.pad(mask, 1)
    inner = np.ones_like(padded)
    for shift in np.ndindex(3, 3, 3):
        inner &= np.roll(padded, tuple(s - 1 for s in shift), axis=(0, 1, 2))
    return (padded & ~inner)[1:-1, 1:-1, 1:-1]


@pytest.mark.parametrize("spacing", SPACINGS)
def test_surface_distances_match_brute_force(pairs, spacing):
    for y_true, y_pred in pairs:
        a, b = metrics.surface_distances(y_true, y_pred, spacing)
        points_t = np.argwhere(brute_surface(y_true)) * spacing
        points_p = np.argwhere(brute_surface(y_pred)) * spacing
        d = cdist(points_t, points_p)
        np.testing.assert_allclose(np.sort(a), np.sort(d.min(axis=1)), atol=1e-6)
        np.testing.assert_allclose(np.sort(b), np.sort(d.min(axis=0)), atol=1e-6)
        expected = max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95))
        assert metrics.hd95(y_true, y_pred, spacing) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("spacing", SPACINGS)
def test_real_volumes_match_medpy(pairs, spacing):
    """medpy with ``connectivity=3`` (26 neighbours) has our surfaces; its ``hd95`` is
    the 95th percentile of the union of both directed sets, its ``assd`` the pooled mean."""
    binary = pytest.importorskip("medpy.metric.binary")
    for y_true, y_pred in pairs:
        assert metrics.dice(y_true, y_pred) == pytest.approx(binary.dc(y_pred, y_true),
                                                             abs=1e-12)
        a, b = metrics.surface_distances(y_true, y_pred, spacing)
        assert max(a.max(), b.max()) == pytest.approx(
            binary.hd(y_pred, y_true, spacing, connectivity=3), abs=1e-6)
        assert np.percentile(np.hstack((a, b)), 95) == pytest.approx(
            binary.hd95(y_pred, y_true, spacing, connectivity=3), abs=1e-6)
        assert metrics.assd(y_true, y_pred, spacing) == pytest.approx(
            binary.assd(y_pred, y_true, spacing, connectivity=3), abs=1e-6)


def test_spacing_scales_and_the_penalty_is_the_volume_diagonal(pairs):
    y_true, y_pred = pairs[0]
    assert metrics.hd95(y_true, y_pred, (2.0, 2.0, 2.0)) == pytest.approx(
        2 * metrics.hd95(y_true, y_pred), abs=1e-9)
    empty = np.zeros_like(y_true)
    d, h, w = y_true.shape
    expected = float(np.sqrt((d * 0.8) ** 2 + h ** 2 + (w * 1.5) ** 2))
    assert metrics.surface_metrics(y_true, empty, (0.8, 1.0, 1.5)) == {
        "hd95": pytest.approx(expected), "assd": pytest.approx(expected), "nsd": 0.0}
    with pytest.raises(ValueError, match=r"`spacing` must be 3 numbers, one per axis"):
        metrics.hd95(y_true, y_pred, (1.0, 1.0))
