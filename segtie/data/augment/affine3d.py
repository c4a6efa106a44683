"""Small 3-D rotations and isotropic scaling of a volume and its mask, in one resampling.

The rotation and the scaling are composed into one affine map about the volume's
centre ``c = (shape - 1) / 2`` (voxel index coordinates): the voxel at source index
``s`` lands at

    ``p = c + scale * R (s - c)``,   ``R = R_0(a_0) R_1(a_1) R_2(a_2)``,

where ``R_k(a)`` turns the plane of the two other axes ``(i, j)`` by ``a`` degrees
from axis ``i`` toward axis ``j``, with ``(i, j) = (1, 2), (2, 0), (0, 1)`` for
``k = 0, 1, 2``: ``R_2(90)`` is ``np.rot90(x, 1, axes=(0, 1))``. ``scale > 1`` zooms
in, as in the 2-D :mod:`segtie.data.augment.spatial`. Each output voxel is sampled at
``c + R^T (p - c) / scale`` with :func:`scipy.ndimage.affine_transform`: the image
trilinearly (``order=1``), the mask by nearest neighbour (``order=0``), so a mask
keeps exactly its label values (never a blend of two labels).

Outside the source (``mode="constant"``: a coordinate outside ``[0, side - 1]`` on
any axis) the image is filled with :data:`IMAGE_FILL` = 0 and the mask with
:data:`MASK_FILL` = 0 (background). 0 rather than the volume's minimum because the
volumes are z-scored (0 is the volume's mean) and :func:`segtie.data.volumes.fit_volume`
already pads them with 0, so the network sees one value for "no data" whether it
came from padding or from a rotation's corner; nnU-Net fills its normalized data
with 0 too (``border_cval_data=0``). A patch's minimum would also vary from patch to
patch. A source on the border itself is inside, but float rounding can put it just
outside (a 90-degree turn computed in floating point): such a border voxel is filled.
The training pipeline crops the patch first and then augments it, so the corners
of a turned or zoomed-out patch are fill: at +-30 degrees about each axis, 22% of
a 32x32x32 patch on average (nnU-Net crops a larger region first and has none).

The random draws are TensorFlow stateless (the same seed gives the same output);
only the resampling runs in NumPy/SciPy, through :func:`tf.numpy_function`.

References:
    Isensee et al., "nnU-Net: a self-configuring method for deep learning-based
    biomedical image segmentation", Nature Methods 2021: 3-D rotations about all
    three axes, each angle uniform in [-30, 30] degrees, with probability 0.2;
    isotropic scaling uniform in [0.7, 1.4] with probability 0.2. nnU-Net (v1,
    batchgenerators) resamples the image with cubic splines and each label's
    indicator linearly; here the image is linear and the mask nearest-neighbour.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
import tensorflow as tf

__all__ = ["IMAGE_FILL", "MASK_FILL", "affine_volume", "random_affine", "rotation_matrix"]

IMAGE_FILL = 0.0  # z-scored intensity outside the source: the mean (module doc)
MASK_FILL = 0  # background

_PLANES = ((1, 2), (2, 0), (0, 1))  # axis k turns the plane (i, j), from i toward j


def rotation_matrix(angles_degrees) -> np.ndarray:
    """``R = R_0(a_0) R_1(a_1) R_2(a_2)`` of the module doc.

    Each ``R_k`` is the right-handed rotation about axis ``k``, so ``R`` equals SciPy's
    intrinsic Euler rotation ``Rotation.from_euler("XYZ", angles, degrees=True)``.

    Args:
        angles_degrees: three angles in degrees, about axes 0, 1 and 2.

    Returns:
        float64 ``(3, 3)`` orthogonal matrix acting on ``(axis 0, axis 1, axis 2)``
        index coordinates.
    """
    rotation = np.eye(3)
    for axis, angle in enumerate(np.radians(np.asarray(angles_degrees, np.float64))):
        i, j = _PLANES[axis]
        turn = np.eye(3)
        turn[i, i] = turn[j, j] = np.cos(angle)
        turn[j, i], turn[i, j] = np.sin(angle), -np.sin(angle)
        rotation = rotation @ turn
    return rotation


def affine_volume(image: np.ndarray, mask: np.ndarray, angles_degrees, scale
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Rotate and scale ``image`` and ``mask`` about the centre, in one resampling.

    The NumPy core of :func:`random_affine` (module doc for the map and the fill).

    Args:
        image: ``(D, H, W, C)`` float array (each channel resampled alike).
        mask: ``(D, H, W, 1)`` integer or float label array.
        angles_degrees: three angles in degrees about axes 0, 1, 2.
        scale: isotropic factor, > 0; > 1 zooms in.

    Returns:
        ``(image, mask)`` of the input shapes and dtypes. Angles 0 and scale 1 give
        the inputs back exactly.
    """
    image, mask = np.asarray(image), np.asarray(mask)
    inverse = rotation_matrix(angles_degrees).T / float(scale)
    centre = (np.asarray(image.shape[:3], np.float64) - 1.0) / 2.0
    offset = centre - inverse @ centre

    def resample(volume, order, fill):
        channels = [scipy.ndimage.affine_transform(
            volume[..., k], inverse, offset, order=order, mode="constant", cval=fill)
            for k in range(volume.shape[-1])]
        return np.stack(channels, axis=-1).astype(volume.dtype, copy=False)

    return resample(image, 1, IMAGE_FILL), resample(mask, 0, MASK_FILL)


def random_affine(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor, config
                  ) -> tuple[tf.Tensor, tf.Tensor]:
    """Random small rotation and isotropic scaling of a volume and its mask together.

    With probability ``config.rotate_prob``, three angles, each uniform in
    ``[-rotate_max_degrees, rotate_max_degrees]`` degrees, about axes 0, 1 and 2;
    with probability ``config.scale_prob``, one factor uniform in ``scale_range``.
    Both are drawn by TensorFlow's stateless RNG from ``seed`` and applied in one
    resampling (:func:`affine_volume`); when neither is drawn the inputs are
    returned untouched (no resampling).

    Args:
        image: float ``(D, H, W, C)`` tensor, z-scored intensities.
        mask: ``(D, H, W, 1)`` tensor, integer, float or bool labels.
        seed: shape ``(2,)`` int32/int64 seed.
        config: a :class:`segtie.config.AugmentConfig` (``rotate_prob``,
            ``rotate_max_degrees``, ``scale_prob``, ``scale_range``).

    Returns:
        ``(image, mask)`` of the input shapes (static shapes kept) and dtypes.
    """
    seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), num=4)
    rotate = tf.random.stateless_uniform([], seed=seeds[0]) < config.rotate_prob
    scaled = tf.random.stateless_uniform([], seed=seeds[1]) < config.scale_prob
    limit = float(config.rotate_max_degrees)
    angles = tf.where(rotate, tf.random.stateless_uniform(
        [3], seed=seeds[2], minval=-limit, maxval=limit), tf.zeros([3]))
    low, high = (float(v) for v in config.scale_range)
    scale = tf.where(scaled, tf.random.stateless_uniform(
        [], seed=seeds[3], minval=low, maxval=high), 1.0)
    work = tf.uint8 if mask.dtype == tf.bool else mask.dtype  # SciPy has no bool
    # SciPy has no float16/bfloat16 either: the image is resampled in float32.

    def transform():
        out_image, out_mask = tf.numpy_function(
            affine_volume, [tf.cast(image, tf.float32), tf.cast(mask, work), angles, scale],
            [tf.float32, work], stateful=False)
        out_image = tf.cast(out_image, image.dtype)
        out_image.set_shape(image.shape)
        out_mask = tf.cast(out_mask, mask.dtype)
        out_mask.set_shape(mask.shape)
        return out_image, out_mask

    return tf.cond(rotate | scaled, transform, lambda: (image, mask))
