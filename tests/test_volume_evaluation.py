"""3-D inference and scoring: the N-D sliding window and Gaussian map, volumes in mL."""

import numpy as np
import pytest
import keras

from segtie.evaluation.volumes import volume_ml
from segtie.inference.volumes import predict_volume
from segtie.inference import InferenceOptions
from segtie.inference.sliding_window import _sliding_window, gaussian_importance_map
from scipy import signal


def _pointwise_model():
    """logits[..., k] = (k + 1) * x: a 1x1x1 convolution, so every window agrees."""
    model = keras.Sequential([keras.Input((None, None, None, 1)), keras.layers.Conv3D(3, 1)])
    model.layers[0].set_weights([np.arange(1, 4, dtype=np.float32).reshape(1, 1, 1, 1, 3),
                                 np.zeros(3, np.float32)])
    return model


def test_gaussian_map_in_3d_is_the_product_of_the_axis_windows():
    weights = gaussian_importance_map((4, 6, 8), 0.125)
    d, h, w = (signal.windows.gaussian(n, 0.125 * n) for n in (4, 6, 8))
    expected = d[:, None, None] * h[None, :, None] * w[None, None, :]
    np.testing.assert_allclose(weights, expected / expected.max(), rtol=1e-6)


@pytest.mark.parametrize("gaussian", [True, False])
def test_3d_sliding_window_of_a_pointwise_model_is_the_model(gaussian):
    x = np.random.default_rng(0).standard_normal((13, 9, 20, 1)).astype(np.float32)
    options = InferenceOptions(image_size=[8, 8, 8], sliding_window=True, window_size=[8, 8, 8],
                               gaussian=gaussian, batch_size=3, num_classes=3)
    logits = _sliding_window(_pointwise_model(), x, options)
    assert logits.shape == (13, 9, 20, 3)
    np.testing.assert_allclose(logits, x * np.arange(1, 4), rtol=1e-5, atol=1e-6)
    probabilities = predict_volume(_pointwise_model(), x, options)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="one side per spatial axis"):
        _sliding_window(_pointwise_model(), x,
                        InferenceOptions(image_size=[8, 8], num_classes=3))


def test_volume_ml_counts_voxels_times_their_size():
    mask = np.zeros((10, 10, 10), bool)
    mask[:5, :4, :2] = True  # 40 voxels
    assert volume_ml(mask, (1.0, 1.0, 1.0)) == pytest.approx(0.040)
    assert volume_ml(mask, (0.5, 2.0, 3.0)) == pytest.approx(40 * 3.0 / 1000)
    with pytest.raises(ValueError, match="must have 3 positive entries"):
        volume_ml(mask, (1.0, 1.0))
