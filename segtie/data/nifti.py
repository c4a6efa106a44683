"""NIfTI volumes: reading them with nibabel, their spacing, the one intensity rule.

A volume is kept in its stored voxel order (no reorientation): the affine, the
spacing (``header.get_zooms()[:3]``, mm per voxel along the three array axes) and
the orientation codes (``nibabel.aff2axcodes``, e.g. ``("R", "A", "S")``) say how it
lies in the scanner's space, and a mask written for it (``segtie predict``) takes the
same affine.

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

import nibabel as nib
import numpy as np

__all__ = ["Volume", "read_nifti_bytes", "zscore"]


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
