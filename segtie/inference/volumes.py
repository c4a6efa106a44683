"""Volumes: 3-D inference, and ``segtie predict`` on NIfTI files.

:func:`predict_volume` runs a 3-D model on a whole volume at its own size by sliding
window (:mod:`segtie.inference.sliding_window`). :func:`predict_nifti` reads a
``.nii``/``.nii.gz`` file (:func:`segtie.data.nifti.read_nifti_bytes`; intensities
z-scored as in training, :func:`segtie.data.nifti.zscore`), predicts it and writes
``<stem>_mask.nii.gz``: uint8 labels (0/1 for a binary model, class indices for a
multi-class one) in the input's voxel order, with the input's affine, so a viewer
lays the mask over the image; optionally ``<stem>_prob.npy`` (float32
``(X, Y, Z, K)``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segtie.data.nifti import NIFTI_SUFFIXES as VOLUME_SUFFIXES
from segtie.data.nifti import nifti_stem
from segtie.inference.options import InferenceOptions
from segtie.inference.sliding_window import _sliding_window

__all__ = ["VOLUME_SUFFIXES", "is_volume", "predict_nifti", "predict_volume", "volume_stem"]


def is_volume(path) -> bool:
    """Whether ``path`` names a NIfTI file (``.nii`` or ``.nii.gz``, any case)."""
    return Path(path).name.lower().endswith(VOLUME_SUFFIXES)


def volume_stem(path) -> str:
    """``case7`` for ``case7.nii.gz`` or ``case7.nii``."""
    return nifti_stem(Path(path).name) or Path(path).stem


def refuse_2d_only(**options: bool) -> None:
    """Refuse, never ignore, a 2-D-only option set for a volume.

    Args:
        options: ``eval`` key -> its value, e.g. ``tta_mirror=True``.

    Raises:
        ValueError: naming the first key whose value is true.
    """
    for key, value in options.items():
        if value:
            raise ValueError(f"`eval.{key}` must be false for volumes "
                             f"(`model.spatial_dims` = 3): not implemented in 3-D")


def predict_volume(model, image: np.ndarray, options: InferenceOptions) -> np.ndarray:
    """Probabilities of one volume at its own size (sliding window, Gaussian blending).

    Softmax over the ``K`` classes of a multi-class model; the sigmoid of a binary
    model's one logit (``K = 1``).

    Shapes:
        ``image``: float32 ``(D0, H0, W0, C)``. Returns float32 ``(D0, H0, W0, K)``.

    Raises:
        ValueError: the window is not three sides, the model's output is wrong, or
            ``options`` asks for TTA (2-D only: refused, never ignored).
    """
    refuse_2d_only(tta_mirror=options.tta_mirror, tta_transpose=options.tta_transpose)
    logits = _sliding_window(model, np.asarray(image, np.float32), options).astype(np.float64)
    if logits.shape[-1] == 1:
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


def predict_nifti(model, path: Path, outputs: list, options: InferenceOptions,
                  threshold: float) -> None:
    """Predict one NIfTI volume and write ``outputs`` (module docstring).

    Args:
        model: volumes float32 ``(n, d, h, w, C)`` -> logits ``(n, d, h, w, K)``.
        path: the ``.nii``/``.nii.gz`` input.
        outputs: ``[mask path]`` or ``[mask path, probabilities .npy path]``.
        options: the model's inference options (a three-sided window).
        threshold: a binary model's foreground is ``p > threshold``.

    Raises:
        ValueError: the file is not a 3-D NIfTI volume, or the model is not a 3-D
            model (its window does not have three sides); the message names ``path``.
    """
    import nibabel as nib

    from segtie.data.nifti import read_nifti_bytes, zscore

    if len(options.window) != 3:
        raise ValueError(f"{path} is a 3-D volume, but the model is a 2-D model (window "
                         f"{list(options.window)}); use a model trained with "
                         f"model.spatial_dims: 3")
    volume = read_nifti_bytes(Path(path).read_bytes(), str(path))
    probabilities = predict_volume(model, zscore(volume.data)[..., None], options)
    if options.num_classes == 1:
        labels = (probabilities[..., 0] > threshold).astype(np.uint8)
    else:
        labels = np.argmax(probabilities, axis=-1).astype(np.uint8)
    image = nib.Nifti1Image(labels, volume.affine)
    image.header.set_zooms(volume.spacing)
    nib.save(image, str(outputs[0]))
    if len(outputs) > 1:
        np.save(outputs[1], probabilities)
