"""Tests for segtie.inference: sliding-window blending, mirroring TTA, largest component."""

import math

import keras
import numpy as np
import pytest

from segtie import inference
from segtie.inference import InferenceOptions


@pytest.fixture(scope="module")
def conv_model(channel0_model):
    """Translation- and mirror-equivariant: each pixel's logit depends on it alone."""
    return channel0_model


class TileIndexModel:
    """Returns, for the i-th tile it is ever called on, the constant logit i."""

    def __init__(self):
        self.count = 0

    def __call__(self, batch, training=False):
        batch = np.asarray(batch)
        out = np.zeros(batch.shape[:3] + (1,), np.float32)
        for i in range(batch.shape[0]):
            out[i] = self.count
            self.count += 1
        return out


class ColumnRampModel:
    """Logit = column index: not mirror-invariant."""

    def __call__(self, batch, training=False):
        batch = np.asarray(batch)
        ramp = np.arange(batch.shape[2], dtype=np.float32)[None, None, :, None]
        return np.broadcast_to(ramp, batch.shape[:3] + (1,)).copy()


@pytest.mark.parametrize("size, window, overlap, starts", [
    (10, 4, 0.5, [0, 2, 4, 6]), (4, 4, 0.5, [0]), (3, 4, 0.5, [0]),
    (11, 4, 0.5, [0, 2, 4, 5, 7]), (12, 4, 0.0, [0, 4, 8]), (13, 4, 0.0, [0, 3, 6, 9])])
def test_window_starts_hand_computed(size, window, overlap, starts):
    assert inference.window_starts(size, window, overlap) == starts


def test_gaussian_importance_map():
    weights = inference.gaussian_importance_map((4, 6), 0.125)
    assert weights.shape == (4, 6) and weights.dtype == np.float32
    np.testing.assert_allclose(weights, weights[::-1, ::-1])  # centred
    # sigma = 0.125 * side = (0.5, 0.75); the centre (1.5, 2.5) lies between pixels,
    # so the maximum, normalized to 1, is half a pixel from it on each axis.
    def g(dr, dc):
        return math.exp(-0.5 * (dr / 0.5) ** 2 - 0.5 * (dc / 0.75) ** 2)

    assert weights.max() == pytest.approx(1.0)
    assert weights[0, 0] == pytest.approx(g(1.5, 2.5) / g(0.5, 0.5), rel=1e-5)


def image_from(channel0):
    image = np.zeros(channel0.shape + (3,), np.uint8)
    image[..., 0] = channel0
    image[..., 1] = 77
    return image


@pytest.mark.parametrize("shape", [(40, 56), (20, 13), (37, 64)])
@pytest.mark.parametrize("gaussian", [True, False])
def test_sliding_window_of_pointwise_model_is_exact(conv_model, shape, gaussian):
    channel0 = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    options = InferenceOptions(image_size=[16, 16], sliding_window=True, overlap=0.25,
                               gaussian=gaussian, batch_size=3)
    logits = inference.predict_logits(conv_model, image_from(channel0), options)
    np.testing.assert_allclose(logits, 10 * (channel0 / 255 - 0.5), atol=1e-5)


@pytest.mark.parametrize("gaussian", [True, False])
def test_sliding_window_blending_hand_computed(gaussian):
    """Two 4x4 tiles at columns 0 and 2 of a 4x6 image give logits 0 and 1.

    Uniform: columns 0-1 -> 0, 2-3 -> 1/2, 4-5 -> 1. Gaussian (sigma = 0.5, centre 1.5,
    g(x) = exp(-2 (x - 1.5)^2)): column 2 is tile A's x = 2 and tile B's x = 0, so
    g(0) / (g(2) + g(0)) = e^-4.5 / (e^-0.5 + e^-4.5); column 3 by symmetry
    e^-0.5 / (e^-4.5 + e^-0.5).
    """
    options = InferenceOptions(image_size=[4, 4], sliding_window=True, overlap=0.5,
                               gaussian=gaussian)
    image = np.zeros((4, 6, 3), np.float32)
    logits = inference.sliding_window_logits(TileIndexModel(), image, options)
    near, far = math.exp(-0.5), math.exp(-4.5)
    middle = [far / (near + far), near / (near + far)] if gaussian else [0.5, 0.5]
    np.testing.assert_allclose(logits, np.tile([0, 0, *middle, 1, 1], (4, 1)), atol=1e-6)


@pytest.mark.parametrize("sliding", [False, True])
def test_mirror_tta_averages_flipped_logits(sliding):
    """The ramp and its left-right mirror average to (W - 1) / 2 everywhere."""
    options = InferenceOptions(image_size=[8, 8], sliding_window=sliding,
                               window_size=[8, 8], overlap=0.0, tta_mirror=True)
    image = np.zeros((8, 8, 3), np.uint8)
    logits = inference.predict_logits(ColumnRampModel(), image, options)
    np.testing.assert_allclose(logits, 3.5, atol=1e-5)
    plain = inference.predict_logits(ColumnRampModel(), image,
                                     InferenceOptions(image_size=[8, 8]))
    np.testing.assert_allclose(plain[0], np.arange(8), atol=1e-5)


@pytest.mark.parametrize("sliding", [False, True])
def test_transpose_tta_averages_the_column_and_the_row_ramp(sliding):
    """Transposed, the column ramp becomes a row ramp: the mean is (row + column) / 2;
    with the flips too (the 8 symmetries of the square) every pixel is 3.5."""
    image = np.zeros((8, 8, 3), np.uint8)
    args = dict(image_size=[8, 8], sliding_window=sliding, window_size=[8, 8], overlap=0.0)
    logits = inference.predict_logits(ColumnRampModel(), image,
                                      InferenceOptions(**args, tta_transpose=True))
    rows, cols = np.mgrid[0:8, 0:8]
    np.testing.assert_allclose(logits, (rows + cols) / 2, atol=1e-5)
    both = inference.predict_logits(ColumnRampModel(), image, InferenceOptions(
        **args, tta_transpose=True, tta_mirror=True))
    np.testing.assert_allclose(both, 3.5, atol=1e-5)


def test_transpose_tta_keeps_a_non_square_image_its_shape():
    image = np.zeros((6, 10, 3), np.uint8)
    for sliding in (False, True):
        options = InferenceOptions([8, 8], sliding_window=sliding, window_size=[4, 4],
                                   tta_transpose=True)
        assert inference.predict_logits(ColumnRampModel(), image, options).shape == (6, 10)


def test_volumes_refuse_transpose_tta():
    from segtie import config as cfg
    from segtie.evaluation.run import _check_volume_options

    ev = cfg.load_config("hippocampus", ["eval.tta_transpose=true"]).eval
    with pytest.raises(ValueError, match="`eval.tta_transpose` must be false for volumes"):
        _check_volume_options(ev)


def test_tta_keeps_a_mirror_equivariant_model(conv_model):
    channel0 = np.random.default_rng(1).integers(0, 256, (24, 40), dtype=np.uint8)
    image = image_from(channel0)
    plain = inference.predict_logits(conv_model, image, InferenceOptions([16, 16]))
    tta = inference.predict_logits(conv_model, image,
                                   InferenceOptions([16, 16], tta_mirror=True))
    np.testing.assert_allclose(tta, plain, atol=1e-4)


def test_largest_component_uses_8_connectivity():
    mask = np.zeros((6, 8), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True  # 3 pixels, diagonally connected
    mask[4:6, 5:7] = True  # 4 pixels
    kept = inference.largest_component(mask)
    assert kept.sum() == 4 and kept[4:6, 5:7].all()
    mask[3, 3] = True  # now the diagonal chain has 4 pixels too: a tie, the first wins
    chain = np.zeros((6, 8), bool)
    chain[range(4), range(4)] = True
    np.testing.assert_array_equal(inference.largest_component(mask), chain)
    assert not inference.largest_component(np.zeros((3, 3))).any()


def test_bad_options_and_outputs(conv_model):
    with pytest.raises(ValueError, match=r"`overlap` must be in \[0, 1\), received 1.0"):
        InferenceOptions([8, 8], overlap=1.0)
    with pytest.raises(TypeError, match="uint8"):
        inference.predict_logits(conv_model, np.zeros((8, 8, 3), np.float32),
                                 InferenceOptions([8, 8]))
    two = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(2, 1)])
    with pytest.raises(ValueError, match="logits of shape"):
        inference.predict_logits(two, np.zeros((8, 8, 3), np.uint8),
                                 InferenceOptions([8, 8], sliding_window=True))
