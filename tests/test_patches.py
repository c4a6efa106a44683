"""Random patches: aligned crops, the requested size, foreground oversampling."""

import numpy as np
import pytest
import tensorflow as tf

from segtie.config import from_dict
from segtie.data.patches import random_patch


def coordinate_image(height, width):
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([rows, cols, rows * 0], -1).astype(np.int32)


def small_blob(height=60, width=80):
    mask = np.zeros((height, width, 1), np.uint8)
    mask[40:43, 60:62] = 1  # 6 foreground pixels of 4800
    return mask


def test_patch_is_an_aligned_crop():
    image, mask = coordinate_image(60, 80), small_blob()
    for i in range(20):
        patch_image, patch_mask = random_patch(image, mask, tf.constant([i, 0]), [16, 24],
                                               foreground_prob=0.5)
        patch_image, patch_mask = patch_image.numpy(), patch_mask.numpy()
        assert patch_image.shape == (16, 24, 3) and patch_mask.shape == (16, 24, 1)
        top, left = patch_image[0, 0, :2]
        np.testing.assert_array_equal(patch_image, image[top:top + 16, left:left + 24])
        np.testing.assert_array_equal(patch_mask, mask[top:top + 16, left:left + 24])


def test_foreground_oversampling():
    image, mask = coordinate_image(60, 80), small_blob()

    def hits(prob):
        return sum(bool(random_patch(image, mask, tf.constant([i, 1]), [16, 16], prob)[1]
                        .numpy().any()) for i in range(40))

    assert hits(1.0) == 40  # always contains the blob
    assert hits(0.0) < 12  # uniform: the blob is seen by about 1 in 13 patches
    assert 10 < hits(0.5) < 35


def test_no_foreground_and_whole_image_patches():
    image = coordinate_image(20, 30)
    empty = np.zeros((20, 30, 1), np.float32)
    patch, patch_mask = random_patch(image, empty, tf.constant([3, 3]), [8, 8], 1.0)
    assert patch.shape == (8, 8, 3) and not patch_mask.numpy().any()
    whole, _ = random_patch(image, empty, tf.constant([3, 3]), [20, 30], 0.5)
    np.testing.assert_array_equal(whole.numpy(), image)
    a = random_patch(image, empty, tf.constant([5, 6]), [8, 8], 0.0)[0].numpy()
    b = random_patch(image, empty, tf.constant([5, 6]), [8, 8], 0.0)[0].numpy()
    np.testing.assert_array_equal(a, b)  # seeded


def test_too_large_patch_is_an_error():
    with pytest.raises(tf.errors.InvalidArgumentError, match="larger than the image"):
        random_patch(coordinate_image(10, 10), np.zeros((10, 10, 1)), tf.constant([0, 0]),
                     [12, 8], 0.5)


def test_works_in_tf_data_with_unknown_shapes():
    image, mask = coordinate_image(60, 80), small_blob()
    source = tf.data.Dataset.from_generator(
        lambda: iter([(image, mask)] * 3),
        output_signature=(tf.TensorSpec((None, None, 3), tf.int32),
                          tf.TensorSpec((None, None, 1), tf.uint8)))
    seeds = tf.data.Dataset.random(seed=0).batch(2)
    dataset = tf.data.Dataset.zip((source, seeds)).map(
        lambda pair, seed: random_patch(pair[0], pair[1], seed, [16, 16], 1.0))
    assert dataset.element_spec[0].shape == (16, 16, 3)
    assert all(m.numpy().any() for _, m in dataset)


@pytest.mark.parametrize("patch, message", [
    ([64, 200], r"`data.patch_size` must be \[height, width\].*no larger than"),
    ([60, 60], r"`data.patch_size` must be divisible by 2\*\*\(model.depth - 1\) = 8"),
])
def test_config_checks_patch_size(patch, message):
    with pytest.raises(ValueError, match=message):
        from_dict({"data": {"image_size": [128, 128], "patch_size": patch}})
