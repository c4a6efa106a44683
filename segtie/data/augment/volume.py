"""Training augmentation of 3-D volumes: image and mask together, stateless and seeded.

:func:`augment_volume` is the 3-D counterpart of :func:`segtie.data.augment.augment`
for volumes ``(D, H, W, C)`` whose intensities are z-scored
(:func:`segtie.data.nifti.zscore`), so nothing is clipped to [0, 1]. It reads the
same :class:`segtie.config.AugmentConfig`, in this order:

1. small rotations and scaling, one resampling (:mod:`.affine3d`): with
   ``rotate_prob``, an angle about each of the three axes, each uniform in
   [-``rotate_max_degrees``, ``rotate_max_degrees``] degrees (nnU-Net uses 30 in 3-D;
   the default 180 is the 2-D one); with ``scale_prob``, one isotropic factor uniform
   in ``scale_range`` (> 1 zooms in). The image is trilinear, the mask
   nearest-neighbour (labels keep their exact values); outside the source the image
   is filled with 0 (the mean of a z-scored volume, as :func:`segtie.data.volumes.fit_volume`
   pads) and the mask with 0 (background);
2. flips (``flip``, ``flip_prob``): each of the three axes with its own draw;
3. quarter turns (``rotate90``, ``rotate90_prob``) in the plane of axes 0 and 1 (the
   axial plane of a RAS volume, whose axes are x, y, z): 0, 90, 180 or 270 degrees
   when those two sides are equal, else 0 or 180;
4. intensity, the image only: ``brightness_prob`` multiplies by a factor uniform in
   ``brightness_range``; ``contrast_prob`` scales about the volume's mean by a factor
   uniform in ``contrast_range``; ``noise_prob`` adds Gaussian noise whose standard
   deviation is uniform in [0, ``noise_std``] (in units of the z-scored intensity).

Flips and turns permute voxels, so masks keep their label values exactly.
``elastic_prob``, ``blur_prob`` and ``gamma_prob`` are not implemented in 3-D: a
config that asks for them for a volume is refused (:func:`check_volume_augment`).
Each step draws from its own sub-seed of ``seed``: a config without rotations and
scaling gives the same stream as before they existed.

References:
    Isensee et al., "nnU-Net", Nature Methods 2021 (3-D rotations and scaling,
    mirroring, multiplicative brightness, contrast, Gaussian noise).
"""

from __future__ import annotations

import tensorflow as tf

from segtie.data.augment.affine3d import random_affine

__all__ = ["UNSUPPORTED_3D", "augment_volume", "check_volume_augment"]

UNSUPPORTED_3D = ("elastic_prob", "blur_prob", "gamma_prob")


def check_volume_augment(config) -> None:
    """Refuse an ``AugmentConfig`` that enables a transform with no 3-D version.

    Raises:
        ValueError: naming the keys set above 0.
    """
    asked = [name for name in UNSUPPORTED_3D if getattr(config, name) > 0]
    if asked:
        raise ValueError(f"`data.augment.{asked[0]}` must be 0 for volumes: "
                         f"{', '.join(asked)} have no 3-D version (3-D has rotations, "
                         f"scaling, flips, quarter turns, brightness, contrast and noise)")


def _coin(seed, prob) -> tf.Tensor:
    return tf.random.stateless_uniform([], seed=seed) < prob


def _uniform(seed, low, high) -> tf.Tensor:
    return tf.random.stateless_uniform([], seed=seed, minval=low, maxval=high)


def augment_volume(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor, config
                   ) -> tuple[tf.Tensor, tf.Tensor]:
    """Apply the configured 3-D augmentations to a volume and its mask together.

    Args:
        image: float ``(D, H, W, C)``, z-scored intensities.
        mask: ``(D, H, W, 1)``, integer, float or bool labels (label values are only
            moved, never blended).
        seed: shape ``(2,)`` int32/int64 seed.
        config: a :class:`segtie.config.AugmentConfig` (module doc).

    Returns:
        The transformed ``(image, mask)``, same shapes and dtypes.

    Raises:
        ValueError: a transform without a 3-D version is enabled
            (:func:`check_volume_augment`).
    """
    check_volume_augment(config)
    image, mask = tf.convert_to_tensor(image), tf.convert_to_tensor(mask)
    seed = tf.convert_to_tensor(seed)
    seeds = tf.random.experimental.stateless_split(seed, num=8)
    if config.rotate_prob > 0 or config.scale_prob > 0:
        # Its own stream, apart from the eight above (whose draws stay as they were)
        # and from the pipeline's patch seed, stateless_fold_in(seed, 1).
        image, mask = random_affine(image, mask, tf.random.experimental.stateless_fold_in(
            seed, 2), config)
    if config.flip and config.flip_prob > 0:
        for axis in range(3):
            flip = _coin(seeds[axis], config.flip_prob)
            image = tf.cond(flip, lambda: tf.reverse(image, [axis]), lambda: image)
            mask = tf.cond(flip, lambda: tf.reverse(mask, [axis]), lambda: mask)
    if config.rotate90 and config.rotate90_prob > 0:
        image, mask = _quarter_turn(image, mask, seeds[3], config.rotate90_prob)
    if config.brightness_prob > 0:
        factor = _uniform(seeds[4], *config.brightness_range)
        image = tf.where(_coin(tf.reverse(seeds[4], [0]), config.brightness_prob),
                         image * factor, image)
    if config.contrast_prob > 0:
        factor = _uniform(seeds[5], *config.contrast_range)
        mean = tf.reduce_mean(image)
        image = tf.where(_coin(tf.reverse(seeds[5], [0]), config.contrast_prob),
                         (image - mean) * factor + mean, image)
    if config.noise_prob > 0:
        std = _uniform(seeds[6], 0.0, config.noise_std)
        noise = tf.random.stateless_normal(tf.shape(image), seed=seeds[7], dtype=image.dtype)
        image = tf.where(_coin(tf.reverse(seeds[6], [0]), config.noise_prob),
                         image + std * noise, image)
    return image, mask


def _quarter_turn(image, mask, seed, prob):
    """Turn axes (0, 1) by k * 90 degrees (k in 0..3 if square there, else 0 or 2)."""
    square = image.shape[0] is not None and image.shape[0] == image.shape[1]
    k = tf.random.stateless_uniform([], seed=seed, minval=0, maxval=4, dtype=tf.int32)
    if not square:
        k = 2 * (k % 2)
    k = tf.where(_coin(tf.reverse(seed, [0]), prob), k, 0)

    def turn(x, times):
        for _ in range(times):  # one quarter turn of axes (0, 1): transpose, then flip
            x = tf.reverse(tf.transpose(x, [1, 0, 2, 3]), [0])
        return x

    def branch(times):
        return lambda: (turn(image, times), turn(mask, times))

    turned = tf.switch_case(k, [branch(0), branch(1), branch(2), branch(3)]
                            ) if square else tf.cond(k > 0, branch(2), branch(0))
    return turned
