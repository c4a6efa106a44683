"""Input validation shared by the metric modules; every message names the case."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np


def prefix(case_id: Optional[str]) -> str:
    """``"Case 'x': "`` to put in front of an error message, or ``""``."""
    return f"Case {case_id!r}: " if case_id is not None else ""


def check_mask(mask, name: str, case_id: Optional[str]) -> np.ndarray:
    """Validate one binary mask and return it as a boolean array.

    Raises:
        ValueError: not 2-D or 3-D, not numeric/boolean, or values other than 0 and 1.
    """
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3):
        raise ValueError(f"{prefix(case_id)}`{name}` must be a 2-D mask of shape "
                         f"(height, width) or a 3-D one (depth, height, width), received "
                         f"shape {mask.shape}")
    if mask.dtype == bool:
        return mask
    if not np.issubdtype(mask.dtype, np.number):
        raise ValueError(f"{prefix(case_id)}`{name}` must be boolean or numeric with "
                         f"values 0 and 1, received dtype {mask.dtype}")
    bad = ~((mask == 0) | (mask == 1))
    if bad.any():
        raise ValueError(f"{prefix(case_id)}`{name}` must be boolean or contain only "
                         f"0 and 1, received {mask.dtype} values such as "
                         f"{np.unique(mask[bad])[:5].tolist()}")
    return mask.astype(bool)


def check_pair(y_true, y_pred, case_id: Optional[str]) -> tuple[np.ndarray, np.ndarray]:
    """Validate a reference and a prediction mask of the same shape."""
    y_true = check_mask(y_true, "y_true", case_id)
    y_pred = check_mask(y_pred, "y_pred", case_id)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{prefix(case_id)}`y_true` and `y_pred` must have the same "
                         f"shape, received {y_true.shape} and {y_pred.shape}")
    return y_true, y_pred


def check_roi(roi, shape: tuple, case_id: Optional[str]) -> Optional[np.ndarray]:
    """Validate an optional region of interest of the masks' ``shape``."""
    if roi is None:
        return None
    roi = check_mask(roi, "roi", case_id)
    if roi.shape != shape:
        raise ValueError(f"{prefix(case_id)}`roi` must have the masks' shape {shape}, "
                         f"received {roi.shape}")
    return roi


def apply_roi(y_true, y_pred, roi, case_id: Optional[str]):
    """Validated ``(y_true & roi, y_pred & roi, roi)``; ``roi`` all-True when None."""
    y_true, y_pred = check_pair(y_true, y_pred, case_id)
    roi = check_roi(roi, y_true.shape, case_id)
    if roi is None:
        return y_true, y_pred, np.ones(y_true.shape, dtype=bool)
    return y_true & roi, y_pred & roi, roi


def check_spacing(spacing, case_id: Optional[str], ndim: int = 2) -> tuple:
    """Millimetres per pixel (voxel) along each of the ``ndim`` axes as floats:
    ``(row, col)`` for images, ``(d, row, col)`` for volumes; ``None`` gives ones.

    Raises:
        ValueError: not ``ndim`` finite numbers > 0.
    """
    if spacing is None:
        return (1.0,) * ndim
    what = "a (row, col) pair" if ndim == 2 else f"{ndim} numbers, one per axis,"
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{prefix(case_id)}`spacing` must be {what} of "
                         f"positive numbers, received {spacing!r}") from err
    if len(values) != ndim or not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"{prefix(case_id)}`spacing` must be {what} of "
                         f"positive numbers, received {spacing!r}")
    return values


def check_probabilities(probabilities, shape: tuple, case_id: Optional[str]) -> np.ndarray:
    """Validate foreground probabilities of the masks' ``shape`` as float64.

    Raises:
        ValueError: wrong shape, not numeric, NaN, or values outside [0, 1].
    """
    probabilities = np.asarray(probabilities)
    if probabilities.shape != shape:
        raise ValueError(f"{prefix(case_id)}`probabilities` must have the masks' shape "
                         f"{shape}, received {probabilities.shape}")
    if not np.issubdtype(probabilities.dtype, np.number) and probabilities.dtype != bool:
        raise ValueError(f"{prefix(case_id)}`probabilities` must be numeric, received "
                         f"dtype {probabilities.dtype}")
    probabilities = probabilities.astype(np.float64)
    num_nan = int(np.isnan(probabilities).sum())
    if num_nan:
        raise ValueError(f"{prefix(case_id)}`probabilities` must not contain NaN, "
                         f"received {num_nan} NaN values")
    if probabilities.min() < 0 or probabilities.max() > 1:
        raise ValueError(f"{prefix(case_id)}`probabilities` must be in [0, 1], received "
                         f"values in [{probabilities.min()}, {probabilities.max()}]")
    return probabilities
