"""``conv_bias: false``: the block convolutions lose the bias their norm cancels."""

import keras
import numpy as np
import pytest

from segtie import config as cfg
from segtie.nn import build_model, build_unet, check_model, parameter_count

from model_args import LEVELS, SIZE, TINY

BASIS = dict(LEVELS, tie_decoder=True, basis_size=2, basis_unique=1)
BANK = dict(TINY, num_iterations=3, num_templates=2)


def _biases(model):
    return [w for w in model.weights if w.path.endswith("bias")]


def _copy_same_paths(source, target):
    """Give ``target`` every weight of ``source`` with the same path."""
    held = {w.path: w for w in target.weights}
    for w in source.weights:
        if w.path in held:
            held[w.path].assign(w)


@pytest.mark.parametrize("args", [TINY, BANK, BASIS, dict(TINY, norm="instance")],
                         ids=["tied", "bank", "basis", "instance"])
def test_parameter_count_drops_one_bias_per_block_convolution(args):
    with_bias, without = build_unet(**args), build_unet(**args, conv_bias=False)
    assert without.count_params() == parameter_count(**args, conv_bias=False)
    # By hand, TINY (widths 4, 8, 16; decoder 8, 4): each block has an entry conv and
    # one tied kernel (or one bank / basis), 2 biases of F each.
    if args is TINY:
        assert with_bias.count_params() - without.count_params() == 2 * (4 + 8 + 16 + 8 + 4)
    # Only the biases no norm follows are left: up-convolutions, projections, head.
    left = {w.path.split("/")[0].rstrip("_0123456789") for w in _biases(without)}
    assert left <= {"up", "project", "logits"} and "logits" in left
    assert any(w.path.startswith(("encoder", "decoder")) for w in _biases(with_bias))


@pytest.mark.parametrize("norm, training", [("instance", False), ("batch", True)])
def test_same_function_as_with_any_bias(norm, training):
    """The norm cancels a per-channel bias exactly, so the outputs agree."""
    args = dict(TINY, norm=norm, norm_per_iteration=norm == "batch")
    with_bias, without = build_unet(**args), build_unet(**args, conv_bias=False)
    rng = np.random.default_rng(0)
    for w in with_bias.weights:
        if w.path.endswith("bias"):
            w.assign(rng.normal(0.0, 1.0, w.shape).astype("float32"))
    _copy_same_paths(with_bias, without)
    x = rng.uniform(0, 1, (2, *SIZE, 3)).astype("float32")
    a = keras.ops.convert_to_numpy(with_bias(x, training=training))
    b = keras.ops.convert_to_numpy(without(x, training=training))
    assert np.abs(a).max() > 0.1
    np.testing.assert_allclose(a, b, atol=2e-4, rtol=1e-4)
    # The check has teeth: without a norm the bias is not cancelled.
    plain = dict(TINY, norm="none")
    biased, unbiased = build_unet(**plain), build_unet(**plain)
    _copy_same_paths(biased, unbiased)
    for w in biased.weights:
        if w.path.endswith("bias") and "entry_conv" in w.path:
            w.assign(np.ones(w.shape, "float32"))
    assert not np.allclose(biased(x), unbiased(x), atol=1e-3)


def test_keras_round_trip_keeps_it(tmp_path):
    model = build_unet(**TINY, norm="instance", conv_bias=False)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.count_params() == model.count_params()
    assert loaded.get_layer("encoder_0").get_config()["conv_bias"] is False
    x = np.random.default_rng(1).uniform(0, 1, (1, *SIZE, 3)).astype("float32")
    np.testing.assert_array_equal(loaded(x), model(x))


def test_config_key_reaches_the_model_and_norm_none_is_refused():
    model = build_model(cfg.ModelConfig(base_filters=4, depth=3, conv_bias=False), SIZE)
    assert model.count_params() == parameter_count(**TINY, norm="instance", conv_bias=False)
    with pytest.raises(ValueError, match=r"`model.conv_bias: false`.*`model.norm: none`"):
        check_model(cfg.ModelConfig(norm="none", conv_bias=False))
    with pytest.raises(ValueError, match=r"`conv_bias: false`"):
        build_unet(**TINY, norm="none", conv_bias=False)
