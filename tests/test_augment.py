"""Augmentation keeps image and mask aligned, the mask binary, and the shapes."""

import numpy as np
import pytest
import tensorflow as tf

from segtie import augment as aug
from segtie.config import AugmentConfig


def pattern(height, width):
    """An image whose pixels are all distinct, and the mask of an asymmetric 'L'."""
    values = np.arange(height * width, dtype=np.int32).reshape(height, width)
    image = np.stack([values % 251, values // 251, np.full_like(values, 7)], -1)
    mask = np.zeros((height, width, 1), np.uint8)
    mask[1:height - 1, 1, 0] = 1  # vertical bar of the L
    mask[height - 2, 1:width // 2, 0] = 1  # its foot
    return image.astype(np.uint8), mask


def dihedral(array, square):
    """All flips/rotations of ``array`` keeping its shape (8 if square, else 4)."""
    ks = (0, 1, 2, 3) if square else (0, 2)
    out = []
    for base in (array, array[:, ::-1]):
        out.extend(np.rot90(base, k, axes=(0, 1)) for k in ks)
    return out


def transform_index(result, candidates):
    matches = [i for i, c in enumerate(candidates) if np.array_equal(result, c)]
    assert len(matches) == 1, "output is not a flip/rotation of the input"
    return matches[0]


@pytest.mark.parametrize("height, width", [(8, 8), (6, 10)])
def test_every_combination_keeps_mask_aligned(height, width):
    image, mask = pattern(height, width)
    square = height == width
    images = dihedral(image, square)
    masks = dihedral(mask, square)
    seen = set()
    for i in range(64):
        seed = tf.constant([i, 3], tf.int64)
        out_image, out_mask = aug.augment(image, mask, seed, AugmentConfig())
        out_image, out_mask = out_image.numpy(), out_mask.numpy()
        assert out_image.shape == image.shape and out_mask.shape == mask.shape
        assert out_image.dtype == np.uint8 and out_mask.dtype == np.uint8
        assert set(np.unique(out_mask)) == {0, 1}
        index = transform_index(out_image, images)
        # The mask underwent the very same transform as the image.
        np.testing.assert_array_equal(out_mask, masks[index])
        seen.add(index)
    # Square inputs reach all 8 symmetries; non-square ones the 4 that keep the shape.
    assert len(seen) == (8 if square else 4)


def test_flags_select_the_transforms():
    image, mask = pattern(8, 8)
    images = dihedral(image, True)  # index 0..3: rotations, 4..7: mirrored rotations
    off = AugmentConfig(flip=False, rotate90=False)
    rotate_only = AugmentConfig(flip=False, rotate90=True)
    flip_only = AugmentConfig(flip=True, rotate90=False)
    for i in range(32):
        seed = tf.constant([i, 0], tf.int32)
        out, _ = aug.augment(image, mask, seed, off)
        np.testing.assert_array_equal(out.numpy(), image)
        out, _ = aug.augment(image, mask, seed, rotate_only)
        assert transform_index(out.numpy(), images) in (0, 1, 2, 3)
        out, _ = aug.augment(image, mask, seed, flip_only)
        # Flips alone give identity, the two mirrors, or the 180 degree turn.
        flips = [image, image[:, ::-1], image[::-1], image[::-1, ::-1]]
        assert any(np.array_equal(out.numpy(), f) for f in flips)


def test_same_seed_same_output_and_seeds_vary():
    image, mask = pattern(8, 8)
    first = aug.augment(image, mask, tf.constant([5, 9]), AugmentConfig())
    again = aug.augment(image, mask, tf.constant([5, 9]), AugmentConfig())
    np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())
    outputs = {aug.augment(image, mask, tf.constant([s, 9]), AugmentConfig())[0]
               .numpy().tobytes() for s in range(20)}
    assert len(outputs) > 1


def test_works_inside_dataset_map_with_static_and_dynamic_shapes():
    image, mask = pattern(6, 10)
    seeds = tf.data.Dataset.random(seed=1).batch(2).take(6)
    config = AugmentConfig()
    static = tf.data.Dataset.from_tensors((image, mask)).repeat(6)
    ds = tf.data.Dataset.zip((static, seeds)).map(
        lambda pair, seed: aug.augment(pair[0], pair[1], seed, config))
    assert ds.element_spec[0].shape == (6, 10, 3)
    assert ds.element_spec[1].shape == (6, 10, 1)
    dynamic = tf.data.Dataset.from_generator(
        lambda: iter([(image, mask)] * 6),
        output_signature=(tf.TensorSpec((None, None, 3), tf.uint8),
                          tf.TensorSpec((None, None, 1), tf.uint8)))
    ds_dynamic = tf.data.Dataset.zip((dynamic, seeds)).map(
        lambda pair, seed: aug.augment(pair[0], pair[1], seed, config))
    images, masks = dihedral(image, False), dihedral(mask, False)
    for (a, m), (b, n) in zip(ds, ds_dynamic):
        # Non-square, shape unknown until run time: still no quarter turns.
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(n.numpy(), masks[transform_index(b.numpy(), images)])
        np.testing.assert_array_equal(m.numpy(), n.numpy())
