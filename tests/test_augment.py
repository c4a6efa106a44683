"""Augmentation keeps image and mask aligned, masks label-valued, and the shapes."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from segtie.data import augment as aug
from segtie.config import AugmentConfig

PROBS = [f.name for f in dataclasses.fields(AugmentConfig) if f.name.endswith("_prob")]
OFF = AugmentConfig(**{name: 0.0 for name in PROBS})
SPATIAL = ("rotate_prob", "scale_prob", "elastic_prob")
INTENSITY = ("noise_prob", "blur_prob", "brightness_prob", "contrast_prob", "gamma_prob")
ALWAYS = AugmentConfig(**{**aug.NNUNET_LIKE, **{name: 1.0 for name in PROBS}})


def only(*names, **extra):
    """A config with the named transforms always on and every other one off."""
    return dataclasses.replace(OFF, **{name: 1.0 for name in names}, **extra)


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


# --- the resampling transforms: rotation, scaling, elastic deformation ---------------

def coordinates_and_labels(height, width):
    """A float image holding each pixel's own (row, col), and a 3-class block mask."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    image = np.stack([rows, cols, np.zeros_like(rows)], -1).astype(np.float32)
    labels = ((rows // 3 + cols // 4) % 3).astype(np.int32)
    return image, labels[..., None]


@pytest.mark.parametrize("names", [("rotate_prob",), ("scale_prob",), ("elastic_prob",),
                                   SPATIAL + ("flip_prob", "rotate90_prob")])
@pytest.mark.parametrize("height, width", [(24, 24), (20, 30)])
def test_resampled_mask_matches_resampled_image_exactly(names, height, width):
    """Bilinear sampling of a coordinate image returns the source coordinate exactly,
    so each output pixel says where it came from; the mask there must hold the label
    of the nearest source pixel: the mask moved with the image, pixel for pixel."""
    image, labels = coordinates_and_labels(height, width)
    config = only(*names, elastic_alpha=60.0)
    for i in range(6):
        out_image, out_mask = aug.augment(image, labels, tf.constant([i, 1]), config)
        out_image, out_mask = out_image.numpy(), out_mask.numpy()
        assert out_image.shape == image.shape and out_mask.shape == labels.shape
        assert not np.array_equal(out_image, image)  # something happened
        rows, cols = out_image[..., 0], out_image[..., 1]
        assert rows.min() >= -1e-4 and rows.max() <= height - 1 + 1e-4  # mirrored inside
        source_r = np.floor(rows + 0.5).astype(int)
        source_c = np.floor(cols + 0.5).astype(int)
        clear = (np.abs(rows % 1 - 0.5) > 2e-4) & (np.abs(cols % 1 - 0.5) > 2e-4)
        expected = labels[source_r.clip(0, height - 1), source_c.clip(0, width - 1), 0]
        np.testing.assert_array_equal(out_mask[..., 0][clear], expected[clear])
        assert clear.mean() > 0.8  # ties at .5 are left out (float rounding)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_labels_are_preserved_by_the_full_suite(dtype):
    rng = np.random.default_rng(0)
    image = rng.random((32, 32, 3)).astype(np.float32)
    mask = np.zeros((32, 32, 1), dtype)
    mask[4:20, 6:14], mask[18:30, 12:28] = 1, 2
    for i in range(12):
        _, out = aug.augment(image, mask, tf.constant([i, 7]), ALWAYS)
        assert out.dtype == mask.dtype and out.shape == mask.shape
        values = set(np.unique(out.numpy()))
        assert values <= {0, 1, 2} and {1, 2} <= values  # no new labels, none blended


def test_integer_images_are_rounded_back():
    image, _ = pattern(16, 16)
    mask = np.zeros((16, 16, 1), np.uint8)
    out, _ = aug.augment(image, mask, tf.constant([1, 2]), only("rotate_prob"))
    assert out.dtype == tf.uint8 and out.shape == image.shape


# --- intensity transforms ------------------------------------------------------------

@pytest.mark.parametrize("name", INTENSITY)
def test_intensity_transforms_leave_the_mask_and_shape(name):
    rng = np.random.default_rng(1)
    image = (0.2 + 0.6 * rng.random((16, 20, 3))).astype(np.float32)
    mask = (rng.random((16, 20, 1)) > 0.5).astype(np.float32)
    changed = 0
    for i in range(5):
        out_image, out_mask = aug.augment(image, mask, tf.constant([i, 3]), only(name))
        out_image = out_image.numpy()
        np.testing.assert_array_equal(out_mask.numpy(), mask)
        assert out_image.shape == image.shape and out_image.dtype == np.float32
        assert 0.0 <= out_image.min() and out_image.max() <= 1.0
        changed += not np.allclose(out_image, image)
    assert changed >= 4


def test_intensity_transforms_do_what_they_say():
    rng = np.random.default_rng(2)
    image = (0.1 + 0.5 * rng.random((16, 16, 3))).astype(np.float32)
    seed = tf.constant([4, 4])
    bright = aug.random_brightness(image, seed, 1.0, [0.75, 1.25]).numpy()
    ratio = bright / image
    assert np.allclose(ratio, ratio.flat[0], rtol=1e-5) and 0.75 <= ratio.flat[0] <= 1.25
    contrast = aug.random_contrast(image, seed, 1.0, [1.2, 1.2]).numpy()
    assert contrast.std() > image.std() and abs(contrast.mean() - image.mean()) < 0.02
    gamma = aug.random_gamma(image, seed, 1.0, [0.7, 1.5]).numpy()
    order = np.argsort(image.ravel(), kind="stable")
    assert np.all(np.diff(gamma.ravel()[order]) >= -1e-6)  # monotonic: order kept
    checker = np.indices((16, 16)).sum(0) % 2
    checker = np.repeat(checker[..., None], 3, -1).astype(np.float32)
    blurred = aug.random_blur(checker, seed, 1.0, [1.0, 1.0]).numpy()
    assert blurred.std() < 0.2 * checker.std()
    noisy = aug.random_noise(image, seed, 1.0, 0.1).numpy()
    assert 0 < np.abs(noisy - image).mean() < 0.1


# --- probabilities, flags, determinism -------------------------------------------------

def test_probability_zero_is_identity():
    rng = np.random.default_rng(3)
    image = rng.random((10, 14, 3)).astype(np.float32)
    mask = rng.integers(0, 3, (10, 14, 1)).astype(np.int32)
    switched_off = dataclasses.replace(ALWAYS, flip=False, rotate90=False, **{
        name: 0.0 for name in SPATIAL + INTENSITY})
    for config in (OFF, switched_off):
        for i in range(8):
            out_image, out_mask = aug.augment(image, mask, tf.constant([i, 0]), config)
            np.testing.assert_array_equal(out_image.numpy(), image)
            np.testing.assert_array_equal(out_mask.numpy(), mask)


def test_full_suite_is_seeded_and_runs_in_tf_data_with_unknown_shapes():
    rng = np.random.default_rng(4)
    image = rng.random((20, 24, 3)).astype(np.float32)
    mask = (rng.random((20, 24, 1)) > 0.7).astype(np.float32)
    first = aug.augment(image, mask, tf.constant([5, 9]), ALWAYS)
    again = aug.augment(image, mask, tf.constant([5, 9]), ALWAYS)
    np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())
    np.testing.assert_array_equal(first[1].numpy(), again[1].numpy())
    source = tf.data.Dataset.from_generator(
        lambda: iter([(image, mask)] * 4),
        output_signature=(tf.TensorSpec((None, None, 3), tf.float32),
                          tf.TensorSpec((None, None, 1), tf.float32)))
    seeds = tf.data.Dataset.random(seed=1).batch(2)
    config = AugmentConfig(**aug.NNUNET_LIKE)
    outputs = list(tf.data.Dataset.zip((source, seeds)).map(
        lambda pair, seed: aug.augment(pair[0], pair[1], seed, config)))
    assert len(outputs) == 4
    for out_image, out_mask in outputs:
        assert out_image.shape == (20, 24, 3) and out_mask.shape == (20, 24, 1)
        assert set(np.unique(out_mask.numpy())) <= {0.0, 1.0}


def test_intensity_needs_a_float_image():
    image, mask = pattern(8, 8)
    with pytest.raises(TypeError, match="float image.*uint8"):
        aug.augment(image, mask, tf.constant([0, 0]), only("gamma_prob"))
