"""Raw mask or label values to class indices: the one rule the folder sources share.

Binary masks without a label map are ``{0, m}`` with ``m`` the largest value of the
file's type (0/1, 0/255, 0/65535), any non-zero value foreground; with a threshold,
foreground where ``value > threshold``; with a label map, each raw value must be a
key of the map. Lossy (JPEG) masks arrive binarized and are binary data only.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

BINARY_VALUE_SETS = ({0, 1}, {0, 255}, {0, 65535})  # {0, max of the type}

__all__ = ["BINARY_VALUE_SETS", "label_table", "mask_classes"]


def label_table(label_map: Optional[dict]) -> Optional[np.ndarray]:
    """A lookup table raw value -> class index, or ``None`` for binary data.

    Args:
        label_map: ``{raw value (0..65535): class index (0..255)}``, or ``None``.

    Returns:
        ``uint8 (65536,)``; values not in the map give class 0 (callers check the
        keys first, :func:`mask_classes` does).
    """
    if label_map is None:
        return None
    table = np.zeros(65536, np.uint8)
    table[list(label_map)] = list(label_map.values())
    return table


def mask_classes(values: np.ndarray, lossy: bool, label_map: Optional[dict],
                 mask_threshold: Optional[int] = None) -> np.ndarray:
    """Raw mask values to class indices (module doc).

    Args:
        values: integer ``(H, W)`` raw values (a palette image's indices); for a lossy
            mask, already binarized 0/1.
        lossy: whether the mask came from a lossy (JPEG) file.
        label_map: raw value -> class index, or ``None`` for binary masks.
        mask_threshold: binary masks only: foreground where ``value > mask_threshold``.

    Returns:
        ``uint8 (H, W)`` class indices (0/1 for binary data).

    Raises:
        ValueError: a lossy mask with more than two classes, values that are not
            binary without a label map or threshold, or values outside the label
            map's keys; the message lists up to ten of the values.
    """
    if lossy:
        if label_map is not None and max(label_map.values()) > 1:
            raise ValueError("a JPEG mask is lossy and holds binary masks only, but "
                             "`data.label_map` has more than two classes; save it as PNG")
        return values.astype(np.uint8)
    if mask_threshold is not None:  # binary data with stray values: config checks this
        return (values > mask_threshold).astype(np.uint8)
    present = set(np.unique(values).tolist())
    if label_map is None:
        if not any(present <= allowed for allowed in BINARY_VALUE_SETS):
            shown = sorted(present)[:10] + (["..."] if len(present) > 10 else [])
            raise ValueError(f"values {shown} are not binary (0/1, 0/255 or 0/65535); set "
                             f"`data.mask_threshold` (foreground = value > threshold) for "
                             f"binary masks with stray values, or `data.label_map` for "
                             f"classes")
        return (values > 0).astype(np.uint8)
    unknown = sorted(present - set(label_map))
    if unknown:
        shown = unknown[:10] + (["..."] if len(unknown) > 10 else [])
        raise ValueError(f"values {shown} are not in the label map (keys "
                         f"{sorted(label_map)})")
    return label_table(label_map)[values]
