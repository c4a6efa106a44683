"""Surface-distance metrics: HD95, ASSD and normalized surface Dice (NSD).

The reductions are those of DeepMind's ``surface-distance`` package (Nikolov et al.
2018), computed on pixels rather than on the pixel-corner grid with surfel areas:

* the *surface* of a mask is its foreground pixels with at least one background pixel
  among their 8 neighbours, i.e. ``mask & ~binary_erosion(mask, 3x3 ones,
  border_value=0)``. Pixels beyond the image edge count as background, so an object
  cut by the image border has a surface along that border (as in MONAI and medpy).
  The 8-neighbourhood gives a 4-connected contour without diagonal gaps, the pixel
  analogue of DeepMind's 2x2 corner neighbourhood (MONAI and medpy default to the
  4-neighbourhood, a thinner, 8-connected contour);
* the directed distances from A to B are, for every surface pixel of A, the Euclidean
  distance (scaled by ``spacing``) to the nearest surface pixel of B, from
  ``scipy.ndimage.distance_transform_edt(~surface_B, sampling=spacing)``;
* HD95 is the larger of the two directed 95th percentiles (``np.percentile``, linear
  interpolation; DeepMind's ``compute_robust_hausdorff``). medpy's ``hd95`` instead
  takes the 95th percentile of the union of both directed sets, which is never larger;
* ASSD is the mean of the union of both directed sets, ``(sum d(A->B) + sum d(B->A)) /
  (|S_A| + |S_B|)`` (Heimann et al. 2009; MONAI ``symmetric=True``; medpy 0.5's
  ``assd``, checked in the tests). Averaging the two directed means instead, as some
  implementations do, weights the shorter contour more; DeepMind's
  ``compute_average_surface_distance`` returns the two directed means;
* NSD at tolerance ``tau`` is the fraction of both surfaces within ``tau`` of the other,
  ``(#{d(A->B) <= tau} + #{d(B->A) <= tau}) / (|S_A| + |S_B|)`` (DeepMind's
  ``compute_surface_dice_at_tolerance`` with unit surfel areas, MONAI
  ``compute_surface_dice``).

Volumes (3-D masks, ``spacing`` ``(d, row, col)`` mm per voxel) follow the same rules
one dimension up: the surface erosion uses the full 3x3x3 neighbourhood (26
neighbours, the analogue of the 8 above), and the missed-structure penalty is the
volume's diagonal.

With a region of interest, both masks are first intersected with it (pixels outside
count as background), then the surfaces are taken as above.

A missed structure (reference not empty, prediction empty) has no surface to measure
from, its distance undefined. Leaving it out (NaN) would reward a model for missing
structures, and MONAI's ``inf`` makes every mean infinite; as the BraTS challenge
does (373.13 mm, its volume's diagonal), HD95 and ASSD take the largest distance the
image allows, its diagonal ``sqrt((H * row_mm)^2 + (W * col_mm)^2)``
(:func:`missed_penalty`), which enters the mean; the evaluation counts such cases
(``num_penalized`` in its summary).

References:
    Nikolov et al., "Deep learning to achieve clinically applicable segmentation of
    head and neck anatomy for radiotherapy", arXiv:1809.04430, 2018; code:
    https://github.com/google-deepmind/surface-distance
    Heimann et al., "Comparison and evaluation of methods for liver segmentation from
    CT datasets", IEEE TMI 28(8), 2009.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from segtie.metrics._checks import apply_roi, check_spacing, prefix

def missed_penalty(shape: Sequence[int], spacing: Optional[Sequence[float]] = None) -> float:
    """HD95 and ASSD of a missed structure: the image diagonal, in mm (pixels without spacing).

    Args:
        shape: ``(height, width)`` of the image, pixels (``(depth, height, width)``
            of a volume).
        spacing: mm per pixel along each axis, or None.

    Returns:
        ``sqrt((height * row)^2 + (width * col)^2)`` (and the depth term of a volume).
    """
    sampling = check_spacing(spacing, None, len(shape))
    return float(math.hypot(*(side * mm for side, mm in zip(shape, sampling))))


def _surface(mask: np.ndarray) -> np.ndarray:
    """Foreground pixels with a background pixel (or the image edge) among their 8
    neighbours (26 in a volume)."""
    full = np.ones((3,) * mask.ndim, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, structure=full, border_value=0)


def _directed(surf_from: np.ndarray, surf_to: np.ndarray, sampling) -> np.ndarray:
    if not surf_from.any():
        return np.zeros(0)
    if not surf_to.any():
        return np.full(int(surf_from.sum()), np.inf)
    distmap = ndimage.distance_transform_edt(~surf_to, sampling=sampling)
    return distmap[surf_from]


def surface_distances(y_true, y_pred, spacing: Optional[Sequence[float]] = None,
                      roi=None, *, case_id: Optional[str] = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Directed distances between the surfaces of two masks.

    The distance maps are computed on the bounding box of both masks padded by one
    background pixel, which gives the same result as on the full image (every surface
    pixel lies in the box) at a fraction of the cost.

    Args:
        y_true: reference mask, boolean or 0/1.
        y_pred: predicted mask, boolean or 0/1.
        spacing: ``(row, col)`` millimetres per pixel (``(d, row, col)`` per voxel of
            a volume); ``None`` = pixels.
        roi: optional region of interest; both masks are intersected with it.
        case_id: optional name put in front of error messages.

    Shapes:
        ``y_true``, ``y_pred``, ``roi``: ``(height, width)``, or ``(depth, height,
        width)`` for volumes.

    Returns:
        ``(true_to_pred, pred_to_true)``: float64 arrays with one distance per surface
        pixel of ``y_true`` (resp. ``y_pred``), in row-major order of the pixels. If
        the other mask is empty the distances are ``inf``; an empty mask gives an
        empty array (as DeepMind's ``compute_surface_distances``).

    Raises:
        ValueError: bad masks (see :func:`segtie.metrics.dice`) or spacing not two
            positive numbers.
    """
    y_true, y_pred, _ = apply_roi(y_true, y_pred, roi, case_id)
    sampling = check_spacing(spacing, case_id, y_true.ndim)
    either = y_true | y_pred
    if not either.any():
        return np.zeros(0), np.zeros(0)
    box = []
    for axis in range(either.ndim):
        others = tuple(a for a in range(either.ndim) if a != axis)
        found = np.flatnonzero(either.any(axis=others))
        box.append(slice(found[0], found[-1] + 1))
    box = tuple(box)
    # Zero padding reproduces border_value=0 at the image edge and the true background
    # elsewhere (nothing outside the box is foreground).
    surf_true = _surface(np.pad(y_true[box], 1))
    surf_pred = _surface(np.pad(y_pred[box], 1))
    return (_directed(surf_true, surf_pred, sampling),
            _directed(surf_pred, surf_true, sampling))


def surface_metrics(y_true, y_pred, spacing: Optional[Sequence[float]] = None,
                    tolerance: float = 1.0, roi=None, *,
                    case_id: Optional[str] = None) -> dict[str, float]:
    """HD95, ASSD and NSD from one computation of the surface distances.

    Args:
        y_true: reference mask, boolean or 0/1.
        y_pred: predicted mask, boolean or 0/1.
        spacing: ``(row, col)`` millimetres per pixel (``(d, row, col)`` per voxel of
            a volume); ``None`` = pixels.
        tolerance: NSD tolerance in the unit of the distances (mm with ``spacing``,
            pixels without), >= 0. Default 1.0.
        roi: optional region of interest; both masks are intersected with it.
        case_id: optional name put in front of error messages.

    Shapes:
        ``y_true``, ``y_pred``, ``roi``: ``(height, width)``, or ``(depth, height,
        width)`` for volumes.

    Returns:
        ``{"hd95", "assd", "nsd"}``. Both masks empty: 0.0, 0.0, 1.0. Reference empty
        only: NaN, NaN, NaN. Prediction empty only (a missed structure): the
        :func:`missed_penalty` of the image for both distances, and NSD 0.0.

    Raises:
        ValueError: bad masks, bad spacing, or a negative or NaN tolerance.
    """
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0):
        raise ValueError(f"{prefix(case_id)}`tolerance` must be a number >= 0, received "
                         f"{tolerance!r}")
    y_true, y_pred, _ = apply_roi(y_true, y_pred, roi, case_id)
    check_spacing(spacing, case_id, y_true.ndim)
    has_true, has_pred = bool(y_true.any()), bool(y_pred.any())
    if not has_true:
        return ({"hd95": 0.0, "assd": 0.0, "nsd": 1.0} if not has_pred else
                {"hd95": math.nan, "assd": math.nan, "nsd": math.nan})
    if not has_pred:
        penalty = missed_penalty(y_true.shape, spacing)
        return {"hd95": penalty, "assd": penalty, "nsd": 0.0}
    a, b = surface_distances(y_true, y_pred, spacing, case_id=case_id)
    both = np.concatenate((a, b))
    return {"hd95": float(max(np.percentile(a, 95), np.percentile(b, 95))),
            "assd": float(both.mean()),
            "nsd": float(np.count_nonzero(both <= tolerance) / both.size)}


def hd95(y_true, y_pred, spacing: Optional[Sequence[float]] = None, roi=None, *,
         case_id: Optional[str] = None) -> float:
    """95th-percentile Hausdorff distance, ``max(p95(d(A->B)), p95(d(B->A)))``.

    Args, Shapes, Raises: as :func:`surface_metrics`.

    Returns:
        HD95 in mm (pixels if ``spacing`` is None); 0.0 if both masks are empty, NaN
        if only ``y_true`` is, :func:`missed_penalty` if only ``y_pred`` is.

    References:
        DeepMind ``surface-distance``, ``compute_robust_hausdorff(..., 95)``.
    """
    return surface_metrics(y_true, y_pred, spacing, roi=roi, case_id=case_id)["hd95"]


def assd(y_true, y_pred, spacing: Optional[Sequence[float]] = None, roi=None, *,
         case_id: Optional[str] = None) -> float:
    """Average symmetric surface distance: the mean of both directed distance sets.

    Args, Shapes, Raises: as :func:`surface_metrics`.

    Returns:
        ASSD in mm (pixels if ``spacing`` is None); 0.0 if both masks are empty, NaN
        if only ``y_true`` is, :func:`missed_penalty` if only ``y_pred`` is.

    References:
        Heimann et al. 2009 (see the module docstring).
    """
    return surface_metrics(y_true, y_pred, spacing, roi=roi, case_id=case_id)["assd"]


def nsd(y_true, y_pred, spacing: Optional[Sequence[float]] = None, tolerance: float = 1.0,
        roi=None, *, case_id: Optional[str] = None) -> float:
    """Normalized surface Dice at ``tolerance``: the share of both surfaces within it.

    Args, Shapes, Raises: as :func:`surface_metrics`.

    Returns:
        NSD in [0, 1]; 1.0 if both masks are empty, NaN if only ``y_true`` is empty,
        0.0 if only ``y_pred`` is empty.

    References:
        Nikolov et al. 2018, ``compute_surface_dice_at_tolerance``.
    """
    return surface_metrics(y_true, y_pred, spacing, tolerance, roi, case_id=case_id)["nsd"]
