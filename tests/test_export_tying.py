"""Tying survives export: a tied kernel is stored once in every ``.tflite`` variant.

For every tying scheme, each variant's flatbuffer is read back
(:func:`segtie.export.read_weights`) and compared with the Keras model:

- one stored convolution filter per Keras kernel, read by as many convolutions as the
  kernel has uses (from :func:`segtie.nn.profile.trace_uses`): the uses of a tied
  kernel share one buffer;
- the constant bytes are within 10% of (unique parameters x bytes per weight), plus
  the zero states a recurrent model folds into constants; a copy per use would add
  the tied kernels' bytes again;
- float32: each filter buffer holds exactly its Keras kernel (so the converter has
  merged no two different kernels of the same shape), for the schemes without batch
  norm, whose filters the converter folds with the norm (the first convolution holds
  its kernel / 255: the input scaling is folded into it).

A template bank (``num_templates``) does not survive conversion as a bank: the
converter constant-folds every use's mixed kernel ``sum_j alpha[u, j] T_j`` (a
function of constants once the weights are frozen) into a filter of its own, so the
file stores one filter per bank use, each exactly that use's kernel, and the bytes
of the untied kernels (a use repeated by the passes of ``num_recurrences`` is folded
once). The device's byte budget of a bank model is therefore the untied model's.

int8 calibration uses random pixels here: the calibration set changes the activation
ranges, not how weights are stored (the real training images are
``tests/test_export.py``'s).
"""

import keras
import numpy as np
import pytest

from segtie.export import BYTES_PER_WEIGHT, VARIANTS, bank_use_count, conv_kernel_count
from segtie.export import convert_litert, read_weights
from segtie.nn import TemplateBank, ZeroState, build_unet, profile

pytestmark = pytest.mark.slow

SIZE = [32, 32]
BASE = dict(base_filters=8, depth=3, norm="instance")
SCHEMES = {
    "plain": dict(num_iterations=1),
    "num_iterations=2": dict(num_iterations=2),
    "tie_levels+tie_decoder": dict(num_iterations=2, tie_levels=True, tie_decoder=True,
                                   width_multiplier=1, level_projection=True),
    "num_recurrences=2": dict(num_iterations=2, num_recurrences=2),
    "recompute": dict(num_iterations=2, recompute=True),
    "norm=batch": dict(num_iterations=2, norm="batch", norm_per_iteration=True),
    "norm=batch, tied levels": dict(num_iterations=2, norm="batch", norm_per_iteration=True,
                                    tie_levels=True, tie_decoder=True, width_multiplier=1,
                                    level_projection=True),
}
BANK_SCHEMES = {
    "num_templates=2": dict(num_iterations=3, num_templates=2),
    "tie_levels+tie_decoder, num_templates=3": dict(
        num_iterations=2, tie_levels=True, tie_decoder=True, width_multiplier=1,
        level_projection=True, num_templates=3),
    "num_recurrences=2, num_templates=2": dict(num_iterations=3, num_recurrences=2,
                                               num_templates=2),
}
CONV_TYPES = (keras.layers.Conv2D, keras.layers.Conv2DTranspose)


def _model(scheme):
    keras.utils.set_random_seed(0)
    model = build_unet(**{**BASE, **{**SCHEMES, **BANK_SCHEMES}[scheme]})
    rng = np.random.default_rng(1)
    for v in model.weights:  # trained-like values: no two norms alike, no unit variances
        if "norm" in v.path:
            v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    return model


def _kernel_uses(model):
    """``{kernel variable path: number of convolution calls that read it}``."""
    uses = {}
    for use in profile.trace_uses(model, SIZE):
        if use.leaf and isinstance(use.layer, CONV_TYPES):
            path = use.layer.kernel.path
            uses[path] = uses.get(path, 0) + 1
    return uses


def _zero_state_elements(model):
    """Elements of the zero states (constants once the input size is fixed)."""
    return sum(int(np.prod(use.output_shape)) for use in profile.trace_uses(model, SIZE)
               if isinstance(use.layer, ZeroState))


def _litert_layout(layer):
    """A Keras kernel in the layout LiteRT stores it: (out, kh, kw, in)."""
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    if isinstance(layer, keras.layers.Conv2DTranspose):  # (kh, kw, out, in)
        return kernel.transpose(2, 0, 1, 3)
    return kernel.transpose(3, 0, 1, 2)  # Conv2D: (kh, kw, in, out)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (4, *SIZE, 3), dtype=np.uint8)


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_tied_kernels_are_stored_once_in_every_variant(scheme, images, record_property):
    model = _model(scheme)
    uses = _kernel_uses(model)
    kernels = conv_kernel_count(model)
    assert len(uses) == kernels
    if scheme != "plain":
        assert max(uses.values()) > 1  # there is tying to keep
    params = model.count_params()
    for variant in VARIANTS:
        weights = read_weights(convert_litert(model, SIZE, variant, images))
        bpw = BYTES_PER_WEIGHT[variant]
        expected = params * bpw + _zero_state_elements(model) * bpw
        record_property(f"{variant}", f"{weights.constant_bytes} bytes vs {params} x {bpw}")
        assert weights.num_convolutions == sum(uses.values()), variant
        assert weights.num_filter_buffers == kernels, (variant, weights.filter_uses)
        assert sorted(weights.filter_uses.values()) == sorted(uses.values()), variant
        assert 0.9 * expected <= weights.constant_bytes <= 1.1 * expected, (
            variant, weights.constant_bytes, expected)
        if variant == "float32" and "batch" not in scheme:
            _assert_filters_hold_their_kernels(model, weights)


def _assert_filters_hold_their_kernels(model, weights):
    """Each float32 filter buffer is exactly one Keras kernel: none merged, none changed."""
    stored = {index: values for index, (_, _, values) in weights.filters.items()}
    layers = {id(u.layer): u.layer for u in profile.trace_uses(model, SIZE)
              if u.leaf and isinstance(u.layer, CONV_TYPES)}
    matched, scaled = [], 0
    for layer in layers.values():
        kernel = _litert_layout(layer)
        same = [i for i, values in stored.items()
                if values.shape == kernel.shape and np.array_equal(values, kernel)]
        if not same:  # the first convolution: the converter folds the /255 into it
            same = [i for i, values in stored.items() if values.shape == kernel.shape
                    and np.allclose(values * 255.0, kernel, rtol=1e-5, atol=1e-7)]
            scaled += 1
        assert len(same) == 1, layer.kernel.path
        matched += same
    assert scaled <= 1
    assert sorted(matched) == sorted(stored)


def test_batch_norms_of_tied_kernels_would_be_folded_into_copies_without_the_fix(images):
    """The converter's own behaviour, which ``export_forms`` works around: with
    a batch norm per use, each use gets its own folded filter."""
    from segtie.export import litert

    model = _model("norm=batch, tied levels")
    plain = read_weights(litert._convert(model, SIZE, "float32", None, False))
    assert plain.num_filter_buffers > conv_kernel_count(model)
    assert plain.constant_bytes > 1.5 * model.count_params() * 4


def test_unfused_batch_norms_compute_the_same_function():
    from ai_edge_litert.interpreter import Interpreter

    model = _model("norm=batch, tied levels")
    image = np.random.default_rng(2).integers(0, 256, (1, *SIZE, 3), dtype=np.uint8)
    runner = Interpreter(model_content=convert_litert(model, SIZE, "float32"),
                         num_threads=1).get_signature_runner()
    logits = runner(image=image)["logits"]
    expected = keras.ops.convert_to_numpy(model(image.astype("float32") / 255.0))
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-4)


def _bank_uses(model):
    """``{(bank, use)}`` of every template-bank call, and the folded weights they need."""
    calls = {(id(u.layer), u.use): u.layer for u in profile.trace_uses(model, SIZE)
             if isinstance(u.layer, TemplateBank)}
    banks = {id(b): b for b in calls.values()}
    folded = sum(b.num_uses * int(np.prod(b.kernel_shape)) for b in banks.values())
    stored_as_bank = sum(int(np.prod(v.shape)) for b in banks.values()
                         for v in (b.templates, b.coefficients))
    return calls, folded - stored_as_bank


@pytest.mark.parametrize("scheme", list(BANK_SCHEMES))
def test_a_template_bank_is_folded_into_one_filter_per_use(scheme, images, record_property):
    model = _model(scheme)
    calls, extra = _bank_uses(model)
    kernels, banked = conv_kernel_count(model), bank_use_count(model)
    assert banked == len(calls) > kernels // 2  # every bank use was run
    assert extra > 0  # fewer templates than uses: folding costs bytes
    params = model.count_params()
    for variant in VARIANTS:
        weights = read_weights(convert_litert(model, SIZE, variant, images))
        bpw = BYTES_PER_WEIGHT[variant]
        untied = (params + extra + _zero_state_elements(model)) * bpw
        record_property(variant, f"{weights.num_filter_buffers} filters, "
                                 f"{weights.constant_bytes} bytes; bank {params * bpw}, "
                                 f"folded {untied}")
        assert weights.num_filter_buffers == kernels + banked, (variant, weights.filter_uses)
        assert 0.9 * untied <= weights.constant_bytes <= 1.1 * untied, (variant, untied)
        as_bank = (params + _zero_state_elements(model)) * bpw  # a file that kept the bank
        assert weights.constant_bytes - as_bank > 0.5 * extra * bpw
        if variant == "float32":
            stored = [values for _, _, values in weights.filters.values()]
            for (_, use), bank in calls.items():
                kernel = keras.ops.convert_to_numpy(bank.kernel_for(use)).transpose(3, 0, 1, 2)
                assert sum(v.shape == kernel.shape and np.allclose(v, kernel, rtol=1e-5,
                                                                   atol=1e-7)
                           for v in stored) == 1, (bank.name, use)
