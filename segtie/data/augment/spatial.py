"""Resampling augmentations: rotation, scaling and elastic deformation in one warp.

The three transforms are composed into one map from output pixels to source
coordinates, as nnU-Net's spatial transform does, and the image and the mask are
sampled at the *same* coordinates: the image bilinearly, the mask with nearest
neighbour, so a mask keeps exactly its label values (never a blend of two labels).
Source coordinates outside the image are mirrored back inside (reflection about the
border pixels, scipy's ``mode="mirror"``), for image and mask alike, so there are no
empty corners and the two stay aligned there too.

For an output pixel ``p`` (row, column) and the image centre ``c``, the source is
``c + R(angle) (p - c) / scale + d(p)``: ``scale > 1`` zooms in. The displacement
``d`` follows Simard et al.: uniform noise in [-1, 1] per axis and pixel, smoothed
by a Gaussian of standard deviation ``elastic_sigma`` pixels and multiplied by
``elastic_alpha`` pixels.

References:
    Simard, Steinkraus, Platt, "Best practices for convolutional neural networks
    applied to visual document analysis", ICDAR 2003.
    Isensee et al., "nnU-Net", Nature Methods 2021 (default augmentation set).
"""

from __future__ import annotations

import math

import tensorflow as tf

__all__ = ["gaussian_filter", "gaussian_kernel", "random_spatial", "warp"]


def gaussian_kernel(sigma, radius: int) -> tf.Tensor:
    """Normalized 1-D Gaussian of ``2 * radius + 1`` taps, float32 (``sigma`` may be a tensor)."""
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(x / tf.cast(sigma, tf.float32)))
    return kernel / tf.reduce_sum(kernel)


def gaussian_filter(image: tf.Tensor, sigma, radius: int, mirror: bool) -> tf.Tensor:
    """Separable Gaussian smoothing of a ``(H, W, C)`` float tensor, same shape.

    Args:
        image: ``(H, W, C)`` float32.
        sigma: standard deviation in pixels (a float or a scalar tensor).
        radius: taps on each side of the centre.
        mirror: pad by mirroring the border (the blur augmentation) instead of with
            zeros (the elastic displacement field).
    """
    kernel = gaussian_kernel(sigma, radius)
    channels = image.shape[-1]
    x = image[None]
    padding = "SAME"
    if mirror:
        x = tf.pad(x, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
        padding = "VALID"
    for shape in ([-1, 1, 1, 1], [1, -1, 1, 1]):
        taps = tf.tile(tf.reshape(kernel, shape), [1, 1, channels, 1])
        x = tf.nn.depthwise_conv2d(x, taps, [1, 1, 1, 1], padding)
    out = x[0]
    out.set_shape(image.shape)
    return out


def _smooth(field: tf.Tensor, sigma: float) -> tf.Tensor:
    """Gaussian smoothing of a ``(H, W, C)`` displacement field (zero padding)."""
    return gaussian_filter(field, sigma, max(1, int(math.ceil(3.0 * sigma))), mirror=False)


def _mirror(coords: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """Reflect float coordinates into ``[0, size - 1]`` (period ``2 (size - 1)``)."""
    last = tf.cast(tf.maximum(size - 1, 1), tf.float32)
    folded = tf.math.floormod(coords, 2.0 * last)
    mirrored = last - tf.abs(folded - last)
    return tf.where(size > 1, mirrored, tf.zeros_like(coords))


def warp(image: tf.Tensor, mask: tf.Tensor, rows: tf.Tensor, cols: tf.Tensor
         ) -> tuple[tf.Tensor, tf.Tensor]:
    """Sample ``image`` bilinearly and ``mask`` by nearest neighbour at source coordinates.

    Args:
        image: ``(H, W, C)`` image, any real dtype (integer images are rounded back).
        mask: ``(H, W, 1)`` mask, any dtype; its values are copied, never blended.
        rows, cols: float32 ``(H, W)`` source coordinates of each output pixel,
            mirrored into the image when outside.

    Returns:
        ``(image, mask)`` of the input shapes and dtypes.
    """
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    rows, cols = _mirror(rows, height), _mirror(cols, width)
    flat_image = tf.reshape(tf.cast(image, tf.float32), [height * width, -1])
    r0 = tf.cast(tf.floor(rows), tf.int32)
    c0 = tf.cast(tf.floor(cols), tf.int32)
    r1, c1 = tf.minimum(r0 + 1, height - 1), tf.minimum(c0 + 1, width - 1)
    wr = (rows - tf.cast(r0, tf.float32))[..., None]
    wc = (cols - tf.cast(c0, tf.float32))[..., None]

    def at(r, c):
        return tf.gather(flat_image, r * width + c)

    top = at(r0, c0) * (1.0 - wc) + at(r0, c1) * wc
    bottom = at(r1, c0) * (1.0 - wc) + at(r1, c1) * wc
    warped = top * (1.0 - wr) + bottom * wr
    if image.dtype.is_floating:
        warped = tf.cast(warped, image.dtype)
    else:
        warped = tf.saturate_cast(tf.round(warped), image.dtype)
    near_r = tf.minimum(tf.cast(tf.floor(rows + 0.5), tf.int32), height - 1)
    near_c = tf.minimum(tf.cast(tf.floor(cols + 0.5), tf.int32), width - 1)
    flat_mask = tf.reshape(mask, [height * width, -1])
    warped_mask = tf.gather(flat_mask, near_r * width + near_c)
    warped.set_shape(image.shape)
    warped_mask.set_shape(mask.shape)
    return warped, warped_mask


def _uniform(seed, low, high):
    return tf.random.stateless_uniform([], seed=seed, minval=low, maxval=high)


def random_spatial(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor, config
                   ) -> tuple[tf.Tensor, tf.Tensor]:
    """Random rotation, scaling and elastic deformation, each with its probability.

    Args:
        image: ``(H, W, C)`` image, any real dtype.
        mask: ``(H, W, 1)`` mask, any dtype.
        seed: shape ``(2,)`` integer seed.
        config: a :class:`segtie.config.AugmentConfig` (``rotate_prob``,
            ``rotate_max_degrees``, ``scale_prob``, ``scale_range``, ``elastic_prob``,
            ``elastic_alpha``, ``elastic_sigma``).

    Returns:
        ``(image, mask)`` of the input shapes and dtypes; unchanged (no resampling
        at all) when none of the three transforms is drawn.
    """
    seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), num=6)
    draws = [tf.random.stateless_uniform([], seed=seeds[i]) < p for i, p in
             enumerate((config.rotate_prob, config.scale_prob, config.elastic_prob))]
    max_angle = config.rotate_max_degrees * math.pi / 180.0
    angle = tf.where(draws[0], _uniform(seeds[3], -max_angle, max_angle), 0.0)
    low, high = config.scale_range
    scale = tf.where(draws[1], _uniform(seeds[4], float(low), float(high)), 1.0)
    any_draw = draws[0] | draws[1] | draws[2]

    def transform():
        shape = tf.shape(image)
        height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
        rr, cc = tf.meshgrid(tf.range(height), tf.range(width), indexing="ij")
        dr, dc = rr - (height - 1.0) / 2.0, cc - (width - 1.0) / 2.0
        cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
        rows = (height - 1.0) / 2.0 + cos * dr - sin * dc
        cols = (width - 1.0) / 2.0 + sin * dr + cos * dc
        if config.elastic_prob > 0:
            noise = tf.random.stateless_uniform(tf.stack([shape[0], shape[1], 2]),
                                                seed=seeds[5], minval=-1.0, maxval=1.0)
            noise.set_shape([None, None, 2])
            field = config.elastic_alpha * _smooth(noise, config.elastic_sigma)
            field = tf.where(draws[2], field, tf.zeros_like(field))
            rows, cols = rows + field[..., 0], cols + field[..., 1]
        return warp(image, mask, rows, cols)

    return tf.cond(any_draw, transform, lambda: (image, mask))
