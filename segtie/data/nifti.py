"""NIfTI volumes: reading them with nibabel, their spacing, the pair check, the one
intensity rule.

A volume is kept in its stored voxel order (no reorientation): the affine, the
spacing (``header.get_zooms()[:3]``, mm per voxel along the three array axes) and
the orientation codes (``nibabel.aff2axcodes``, e.g. ``("R", "A", "S")``) say how it
lies in the scanner's space, and a mask written for it (``segtie predict``) takes the
same affine.

Pairs (:func:`check_pair`, the one home of these rules for every NIfTI source): an
image and its label must have finite intensities, the same shape, the same affine to
:data:`AFFINE_ATOL_MM` millimetres, and label values from an allowed set.

Intensities (MRI) are normalised per volume by :func:`zscore`: ``(x - mean) / std``
over all voxels of the volume, in float64, cast to float32; a constant volume
(``std == 0``) becomes zeros. This is the nnU-Net rule for MRI ("ZScoreNormalization",
Isensee et al. 2021) without its foreground mask; CT windowing would be another rule.

References:
    Brett et al., nibabel, https://nipy.org/nibabel (the reader).
    Isensee et al., "nnU-Net", Nature Methods 18, 203-211 (2021).
"""

from __future__ import annotations

import dataclasses
import gzip
from typing import Iterable, Optional

import nibabel as nib
import numpy as np

__all__ = ["AFFINE_ATOL_MM", "NIFTI_SUFFIXES", "Volume", "check_pair", "nifti_stem",
           "read_nifti_bytes", "zscore"]

AFFINE_ATOL_MM = 1e-4  # an image and its label lie in the same space to this tolerance
NIFTI_SUFFIXES = (".nii.gz", ".nii")


@dataclasses.dataclass(frozen=True)
class Volume:
    """One decoded NIfTI volume.

    Attributes:
        data: the voxels as stored, ``(X, Y, Z)`` (4-D files are refused).
        affine: float64 ``(4, 4)``, voxel indices -> scanner millimetres.
        spacing: ``(sx, sy, sz)`` floats, mm per voxel along the array axes.
        orientation: three axis codes from the affine, e.g. ``"RAS"``.
    """

    data: np.ndarray
    affine: np.ndarray
    spacing: tuple
    orientation: str


def read_nifti_bytes(data: bytes, name: str) -> Volume:
    """Decode a ``.nii`` or ``.nii.gz`` file held in memory.

    Args:
        data: the file's bytes (gzip-compressed or not).
        name: what to call the file in errors (e.g. the archive member).

    Returns:
        :class:`Volume`.

    Raises:
        ValueError: the bytes are not a NIfTI-1/2 file, the gzip stream is damaged,
            or the volume is not 3-D; the message names ``name``.
    """
    try:
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        image = nib.Nifti1Image.from_bytes(raw)
        voxels = np.asanyarray(image.dataobj)
    except Exception as err:  # nibabel raises many types (HeaderDataError, ...) for bad files
        raise ValueError(f"Cannot read {name!r} as NIfTI: {type(err).__name__}: {err}") from err
    if voxels.ndim != 3:
        raise ValueError(f"{name!r} must be a 3-D volume, received shape {voxels.shape}")
    spacing = tuple(float(z) for z in image.header.get_zooms()[:3])
    return Volume(voxels, np.asarray(image.affine, np.float64), spacing,
                  "".join(nib.aff2axcodes(image.affine)))


def nifti_stem(name: str) -> Optional[str]:
    """``case7`` for ``case7.nii.gz`` or ``case7.nii`` (suffix in any letter case); None
    for a name without a NIfTI suffix."""
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)]
    return None


def check_pair(image: Volume, label: Volume, image_name: str, label_name: str,
               allowed: Iterable[int], values_name: str = "class indices") -> Optional[str]:
    """The first problem of an image and its label, or None when the pair is usable.

    Rules, in this order: the image's intensities are finite (no NaN or infinity);
    the label has the image's shape; the label's affine equals the image's to
    :data:`AFFINE_ATOL_MM` mm (``np.allclose``, absolute); every label value is in
    ``allowed``.

    Args:
        image, label: the decoded volumes (:func:`read_nifti_bytes`).
        image_name, label_name: what to call the files in the message.
        allowed: the label values allowed (class indices, or a label map's keys).
        values_name: what the allowed values are, for the message. Default
            ``"class indices"``.

    Returns:
        One message naming the file at fault, or None.
    """
    data = np.asarray(image.data)
    if data.dtype.kind in "fc" and not np.all(np.isfinite(data)):
        return (f"{image_name!r} holds {int(np.sum(~np.isfinite(data)))} NaN or infinite "
                f"voxels, expected finite intensities")
    if image.data.shape != label.data.shape:
        return (f"{label_name!r} has shape {label.data.shape}, expected its image "
                f"{image_name!r}'s {image.data.shape}")
    if not np.allclose(image.affine, label.affine, atol=AFFINE_ATOL_MM):
        return (f"{label_name!r} has affine {label.affine.round(4).tolist()}, expected "
                f"its image {image_name!r}'s {image.affine.round(4).tolist()}")
    allowed = sorted(int(v) for v in allowed)
    values = np.unique(np.asarray(label.data))
    if not np.all(np.isin(values, allowed)):
        shown = values[:8].tolist() + (["..."] if len(values) > 8 else [])
        return (f"{label_name!r} holds values {shown}, expected {values_name} in "
                f"{allowed}")
    return None


def zscore(volume: np.ndarray) -> np.ndarray:
    """Per-volume z-score: ``(x - mean(x)) / std(x)`` over every voxel (module doc).

    Args:
        volume: any real array, e.g. ``(X, Y, Z)`` uint8 or float32 raw intensities.

    Returns:
        float32 array of the same shape with mean 0 and standard deviation 1 (zeros
        for a constant volume).

    Raises:
        ValueError: a non-finite voxel (NaN or infinity).
    """
    x = np.asarray(volume, np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"Intensities must be finite for z-score normalisation, received "
                         f"{int(np.sum(~np.isfinite(x)))} NaN or infinite voxels")
    std = x.std()
    return (np.zeros_like(x) if std == 0 else (x - x.mean()) / std).astype(np.float32)
