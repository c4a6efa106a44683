"""The tied U-Net: parameter counts, logits, `.keras` round trip with one variable per tied kernel."""

import keras
import numpy as np
import pytest

from segtie.models import build_unet


def test_parameter_count_is_independent_of_num_iterations():
    counts = {n: build_unet(base_filters=8, depth=3, num_iterations=n).count_params()
              for n in (1, 2, 4)}
    assert counts[1] == counts[2] == counts[4]
    untied = build_unet(base_filters=8, depth=3, num_iterations=4, tied=False).count_params()
    # 5 blocks (3 encoder + 2 decoder) each gain 3 extra 3x3 kernels of F*F plus bias.
    widths = [8, 16, 32, 16, 8]
    assert untied - counts[4] == sum(3 * (9 * f * f + f) for f in widths)


def test_outputs_logits_of_the_right_shape():
    model = build_unet(in_channels=3, num_classes=2, base_filters=4, depth=3)
    out = model(np.random.rand(2, 32, 48, 3).astype("float32"))
    assert tuple(out.shape) == (2, 32, 48, 2)
    assert float(np.min(out)) < 0 < float(np.max(out))  # logits, not probabilities


def test_keras_round_trip_keeps_one_variable_per_tied_kernel(tmp_path):
    model = build_unet(base_filters=4, depth=3, num_iterations=3)
    x = np.random.RandomState(0).rand(2, 16, 16, 3).astype("float32")
    before = model.predict(x, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), before, rtol=1e-5, atol=1e-6)
    assert len(loaded.weights) == len(model.weights)
    assert loaded.count_params() == model.count_params()
    for block in (l for l in loaded.layers if l.name.startswith(("encoder", "decoder"))):
        assert len(block.convs) == 1
        assert block.num_iterations == 3


@pytest.mark.parametrize("key, value", [("depth", 0), ("num_iterations", 0), ("base_filters", -1)])
def test_bad_model_arguments_name_the_key(key, value):
    with pytest.raises(ValueError, match=f"`{key}`"):
        build_unet(**{key: value})
