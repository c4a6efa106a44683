"""3-D rotations and scaling: the geometry by hand, exact labels, the fill, the seeding."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from scipy.spatial.transform import Rotation

from segtie.config import AugmentConfig
from segtie.data.augment.affine3d import (IMAGE_FILL, MASK_FILL, affine_volume, random_affine,
                                         rotation_matrix)
from segtie.data.augment.volume import augment_volume

OFF = AugmentConfig(flip=False, rotate90=False)
AFFINE = dataclasses.replace(OFF, rotate_prob=1.0, rotate_max_degrees=30.0, scale_prob=1.0,
                             scale_range=[0.7, 1.4])
PLANES = {0: (1, 2), 1: (2, 0), 2: (0, 1)}  # the plane each axis turns, from first to second


def volume(side, labels=(0, 1, 2), seed=0):
    """A random z-scored-like image and a random label mask, ``(side,) * 3 + (1,)``."""
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((side, side, side, 1)).astype(np.float32)
    mask = rng.choice(np.asarray(labels, np.int32), (side, side, side, 1))
    return image, mask


def test_rotation_matrix_is_intrinsic_xyz_euler_of_scipy():
    """R_0(a0) R_1(a1) R_2(a2): right-handed turns about axes 0, 1, 2 (an independent
    reference: SciPy's intrinsic "XYZ" Euler angles), and orthogonal."""
    for angles in ([0, 0, 0], [30, 0, 0], [0, -20, 0], [0, 0, 90], [12.5, -29.0, 17.0]):
        expected = Rotation.from_euler("XYZ", angles, degrees=True).as_matrix()
        np.testing.assert_allclose(rotation_matrix(angles), expected, atol=1e-12)
    r = rotation_matrix([10, 20, 30])
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("side", [7, 8])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_quarter_rotation_about_each_axis_is_numpy_rot90(axis, side):
    """+90 degrees about axis k turns the plane PLANES[k] from its first axis toward its
    second, which is np.rot90(x, 1, axes=PLANES[k]), for image and mask alike."""
    image, mask = volume(side)
    angles = [0.0, 0.0, 0.0]
    angles[axis] = 90.0
    out_image, out_mask = affine_volume(image, mask, angles, 1.0)
    inner = (slice(1, -1),) * 3  # a border source may round to just outside: filled
    np.testing.assert_allclose(out_image[inner], np.rot90(image, 1, PLANES[axis])[inner],
                               atol=1e-5)
    np.testing.assert_array_equal(out_mask[inner], np.rot90(mask, 1, PLANES[axis])[inner])
    assert out_image.dtype == np.float32 and out_mask.dtype == np.int32


def test_angle_zero_and_scale_one_give_the_input_back_exactly():
    image, mask = volume(9)
    out_image, out_mask = affine_volume(image, mask, [0.0, 0.0, 0.0], 1.0)
    np.testing.assert_array_equal(out_image, image)
    np.testing.assert_array_equal(out_mask, mask)
    # The same through the TensorFlow path: both drawn, but the ranges hold one value.
    config = dataclasses.replace(AFFINE, rotate_max_degrees=0.0, scale_range=[1.0, 1.0])
    out_image, out_mask = augment_volume(image, mask, tf.constant([3, 1]), config)
    np.testing.assert_array_equal(out_image.numpy(), image)
    np.testing.assert_array_equal(out_mask.numpy(), mask)


def marker(side, source, label=2, value=5.0):
    """Zeros with one voxel at ``source``: ``value`` in the image, ``label`` in the mask."""
    image = np.zeros((side, side, side, 1), np.float32)
    mask = np.zeros((side, side, side, 1), np.int32)
    image[source], mask[source] = value, label
    return image, mask


def test_a_marker_lands_where_the_hand_computed_affine_says():
    # 11^3, centre c = (5, 5, 5); marker at s = (6, 5, 4): s - c = (1, 0, -1) = e0 - e2.
    # R = R_0(90) R_2(90): first R_2(90) (plane (0, 1): e0 -> e1) gives e1 - e2, then
    # R_0(90) (plane (1, 2): e1 -> e2, e2 -> -e1) gives e2 + e1 = (0, 1, 1); scale 2
    # gives (0, 2, 2), so p = (5, 7, 7).
    image, mask = marker(11, (6, 5, 4))
    out_image, out_mask = affine_volume(image, mask, [90.0, 0.0, 90.0], 2.0)
    assert np.unravel_index(np.argmax(out_image), out_image.shape) == (5, 7, 7, 0)
    assert out_image[5, 7, 7, 0] == pytest.approx(5.0, abs=1e-5)  # sampled exactly at s
    # Zoomed in twice: the label covers the voxels within half a source voxel of s,
    # within one output voxel of p.
    hits = np.argwhere(out_mask[..., 0] == 2)
    assert out_mask[5, 7, 7, 0] == 2 and 1 <= len(hits) <= 8
    assert np.abs(hits - [5, 7, 7]).max() == 1
    # 30 degrees about axis 1 (plane (2, 0): e2 -> cos e2 + sin e0), scale 1: the marker
    # at s - c = (0, 0, 4) goes to c + (4 sin 30, 0, 4 cos 30) = (7, 5, 8.46); the
    # nearest voxel (7, 5, 8) has its source at c + (0.23, 0, 3.60), which rounds to s.
    image, mask = marker(11, (5, 5, 9))
    out_image, out_mask = affine_volume(image, mask, [0.0, 30.0, 0.0], 1.0)
    assert np.unravel_index(np.argmax(out_image), out_image.shape) == (7, 5, 8, 0)
    assert out_mask[7, 5, 8, 0] == 2


def test_nearest_neighbour_masks_hold_only_the_input_labels():
    image, mask = volume(16, labels=(3, 7, 250))  # no background in the input
    for dtype in (np.uint8, np.int32, np.float32):
        seen = set()
        for s in range(6):
            _, out = augment_volume(image, mask.astype(dtype), tf.constant([s, 5]), AFFINE)
            assert out.dtype == dtype and out.shape == mask.shape
            values = set(np.unique(out.numpy()).tolist())
            assert values <= {MASK_FILL, 3, 7, 250}  # input labels, or the fill
            seen |= values
        assert {3, 7, 250, MASK_FILL} == seen  # corners filled: something happened
    _, out = augment_volume(image, mask == 7, tf.constant([0, 5]), AFFINE)
    assert out.dtype == tf.bool and out.numpy().any()


def test_outside_the_source_is_filled_with_zero():
    image = np.full((12, 12, 12, 1), 5.0, np.float32)
    mask = np.ones((12, 12, 12, 1), np.int32)
    out_image, out_mask = affine_volume(image, mask, [0.0, 0.0, 0.0], 0.5)  # zoom out
    assert IMAGE_FILL == 0.0 and MASK_FILL == 0
    # Output voxel p samples c + (p - c) / 0.5: the corner (0, 0, 0) samples
    # (-5.5, -5.5, -5.5), outside; the centre voxels (5, 5, 5) .. (6, 6, 6) inside.
    assert out_image[0, 0, 0, 0] == 0.0 and out_mask[0, 0, 0, 0] == 0
    np.testing.assert_array_equal(out_image[5:7, 5:7, 5:7], 5.0)
    np.testing.assert_array_equal(out_mask[5:7, 5:7, 5:7], 1)
    # Image and mask have the same support: filled where, and only where, the other is.
    np.testing.assert_array_equal(out_image > 0, out_mask > 0)


@pytest.mark.parametrize("scale", [0.8, 1.25])
def test_scaling_changes_the_foreground_volume_by_the_cube_of_the_factor(scale):
    side, radius = 32, 7.0
    grid = np.indices((side,) * 3) - (side - 1) / 2
    ball = (np.sqrt((grid ** 2).sum(0)) <= radius).astype(np.int32)[..., None]
    image = ball.astype(np.float32)
    config = dataclasses.replace(OFF, scale_prob=1.0, scale_range=[scale, scale])
    _, out = augment_volume(image, ball, tf.constant([0, 0]), config)
    ratio = out.numpy().sum() / ball.sum()
    assert ratio == pytest.approx(scale ** 3, rel=0.08)


def test_same_seed_same_output_and_different_seeds_differ():
    image, mask = volume(12)
    first = augment_volume(image, mask, tf.constant([4, 2]), AFFINE)
    again = augment_volume(image, mask, tf.constant([4, 2]), AFFINE)
    np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())
    np.testing.assert_array_equal(first[1].numpy(), again[1].numpy())
    outputs = {augment_volume(image, mask, tf.constant([s, 2]), AFFINE)[0].numpy().tobytes()
               for s in range(5)}
    assert len(outputs) == 5


def test_probabilities_zero_are_the_identity_and_build_no_resampling():
    image, mask = volume(10)
    config = dataclasses.replace(AFFINE, rotate_prob=0.0, scale_prob=0.0)
    for s in range(4):
        out_image, out_mask = augment_volume(image, mask, tf.constant([s, 0]), config)
        np.testing.assert_array_equal(out_image.numpy(), image)
        np.testing.assert_array_equal(out_mask.numpy(), mask)

    def ops(cfg):  # op types of the traced graph, inside tf.cond's branches too
        graph = tf.function(lambda i, m: augment_volume(i, m, tf.constant([1, 1]), cfg)
                            ).get_concrete_function(image, mask).graph.as_graph_def()
        nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
        return {node.op for node in nodes}

    assert not any("PyFunc" in op for op in ops(config))
    assert any("PyFunc" in op for op in ops(AFFINE))  # the check can fail
    # Drawn with probability 0.5: some seeds resample, some give the input back.
    half = dataclasses.replace(AFFINE, rotate_prob=0.5, scale_prob=0.0)
    same = [np.array_equal(augment_volume(image, mask, tf.constant([s, 9]), half)[0], image)
            for s in range(16)]
    assert 0 < sum(same) < 16


def test_runs_in_tf_data_with_static_and_unknown_shapes():
    image, mask = volume(16)
    seeds = tf.data.Dataset.random(seed=3).batch(2).take(3)
    pairs = tf.data.Dataset.from_tensors((image, mask)).repeat(3)
    static = tf.data.Dataset.zip((pairs, seeds)).map(
        lambda pair, seed: random_affine(pair[0], pair[1], seed, AFFINE))
    assert static.element_spec[0].shape == (16, 16, 16, 1)
    assert static.element_spec[1].shape == (16, 16, 16, 1)
    unknown = tf.data.Dataset.from_generator(
        lambda: iter([(image, mask)] * 3),
        output_signature=(tf.TensorSpec((None, None, None, 1), tf.float32),
                          tf.TensorSpec((None, None, None, 1), tf.int32)))
    dynamic = tf.data.Dataset.zip((unknown, seeds)).map(
        lambda pair, seed: random_affine(pair[0], pair[1], seed, AFFINE))
    for (a, m), (b, n) in zip(static, dynamic):
        assert b.shape == image.shape and n.dtype == tf.int32
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(m.numpy(), n.numpy())
