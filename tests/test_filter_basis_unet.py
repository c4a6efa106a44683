"""``model.basis_size`` in the U-Net: formula, the tying proof, profile, rules, budget.

The proof pairs every use of a model's filter bases with the *untied* model's
convolution that does that use (:func:`tying.bank_copies`), built explicitly by the
same builder with every tie off and no basis, and gives each untied convolution its
use's composite kernel ``W_u = concat(B, B_u) @ C_u``. Then both models compute the
same function, and with ``G_u = dL/dW_u`` from the untied model, an untied copy of
the basis at use ``u`` would have the gradient ``G_u C_u^T`` (over the ``F`` axis):
the shared basis's one gradient must be the sum of those over the uses (a use run by
several passes counted once per pass), each use's own filters and coefficients get
theirs, and the shared bias the sum of the per-use biases' gradients.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from tying import RTOL, ATOL, _loss_and_grads, bank_copies, copy_weights

from segtie import config as cfg
from segtie.cli.common import load_config
from segtie.nn import build_model, build_unet, parameter_count, profile, unet_arguments
from segtie.nn.budget import fit_base_filters
from segtie.nn.describe import describe_scheme, scheme_name

import model_args
from model_args import SIZE, SIZE_3D, TINY, VOLUME

LEVELS = dict(model_args.LEVELS, tie_decoder=True)
BASIS = dict(TINY, basis_size=2)
LEVELS_BASIS = dict(LEVELS, basis_size=2, basis_unique=1)  # one basis for 3 levels x 2
UNTIE = dict(model_args.UNTIE, basis_size=0, basis_unique=0, basis_ratio=0.0)


@pytest.mark.parametrize("kwargs", [
    BASIS,
    dict(BASIS, num_iterations=3, basis_unique=2, norm="batch", norm_per_iteration=True),
    LEVELS_BASIS,
    dict(LEVELS_BASIS, norm_per_level=False),
    dict(LEVELS, basis_ratio=0.5),
    dict(TINY, basis_ratio=0.3, basis_unique=1),  # widths 4, 8, 16: s = 1, 2, 5
    dict(LEVELS_BASIS, num_recurrences=2),
    dict(BASIS, num_recurrences=2, tie_recurrences=False),
    dict(BASIS, **VOLUME),
    dict(LEVELS_BASIS, **VOLUME),
], ids=["basis", "unique-batch", "levels", "levels-shared-norm", "levels-ratio", "ratio",
        "recurrent", "untied-passes", "3d", "3d-levels"])
def test_parameter_count_follows_the_documented_formula(kwargs):
    model = build_unet(**kwargs)
    assert model.count_params() == parameter_count(**kwargs)
    blocks = 2 if kwargs.get("tie_levels") else 2 * kwargs["depth"] - 1
    passes = 1 if kwargs.get("tie_recurrences", True) else kwargs.get("num_recurrences", 1)
    paths = [w.path for w in model.weights]
    assert sum(p.endswith("filter_basis/basis") for p in paths) == blocks * passes
    assert not any(p.endswith("tied_conv_0/kernel") for p in paths)  # the basis replaced it


def test_the_basis_term_is_the_documented_one_and_saves_weights():
    # One block shared by 3 levels x 2 iterations = 6 uses, F = 4, k = 9, s = 2, r = 1.
    tied = parameter_count(**LEVELS)
    basis = parameter_count(**LEVELS_BASIS)
    enc = 9 * 4 * 2 + 6 * (9 * 4 * 1 + 3 * 4) + 4   # kFs + v n (kFr + (s + r) F) + F
    dec = 9 * 4 * 2 + 4 * (9 * 4 * 1 + 3 * 4) + 4   # the decoder block: 2 levels x 2
    assert basis - tied == enc + dec - 2 * (9 * 4 * 4 + 4)
    wide = dict(LEVELS, base_filters=64)
    assert parameter_count(**dict(wide, basis_size=16)) < parameter_count(**wide)


def _variables(basis):
    return [basis.basis, basis.coefficients, basis.bias] + (
        [basis.unique] if basis.unique is not None else [])


def assert_basis_is_real(model, untied, image_size, channels=3, seed=0):
    """Every check of the module docstring; returns the number of filter bases."""
    rng = np.random.default_rng(seed)
    x = rng.random((2, *image_size, channels), dtype=np.float32)
    weights = rng.standard_normal((2, *model(x[:1]).shape[1:])).astype("float32")
    table, bases = bank_copies(model, untied, image_size)
    copy_weights(table)
    for basis, per_use in bases.values():
        for use, convs in per_use.items():
            for conv in convs:
                conv.set_weights([keras.ops.convert_to_numpy(basis.kernel_for(use)),
                                  basis.bias.numpy()])
    np.testing.assert_allclose(model(x, training=True), untied(x, training=True),
                               rtol=RTOL, atol=ATOL)
    pairs = [(v, [c.trainable_weights[k] for c in copies]) for layer, copies in table.values()
             for k, v in enumerate(layer.trainable_weights)]
    per_use = [(use, conv) for _, uses in bases.values()
               for use, convs in uses.items() for conv in convs]
    _, g_model = _loss_and_grads(model, [v for v, _ in pairs] + [
        v for basis, _ in bases.values() for v in _variables(basis)], x, weights)
    _, g_untied = _loss_and_grads(untied, [c for _, cs in pairs for c in cs] + [
        v for _, conv in per_use for v in (conv.kernel, conv.bias)], x, weights)
    # The basis runs factored (two small convolutions), the untied model one composite
    # kernel: one function in two float32 orders, whose differences scale with the
    # largest gradient (measured 1.5e-6 of it), not with each variable's own.
    atol = max(ATOL, 1e-5 * max(float(np.abs(g.numpy()).max()) for g in g_untied))
    g_untied = iter(g_untied)
    for (v, cs), g in zip(pairs, g_model):
        np.testing.assert_allclose(g.numpy(), sum(next(g_untied).numpy() for _ in cs),
                                   rtol=RTOL, atol=atol, err_msg=f"gradient of tied {v.path}")
    g_per_use = [(use, next(g_untied).numpy(), next(g_untied).numpy()) for use, _ in per_use]
    g_bases = iter(g_model[len(pairs):])
    for basis, uses in bases.values():
        got = [next(g_bases).numpy() for _ in _variables(basis)]
        d_kernel = np.zeros((basis.num_uses, *basis.kernel_shape), "float64")
        d_bias = np.zeros(basis.filters, "float64")
        calls = sum(len(cs) for cs in uses.values())
        for use, g_kernel, g_b in g_per_use[:calls]:
            d_kernel[use] += g_kernel  # a use run by several passes: the sum of its copies
            d_bias += g_b
        g_per_use = g_per_use[calls:]
        mix = basis.coefficients.numpy()
        d_basis = np.einsum("u...f,ujf->u...j", d_kernel, mix)  # an untied copy's, per use
        s = basis.basis_size
        np.testing.assert_allclose(got[0], d_basis[..., :s].sum(0), rtol=RTOL, atol=atol,
                                   err_msg=basis.basis.path)
        d_mix = np.stack([np.tensordot(keras.ops.convert_to_numpy(basis.basis_for(u)),
                                       d_kernel[u], axes=(range(d_kernel.ndim - 2),) * 2)
                          for u in range(basis.num_uses)])
        np.testing.assert_allclose(got[1], d_mix, rtol=RTOL, atol=atol)
        np.testing.assert_allclose(got[2], d_bias, rtol=RTOL, atol=atol)
        if basis.unique is not None:
            np.testing.assert_allclose(got[3], d_basis[..., s:], rtol=RTOL, atol=atol)
        assert sorted(uses) == list(range(basis.num_uses)), "a use of the basis was not run"
        assert not np.allclose(d_basis[0], d_basis[1], atol=atol), "uses do not differ"
    return len(bases)


@pytest.mark.parametrize("args, size", [
    (BASIS, SIZE),
    (LEVELS_BASIS, SIZE),
    (dict(LEVELS_BASIS, depth=2, num_iterations=3, num_recurrences=2), SIZE),
    (dict(LEVELS_BASIS, depth=2, **VOLUME), SIZE_3D),
], ids=["iterations", "levels+decoder+unique", "levels+recurrences", "3d-levels"])
def test_basis_gradient_is_the_sum_over_its_uses(args, size):
    keras.utils.set_random_seed(0)
    model = build_unet(**args)
    untied = build_unet(**{**args, **UNTIE})
    blocks = 2 if args.get("tie_levels") else 2 * args["depth"] - 1
    assert assert_basis_is_real(model, untied, size, args.get("in_channels", 3)) == blocks
    assert model.count_params() < untied.count_params()


def test_a_basis_use_is_the_untied_computation_at_the_factored_cost():
    model = build_unet(**LEVELS_BASIS)
    untied = build_unet(**{**LEVELS_BASIS, **UNTIE})
    uses_b, uses_u = (profile.trace_uses(m, SIZE) for m in (model, untied))
    assert profile.effective_parameters(uses_b) == profile.effective_parameters(uses_u)
    # 3 + 2 level uses x 2 iterations; level i at 16 / 2**i squared positions; each use
    # either factored, (s + r)(9 C_in + F) = 3 * 40 = 120 MACs a position, or composed,
    # 9 * 4 * 4 = 144 and 3 * 144 to form the kernel: the layer takes the cheaper one.
    positions = 2 * (256 + 64 + 16) + 2 * (256 + 64)
    assert profile.conv_macs(uses_u) - profile.conv_macs(uses_b) == positions * (144 - 120)


def test_the_orthogonality_regulariser_adds_lambda_times_each_basis_similarity(tmp_path):
    """Every use of a basis is called once per forward pass (3 levels x 2 iterations
    in the encoder, 2 x 2 in the decoder), so the model's losses in training are
    ``lambda`` times the sum of its bases' similarities; the weight survives .keras."""
    from segtie.nn import FilterBasis

    model = build_unet(**LEVELS_BASIS, basis_orthogonality=5.0)
    bases = [layer.basis for layer in (model.get_layer("encoder"), model.get_layer("decoder"))]
    assert [b.num_uses for b in bases] == [6, 4] and all(b.orthogonality == 5.0 for b in bases)
    x = np.random.default_rng(0).random((2, *SIZE, 3), dtype=np.float32)
    model(x, training=True)
    expected = 5.0 * sum(float(b.similarity()) for b in bases)
    np.testing.assert_allclose(float(sum(model.losses)), expected, rtol=1e-5)
    assert len(model.losses) == 10 and expected > 0.1
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert [layer.orthogonality for layer in loaded._flatten_layers()
            if isinstance(layer, FilterBasis)] == [5.0, 5.0]
    assert parameter_count(**LEVELS_BASIS) == model.count_params()  # no weights added


@pytest.mark.parametrize("model, message", [
    ({"basis_size": 2, "tied": False},
     r"`model.basis_size` = 2 .* needs `model.tied: true`, received `model.tied: false`"),
    ({"basis_size": 2, "num_templates": 2},
     r"`model.basis_size` = 2 and `model.num_templates` = 2 both replace the tied kernel"),
    ({"basis_size": 2, "basis_ratio": 0.5},
     r"`model.basis_size` = 2 and `model.basis_ratio` = 0.5 both size the filter basis"),
    ({"basis_unique": 1}, r"`model.basis_unique` = 1 .* needs `model.basis_size` >= 1"),
    ({"basis_orthogonality": 10.0},
     r"`model.basis_orthogonality` = 10.0 regularises a shared filter basis: it needs"),
    ({"basis_orthogonality": -1.0}, r"`model.basis_orthogonality` must be >= 0.0"),
    ({"basis_size": -1}, r"`model.basis_size` must be >= 0, received -1"),
    ({"basis_size": 140, "basis_unique": 5, "base_filters": 16},
     r"`model.basis_size` = 140 with `model.basis_unique` = 5 gives 145 basis filters, "
     r"more than the 144 dimensions"),
    ({"basis_ratio": -0.5}, r"`model.basis_ratio` must be >= 0.0, received -0.5"),
])
def test_config_rejects_impossible_bases_at_load(model, message):
    overrides = [f"model.{key}={json.dumps(value)}" for key, value in model.items()]
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


def test_build_unet_names_the_argument():
    with pytest.raises(ValueError, match=r"`basis_ratio` must be a number >= 0, received "
                                         r"'half' of type str"):
        build_unet(**BASIS, basis_ratio="half")


def test_param_budget_picks_the_widest_width_with_a_basis_ratio():
    budget = 30_000
    keys = {"width_multiplier": 1, "tie_levels": True, "tie_decoder": True,
            "level_projection": True, "basis_ratio": 0.25, "param_budget": budget}
    config = cfg.from_dict({"model": keys})
    model = build_model(config.model)
    width = model.get_layer("encoder").filters
    args = unet_arguments(config.model)
    assert model.count_params() == parameter_count(**{**args, "base_filters": width}) <= budget
    assert parameter_count(**{**args, "base_filters": width + 1}) > budget
    assert model.get_layer("encoder").basis.basis_size == round(width / 4)
    tied = fit_base_filters({**args, "basis_ratio": 0.0}, param_budget=budget)
    assert width > tied  # the basis's weights are linear in the width: a wider model


def test_the_scheme_is_named_and_described():
    assert scheme_name(LEVELS_BASIS) == "iter2+levels+decoder+basis2u1"
    assert scheme_name(dict(LEVELS, basis_ratio=0.25)) == "iter2+levels+decoder+basis0.25F"
    text = describe_scheme(LEVELS_BASIS)
    assert "shared basis of 2 filters (basis_size: 2)" in text
    assert "and 1 filters of its own (basis_unique: 1)" in text
    assert "regulariser" not in text
    regularised = describe_scheme(unet_arguments(cfg.ModelConfig(
        **dict(LEVELS_BASIS, basis_orthogonality=10.0))))
    assert regularised.endswith(", trained with their orthogonality regulariser "
                                "(basis_orthogonality: 10).")


EXPORT = dict(LEVELS_BASIS, base_filters=8, basis_size=3, norm="instance")


@pytest.mark.slow  # a SavedModel and three LiteRT conversions (15 s here), as test_export_tying
def test_the_export_keeps_one_shared_basis(tmp_path):
    """SavedModel: one basis variable per tied block, the same logits. LiteRT: unlike a
    bank, the basis is not folded: one stored basis filter read by every use, a 1x1
    filter and an own filter per use, and the file's bytes are the parameters'."""
    from segtie.export import (BYTES_PER_WEIGHT, VARIANTS, PixelServing,
                               basis_filter_count, conv_kernel_count, convert_litert,
                               read_weights)

    keras.utils.set_random_seed(0)
    model = build_unet(**EXPORT)
    image = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    module = PixelServing(model, [32, 32], 0.5)
    path = str(tmp_path / "saved_model")
    tf.saved_model.save(module, path, signatures=module.signatures())
    loaded = tf.saved_model.load(path)
    captured = loaded.signatures["logits"].variables  # what the served function reads
    assert sum(v.name.endswith("filter_basis/basis:0") for v in captured) == 2  # enc, dec
    assert sum(int(np.prod(v.shape)) for v in captured) == model.count_params()
    np.testing.assert_allclose(loaded.signatures["logits"](image=image)["logits"],
                               model(image, training=False), rtol=1e-5, atol=1e-6)

    kernels, based = conv_kernel_count(model), basis_filter_count(model)
    assert based == (1 + 6 + 6) + (1 + 4 + 4)  # encoder 3 levels x 2, decoder 2 x 2
    images = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    for variant in VARIANTS:
        weights = read_weights(convert_litert(model, [32, 32], variant, images))
        assert weights.num_filter_buffers == kernels + based, (variant, weights.filter_uses)
        bases = [b for b, (shape, _, _) in weights.filters.items() if shape == (3, 3, 3, 8)]
        assert sorted(weights.filter_uses[b] for b in bases) == [4, 6]  # read by every use
        expected = model.count_params() * BYTES_PER_WEIGHT[variant]
        assert 0.9 * expected <= weights.constant_bytes <= 1.1 * expected, variant
