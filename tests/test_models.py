"""The tied U-Net: formulas, the proof for every tying scheme, save/export, bad input.

The parameter and memory budgets are in test_budget.py."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from tying import assert_bank_is_real, assert_tying_is_real

from segtie import config as cfg
from segtie.cli.common import load_config
from segtie.nn import build_model, build_unet, parameter_count, profile, unet_arguments

from model_args import LEVELS, SIZE, SIZE_3D, TINY, UNTIE, VOLUME

ALL = dict(LEVELS, tie_decoder=True, num_recurrences=2, num_iterations=3)
BANK = dict(TINY, num_iterations=3, num_templates=2)  # 3 uses per block, 2 templates
LEVELS_BANK = dict(LEVELS, tie_decoder=True, num_templates=3)  # one bank for 3 levels x 2


def test_parameter_count_is_independent_of_num_iterations():
    counts = {n: build_unet(base_filters=8, depth=3, num_iterations=n).count_params()
              for n in (1, 2, 4)}
    assert counts[1] == counts[2] == counts[4]
    untied = build_unet(base_filters=8, depth=3, num_iterations=4, tied=False).count_params()
    # 5 blocks (3 encoder + 2 decoder) each gain 3 extra 3x3 kernels of F*F plus bias.
    widths = [8, 16, 32, 16, 8]
    assert untied - counts[4] == sum(3 * (9 * f * f + f) for f in widths)


@pytest.mark.parametrize("kwargs", [
    {},
    dict(width_multiplier=1, level_projection=True),
    dict(LEVELS, norm_per_level=False),
    dict(LEVELS, norm_per_iteration=True),
    dict(TINY, width_multiplier=1, tie_decoder=True, norm="none"),
    dict(TINY, num_recurrences=2, norm="instance", norm_per_iteration=True),
    dict(TINY, num_recurrences=3),
    dict(ALL, **UNTIE),
    ALL,
    VOLUME,
    dict(ALL, **VOLUME),
    dict(ALL, **VOLUME, **UNTIE),
    BANK,
    dict(BANK, num_templates=1, norm="none"),
    LEVELS_BANK,
    dict(LEVELS_BANK, norm_per_level=False),
    dict(ALL, num_templates=4),
    dict(ALL, num_templates=2, tie_recurrences=False),
    dict(BANK, **VOLUME),
    dict(LEVELS_BANK, **VOLUME),
], ids=["plain", "projection", "levels-shared-norm", "levels", "decoder", "instance", "recurrent",
        "all-untied", "all", "3d-plain", "3d-all", "3d-all-untied", "bank", "bank-J1",
        "levels-bank", "levels-bank-shared-norm", "all-bank", "all-bank-untied-passes",
        "3d-bank", "3d-levels-bank"])
def test_parameter_count_follows_the_documented_formula(kwargs):
    args = {**TINY, **kwargs}
    assert build_unet(**args).count_params() == parameter_count(**args)


def test_tied_counts_do_not_grow_with_depth_or_passes():
    shared_norm = dict(LEVELS, norm_per_level=False)
    encoder = [parameter_count(**dict(shared_norm, depth=d, tie_decoder=True)) for d in (2, 4, 6)]
    assert encoder[0] == encoder[1] == encoder[2]
    passes = [parameter_count(**dict(TINY, num_recurrences=r)) for r in (2, 3, 5)]
    assert passes[0] == passes[1] == passes[2]


@pytest.mark.parametrize("tied_args, untied_args", [
    (TINY, dict(tied=False)),
    (dict(LEVELS, norm_per_level=False), dict(tie_levels=False)),
    (LEVELS, dict(tie_levels=False)),
    (dict(TINY, width_multiplier=1, tie_decoder=True), dict(tie_decoder=False)),
    (dict(TINY, depth=2, num_recurrences=3), dict(tie_recurrences=False)),
    (ALL, UNTIE),
], ids=["iterations", "levels-shared-norm", "levels", "decoder", "recurrences", "all"])
def test_tying_is_real_for_every_scheme(tied_args, untied_args):
    tied = build_unet(**tied_args)
    untied = build_unet(**{**tied_args, **untied_args})
    assert untied.count_params() > tied.count_params()
    assert assert_tying_is_real(tied, untied, SIZE) >= 1


@pytest.mark.parametrize("tied_args, untied_args", [
    (dict(TINY, **VOLUME), dict(tied=False)),
    (dict(ALL, depth=2, **VOLUME), UNTIE),
], ids=["3d-iterations", "3d-all"])
def test_tying_is_real_in_3d(tied_args, untied_args):
    tied = build_unet(**tied_args)
    untied = build_unet(**{**tied_args, **untied_args})
    assert untied.count_params() > tied.count_params()
    assert assert_tying_is_real(tied, untied, SIZE_3D, channels=1) >= 1
    block = tied.get_layer("encoder" if tied_args.get("tie_levels") else "encoder_0")
    assert len(block.convs) == 1  # one 3x3x3 kernel for every use (and level, if tied)
    assert tuple(block.convs[0].kernel.shape) == (3, 3, 3, 4, 4)


NO_BANK = dict(num_templates=0, tied=False)


@pytest.mark.parametrize("bank_args, untied_args, size", [
    (BANK, NO_BANK, SIZE),
    (LEVELS_BANK, dict(UNTIE, **NO_BANK), SIZE),
    (dict(LEVELS_BANK, norm_per_level=False), dict(UNTIE, **NO_BANK), SIZE),
    (dict(ALL, depth=2, num_templates=2), dict(UNTIE, **NO_BANK), SIZE),
    (dict(LEVELS_BANK, depth=2, num_templates=2, **VOLUME), dict(UNTIE, **NO_BANK), SIZE_3D),
], ids=["iterations", "levels+decoder", "levels-shared-norm", "all+recurrences", "3d-levels"])
def test_template_bank_gradient_is_the_sum_over_its_uses(bank_args, untied_args, size):
    banked = build_unet(**bank_args)
    untied = build_unet(**{**bank_args, **untied_args})
    banks = [w for w in banked.weights if w.path.endswith("template_bank/templates")]
    blocks = 2 if bank_args.get("tie_levels") else 2 * bank_args["depth"] - 1
    assert len(banks) == blocks  # one bank variable per block, not a copy per use
    assert assert_bank_is_real(banked, untied, size, channels=bank_args.get("in_channels", 3)) \
        == blocks
    assert banked.count_params() < untied.count_params()


def test_the_bank_is_the_dial_between_tied_and_untied():
    tied = parameter_count(**dict(BANK, num_templates=0))
    untied = parameter_count(**dict(BANK, num_templates=0, tied=False))
    counts = [parameter_count(**dict(BANK, num_templates=j)) for j in (1, 2, 3)]
    assert tied < counts[0] < counts[1] < counts[2]
    uses = 5 * 3  # 5 blocks of 3 uses: J = 1 adds one coefficient per use
    assert counts[0] - tied == uses
    # J = uses (3): the untied kernels, plus the coefficients, less the untied biases
    widths = [4, 8, 16, 8, 4]
    assert counts[2] - untied == 5 * 3 * 3 - sum(2 * f for f in widths)


def test_a_bank_does_the_untied_computation_plus_the_mixing():
    banked = build_unet(**LEVELS_BANK)
    untied = build_unet(**{**LEVELS_BANK, **UNTIE, **NO_BANK})
    uses_b, uses_u = (profile.trace_uses(m, SIZE) for m in (banked, untied))
    assert profile.effective_parameters(uses_b) == profile.effective_parameters(uses_u)
    # each of the 3 + 2 level uses x 2 iterations mixes 3 templates of 3*3*4*4
    mixing = (3 + 2) * 2 * 3 * 9 * 4 * 4
    assert profile.conv_macs(uses_b) == profile.conv_macs(uses_u) + mixing


def test_3d_model_maps_volumes_to_logits_and_its_config_builds_it():
    model = build_unet(**dict(TINY, **VOLUME))
    out = model(np.random.rand(2, 8, 12, 16, 1).astype("float32"))
    assert tuple(out.shape) == (2, 8, 12, 16, 3)
    assert isinstance(model.get_layer("pool_0"), keras.layers.MaxPooling3D)
    assert isinstance(model.get_layer("up_0"), keras.layers.Conv3DTranspose)
    config = cfg.from_dict({"data": {"name": "hippocampus", "image_size": [16, 16, 16]},
                            "model": dict(TINY, **VOLUME, norm="instance")})
    built = build_model(config.model)
    assert built.count_params() == parameter_count(**unet_arguments(config.model))
    assert tuple(built.inputs[0].shape) == (None, None, None, None, 1)


def test_outputs_logits_of_the_right_shape():
    model = build_unet(in_channels=3, num_classes=2, base_filters=4, depth=3)
    out = model(np.random.rand(2, 32, 48, 3).astype("float32"))
    assert tuple(out.shape) == (2, 32, 48, 2)
    assert float(np.min(out)) < 0 < float(np.max(out))  # logits, not probabilities


def _weighted_layers(model):
    uses = profile.trace_uses(model, SIZE)
    return len({id(u.layer) for u in uses if u.leaf and u.layer.weights}), len(uses)


def test_keras_round_trip_keeps_one_variable_per_tied_kernel(tmp_path):
    model = build_unet(**ALL)
    rng = np.random.RandomState(0)
    for w in model.weights:  # distinct norms per level, so a lost `use` would show
        if "norm" in w.path:
            w.assign(rng.uniform(0.5, 1.5, w.shape))
    x = rng.rand(2, *SIZE, 3).astype("float32")
    before = model(x, training=False)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_allclose(loaded(x, training=False), before, rtol=1e-5, atol=1e-6)
    assert sorted(w.path for w in loaded.weights) == sorted(w.path for w in model.weights)
    assert loaded.count_params() == parameter_count(**ALL)
    assert _weighted_layers(loaded) == _weighted_layers(model)  # same layers, same uses
    assert loaded.get_layer("encoder").num_uses == ALL["depth"]


def test_keras_round_trip_of_a_3d_model_keeps_the_tied_kernel(tmp_path):
    args = dict(ALL, depth=2, **VOLUME)
    model = build_unet(**args)
    x = np.random.RandomState(2).rand(1, *SIZE_3D, 1).astype("float32")
    before = model(x, training=False)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    np.testing.assert_allclose(loaded(x, training=False), before, rtol=1e-5, atol=1e-6)
    assert loaded.count_params() == parameter_count(**args)
    assert loaded.get_layer("encoder").spatial_dims == 3
    assert [w.path for w in loaded.weights].count("encoder/tied_conv_0/kernel") == 1


@pytest.mark.parametrize("volume, writer", [(False, "keras"), (True, "keras"),
                                             (False, "segtie")],
                         ids=["2d-model.export", "3d-model.export", "2d-PixelServing"])
def test_saved_model_export_keeps_one_variable_per_tied_kernel(tmp_path, volume, writer):
    """Keras' ``model.export`` lists the model's variables itself; ``segtie export``
    saves a ``tf.Module`` holding the model, so tf.saved_model finds them by tracking
    (it once missed the per-level norms of tied levels: nested lists)."""
    from segtie.export import PixelServing

    args = dict(ALL, depth=2, norm="instance", **(VOLUME if volume else {}))
    model = build_unet(**args)  # every scheme, per-level norms; depth 2: faster
    assert len(model.get_layer("encoder").use_norms) == 1  # the nested list to track
    shape = (2, *SIZE_3D, 1) if volume else (2, *SIZE, 3)
    x = np.random.RandomState(1).rand(*shape).astype("float32")
    if writer == "keras":
        model.export(str(tmp_path / "saved"), verbose=False)
        loaded = tf.saved_model.load(str(tmp_path / "saved"))
        out, function = loaded.serve(x), loaded.signatures["serving_default"]
    else:
        module = PixelServing(model, SIZE, 0.5)  # segtie export's module (2-D images)
        tf.saved_model.save(module, str(tmp_path / "saved"), signatures=module.signatures())
        loaded = tf.saved_model.load(str(tmp_path / "saved"))
        function = loaded.signatures["logits"]
        out = function(image=x)["logits"]
    np.testing.assert_allclose(out.numpy(), model(x, training=False).numpy(),
                               rtol=1e-5, atol=1e-6)
    captured = [v.name.removesuffix(":0") for v in function.variables]
    assert sorted(captured) == sorted(w.path for w in model.weights)
    assert captured.count("encoder/tied_conv_0/kernel") == 1
    untied = build_unet(**{**args, **UNTIE})
    assert len(captured) < len(untied.weights)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_iterations=0), r"`num_iterations` must be an integer >= 1, received 0"),
    (dict(num_recurrences=0), r"`num_recurrences` must be an integer >= 1, received 0"),
    (dict(depth=0), r"`depth`"),
    (dict(base_filters=-1), r"`base_filters`"),
    (dict(tie_levels=True, level_projection=True),
     r"`tie_levels: true` .* `width_multiplier` must be 1, received 2"),
    (dict(tie_decoder=True), r"`tie_decoder: true` .* `width_multiplier` must be 1, received 2"),
    (dict(tie_levels=True, width_multiplier=1),
     r"`tie_levels: true` without `level_projection` .* `base_filters` = 16 .* received 3"),
])
def test_impossible_combinations_name_key_rule_and_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_unet(**kwargs)


@pytest.mark.parametrize("model, message", [
    ({"tie_levels": True}, r"`model.tie_levels: true` .* `model.width_multiplier` must be 1"),
    ({"tie_levels": True, "width_multiplier": 1},
     r"`model.tie_levels: true` without `model.level_projection`"),
    ({"num_recurrences": 0}, r"`model.num_recurrences` must be >= 1, received 0"),
    ({"recurrence_loss_decay": 1.5}, r"`model.recurrence_loss_decay` must be <= 1.0"),
    ({"num_templates": 2, "tied": False},
     r"`model.num_templates` = 2 .* needs `model.tied: true`, received `model.tied: false`"),
    ({"num_templates": 3}, r"`model.num_templates` must be at most the 2 kernel uses of the "
                           r"smallest bank .* received 3"),
    ({"num_templates": 7, "tie_levels": True, "tie_decoder": True, "width_multiplier": 1,
      "level_projection": True, "depth": 3}, r"at most the 4 kernel uses .* received 7"),
    ({"num_templates": -1}, r"`model.num_templates` must be >= 0, received -1"),
])
def test_config_rejects_impossible_models_at_load(model, message):
    # The command lines' loader: the config's own checks, then the U-Net's tying rules.
    overrides = [f"model.{key}={json.dumps(value)}" for key, value in model.items()]
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


def test_default_config_builds_todays_model():
    model = build_model(cfg.load_config().model)
    # Instance norm (2F weights a norm) since the default left batch norm (4F): the
    # 18 blocks' norms hold 2 * (16+32+64+128+64+32+16) * 2 = 1,408 weights fewer.
    assert model.count_params() == 484_849 - 1_408
    assert [l.name for l in model.layers][:3] == ["image", "encoder_0", "pool_0"]
