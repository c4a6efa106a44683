"""One set of checks for every custom layer, loss and metric, in keras-hub's manner.

The ideas follow keras-hub's ``keras_hub/src/tests/test_case.py`` (``run_layer_test``,
``run_serialization_test``, ``run_precision_test``, ``run_model_saving_test``); the
code is segtie's own and plain pytest (functions and ``numpy.testing``, no base class).

- :func:`run_serialization_test`: every constructor argument is in ``get_config()``
  (and kept as an attribute of the same name), ``get_config`` -> ``from_config`` gives
  the same config, and so does ``keras.saving.serialize_keras_object`` -> JSON ->
  ``deserialize_keras_object``, under the registered name ``segtie>ClassName``.
- :func:`run_layer_test`: symbolic and eager calls give the expected shape and dtype
  and the expected number of unique variables; a ``from_config`` clone given the same
  weights computes the same outputs; every trainable variable gets a gradient; a
  ``.keras`` save -> load of a model holding the layer (called at every call site)
  gives the same outputs, the same layer config and the same number of *unique*
  variables (tied weights stay tied); then :func:`run_precision_test`.
- :func:`run_precision_test`: under ``mixed_bfloat16`` and ``mixed_float16`` the
  layer and all its sublayers compute in 16 bits with float32 variables, its output
  has the documented dtype and is close to the float32 output with the same weights,
  and the policy survives a ``.keras`` round trip.
- :func:`harness_losses.run_loss_test`, :func:`harness_losses.run_metric_test`: the
  same for losses and metrics (their own module).

Outputs compared within one process use :data:`SAME`: the same kernels on the same
inputs, so only a different reduction order could separate them.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

SAME = dict(rtol=1e-6, atol=1e-6)
"""Tolerance for two computations of one function in one process (float32)."""
POLICIES = ("mixed_bfloat16", "mixed_float16")
PRECISION_TOL = {"mixed_bfloat16": 3e-2, "mixed_float16": 3e-3}
"""Tolerance, relative to the largest float32 output: bfloat16 keeps 8 mantissa bits
(rounding 2**-9), float16 11 (2**-12), and a block chains a few roundings."""


def config_json(config) -> str:
    """A config as canonical JSON text, for comparing two configs."""
    return json.dumps(config, sort_keys=True, default=str)


def _plain(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def constructor_arguments(cls) -> list:
    """The named arguments of ``cls.__init__`` (no ``self``, ``*args``, ``**kwargs``)."""
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params if p.name != "self"
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def run_serialization_test(instance, renamed=None):
    """Config and serialization round trips of ``instance``; returns the revived object.

    Args:
        instance: a layer, loss or metric (built or not).
        renamed: ``{argument: attribute}`` for arguments kept under another attribute
            name (none in segtie; for a subclass of a Keras class that does so).
    """
    cls = type(instance)
    config = instance.get_config()
    renamed = renamed or {}
    missing = [a for a in constructor_arguments(cls) if a not in config]
    assert not missing, f"{cls.__name__}.get_config() lacks the arguments {missing}"
    for arg in constructor_arguments(cls):
        value = config[arg]
        if _plain(value) and arg != "dtype":
            attr = renamed.get(arg, arg)
            assert getattr(instance, attr) == value, (
                f"{cls.__name__}.{attr} = {getattr(instance, attr)!r} but its config "
                f"says {arg} = {value!r}")
    text = config_json(config)
    json.loads(text)  # the config is JSON (a .keras file stores it so)

    clone = cls.from_config(config)
    assert type(clone) is cls
    assert config_json(clone.get_config()) == text, f"{cls.__name__}: from_config changed it"

    serialized = keras.saving.serialize_keras_object(instance)
    assert serialized["registered_name"] == f"segtie>{cls.__name__}", (
        f"{cls.__name__} is not registered under package 'segtie': {serialized}")
    revived = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
    assert type(revived) is cls
    assert config_json(revived.get_config()) == text, f"{cls.__name__}: deserializing changed it"
    return revived


def _as_list(call_kwargs) -> list:
    if call_kwargs is None:
        return [{}]
    return list(call_kwargs) if isinstance(call_kwargs, (list, tuple)) else [call_kwargs]


def _call(layer, inputs, sites, **kwargs) -> list:
    return [layer(inputs, **site, **kwargs) for site in sites]


def _accepts_training(layer) -> bool:
    return "training" in inspect.signature(layer.call).parameters


def _shape(x) -> tuple:
    return tuple(x.shape)


def unique_variables(obj) -> int:
    """Number of distinct variables (a tied variable counts once however it is used)."""
    return len({id(v) for v in obj.weights})


def _model(cls, init_kwargs, input_data, sites) -> keras.Model:
    """A functional model that calls one ``cls`` layer at every call site."""
    if isinstance(input_data, (list, tuple)):
        inputs = [keras.Input(x.shape[1:], name=f"in_{i}") for i, x in enumerate(input_data)]
    else:
        inputs = keras.Input(input_data.shape[1:], name="in_0")
    layer = cls(**init_kwargs)
    return keras.Model(inputs, _call(layer, inputs, sites))


def _outputs(result) -> list:
    return list(result) if isinstance(result, (list, tuple)) else [result]


def _numpy(outputs) -> list:
    return [keras.ops.convert_to_numpy(o) for o in outputs]


def run_layer_test(cls, init_kwargs, input_data, expected_output_shape, tmp_path: Path, *,
                   call_kwargs=None, expected_num_variables=None,
                   expected_num_trainable=None, expected_output_dtype="float32",
                   precision=True, expected_precision_dtype=None, random_training=False):
    """Run every layer check of the module docstring for ``cls(**init_kwargs)``.

    Args:
        cls: the layer class.
        init_kwargs: dict, constructor arguments.
        input_data: float32 array, or list of arrays, with a batch axis.
        expected_output_shape: tuple, the output shape at every call site.
        tmp_path: folder for the ``.keras`` file.
        call_kwargs: dict, or list of dicts: one per call site (e.g. ``use=0``,
            ``use=1`` of a block called at two sites).
        expected_num_variables: int, unique variables after building (tying proven:
            an untied copy would have more).
        expected_num_trainable: int, unique trainable variables.
        expected_output_dtype: the output dtype under the float32 policy.
        precision: bool, also run :func:`run_precision_test`.
        expected_precision_dtype, random_training: see :func:`run_precision_test`.

    Returns:
        the built layer.
    """
    sites = _as_list(call_kwargs)
    run_serialization_test(cls(**init_kwargs))

    # Symbolic call: shapes and dtypes without computing anything.
    symbolic = (
        [keras.KerasTensor(x.shape, "float32") for x in input_data]
        if isinstance(input_data, (list, tuple)) else keras.KerasTensor(input_data.shape))
    layer = cls(**init_kwargs)
    for out in _call(layer, symbolic, sites):
        assert _shape(out) == tuple(expected_output_shape)
        assert keras.backend.standardize_dtype(out.dtype) == expected_output_dtype

    # Eager call: values, weights, the dtype.
    layer = cls(**init_kwargs)
    kwargs = {"training": False} if _accepts_training(layer) else {}
    outputs = _numpy(_call(layer, input_data, sites, **kwargs))
    for out in outputs:
        assert out.shape == tuple(expected_output_shape)
        assert keras.backend.standardize_dtype(out.dtype) == expected_output_dtype
        assert np.all(np.isfinite(out))
    assert layer.built
    if expected_num_variables is not None:
        got = unique_variables(layer)
        assert got == expected_num_variables, (
            f"{cls.__name__}: {got} unique variables, expected {expected_num_variables}")
    if expected_num_trainable is not None:
        got = len({id(v) for v in layer.trainable_weights})
        assert got == expected_num_trainable, (
            f"{cls.__name__}: {got} unique trainable variables, expected "
            f"{expected_num_trainable}")

    # The same config with the same weights computes the same function.
    revived = run_serialization_test(layer)
    _call(revived, input_data, sites, **kwargs)  # build
    revived.set_weights(layer.get_weights())
    for want, got in zip(outputs, _numpy(_call(revived, input_data, sites, **kwargs))):
        np.testing.assert_allclose(got, want, **SAME)

    _check_gradients(layer, input_data, sites)
    _check_saving(cls, init_kwargs, input_data, sites, tmp_path / f"{cls.__name__}.keras")
    if precision:
        run_precision_test(cls, init_kwargs, input_data, tmp_path, call_kwargs=sites,
                           expected_output_dtype=expected_precision_dtype,
                           random_training=random_training)
    return layer


def _check_gradients(layer, input_data, sites) -> None:
    """Every trainable variable is connected to the output of some call site."""
    kwargs = {"training": True} if _accepts_training(layer) else {}
    with tf.GradientTape() as tape:
        outs = _call(layer, input_data, sites, **kwargs)
        loss = sum(tf.reduce_sum(tf.cast(o, "float32") * tf.sin(tf.cast(o, "float32") + 1.0))
                   for o in outs)
    grads = tape.gradient(loss, layer.trainable_weights)
    unused = [v.path for v, g in zip(layer.trainable_weights, grads) if g is None]
    assert not unused, f"{type(layer).__name__}: no gradient reaches {unused}"


def _check_saving(cls, init_kwargs, input_data, sites, path: Path) -> None:
    """A ``.keras`` round trip of a model holding the layer keeps outputs and tying."""
    model = _model(cls, init_kwargs, input_data, sites)
    want = _numpy(_outputs(model(input_data, training=False)))
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    original = [lyr for lyr in model.layers if isinstance(lyr, cls)]
    restored = [lyr for lyr in loaded.layers if isinstance(lyr, cls)]
    assert len(original) == len(restored) == 1, "the layer must be one object in both"
    assert config_json(restored[0].get_config()) == config_json(original[0].get_config())
    assert unique_variables(loaded) == unique_variables(model)
    assert loaded.count_params() == model.count_params()
    for v_want, v_got in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v_got),
                                      keras.ops.convert_to_numpy(v_want))
    for w, g in zip(want, _numpy(_outputs(loaded(input_data, training=False)))):
        np.testing.assert_allclose(g, w, **SAME)


def run_precision_test(cls, init_kwargs, input_data, tmp_path: Path, *, call_kwargs=None,
                       policies=POLICIES, expected_output_dtype=None, random_training=False):
    """The layer under each mixed-precision policy (the layer's ``dtype`` argument).

    Checks, for each policy: the layer and every sublayer compute in the policy's
    compute dtype and keep float32 variables; the output (inference and, where the
    layer takes ``training``, training mode) has ``expected_output_dtype`` (default:
    the policy's compute dtype) and is within :data:`PRECISION_TOL` of the float32
    layer's output with the same weights; a model of the layer saved and loaded under
    the float32 global policy keeps the policy in the layer and its sublayers.
    ``random_training=True`` (dropout) checks only the dtype of training outputs.
    """
    sites = _as_list(call_kwargs)
    reference = cls(**init_kwargs)
    modes = [{"training": False}, {"training": True}] if _accepts_training(reference) else [{}]
    _call(reference, input_data, sites, **modes[0])  # build
    weights = reference.get_weights()

    def outputs(layer, mode):
        layer.set_weights(weights)  # the same weights and moving statistics every time
        return _call(layer, input_data, sites, **mode)

    want = [_numpy(outputs(reference, mode)) for mode in modes]
    for name in policies:
        policy = keras.dtype_policies.get(name)
        dtype = expected_output_dtype or policy.compute_dtype
        layer = cls(**{**init_kwargs, "dtype": policy})
        _call(layer, input_data, sites, **modes[0])  # build
        _assert_policy(layer, policy)
        for mode, refs in zip(modes, want):
            for out, ref in zip(outputs(layer, mode), refs):
                assert keras.backend.standardize_dtype(out.dtype) == dtype, (
                    f"{cls.__name__} under {name} {mode}: output {out.dtype}, expected {dtype}")
                if random_training and mode.get("training"):
                    continue
                got = keras.ops.convert_to_numpy(keras.ops.cast(out, "float32"))
                scale = max(float(np.max(np.abs(ref))), 1e-3)
                np.testing.assert_allclose(got, ref, rtol=0, atol=PRECISION_TOL[name] * scale,
                                           err_msg=f"{cls.__name__} under {name} {mode}")
        model = _model(cls, {**init_kwargs, "dtype": policy}, input_data, sites)
        path = tmp_path / f"{cls.__name__}_{name}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        assert keras.mixed_precision.global_policy().name == "float32"
        (restored,) = [lyr for lyr in loaded.layers if isinstance(lyr, cls)]
        _assert_policy(restored, policy)


def _assert_policy(layer, policy) -> None:
    for sub in layer._flatten_layers(include_self=True):
        assert sub.compute_dtype == policy.compute_dtype, (
            f"{sub.name} computes in {sub.compute_dtype}, expected {policy.compute_dtype}")
        assert sub.variable_dtype == "float32", f"{sub.name}: {sub.variable_dtype}"
    for weight in layer.weights:
        assert keras.backend.standardize_dtype(weight.dtype) == "float32", weight.path
