"""The keras-hub-style checks of a custom loss or metric (see ``harness.py``).

- :func:`run_loss_test`, :func:`run_metric_test`: serialization, the same value after
  each round trip, a float32 value from 16-bit logits, and the object compiled into
  a model that is saved, loaded and evaluated to the same value.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from harness import POLICIES, PRECISION_TOL, SAME, config_json, run_serialization_test


def _logits_model(y_pred) -> keras.Model:
    """A 1x1 convolution whose output is ``y_pred`` on the input ``y_pred``."""
    channels = y_pred.shape[-1]
    model = keras.Sequential([keras.Input(y_pred.shape[1:]),
                              keras.layers.Conv2D(channels, 1, name="identity")])
    model.layers[0].set_weights([np.eye(channels, dtype="float32")[None, None],
                                 np.zeros(channels, "float32")])
    return model


def run_loss_test(loss, y_true, y_pred, tmp_path: Path, *, expected_value=None,
                  policies=POLICIES):
    """Serialization, value and saving checks of a Keras loss on ``(y_true, y_pred)``.

    Args:
        loss: the loss object.
        y_true, y_pred: arrays ``(batch, H, W, 1)`` and logits ``(batch, H, W, C)``.
        expected_value: float, the hand-computed loss (checked when given).
        policies: 16-bit logits give a float32 loss close to the float32 one.

    Returns:
        the loss value, float.
    """
    value = float(loss(y_true, y_pred))
    assert np.isfinite(value)
    if expected_value is not None:
        np.testing.assert_allclose(value, expected_value, rtol=1e-5)
    revived = run_serialization_test(loss)
    np.testing.assert_allclose(float(revived(y_true, y_pred)), value, **SAME)
    clone = type(loss).from_config(loss.get_config())
    np.testing.assert_allclose(float(clone(y_true, y_pred)), value, **SAME)
    for name in policies:
        dtype = keras.dtype_policies.get(name).compute_dtype
        out = loss(y_true, keras.ops.cast(y_pred, dtype))
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        np.testing.assert_allclose(float(out), value, rtol=PRECISION_TOL[name])

    model = _logits_model(y_pred)
    model.compile(optimizer="sgd", loss=loss)
    want = model.evaluate(y_pred, y_true, verbose=0, return_dict=True)
    np.testing.assert_allclose(want["loss"], value, rtol=1e-5)
    path = tmp_path / f"{type(loss).__name__}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.loss) is type(loss)
    assert config_json(loaded.loss.get_config()) == config_json(loss.get_config())
    _assert_same_logs(loaded.evaluate(y_pred, y_true, verbose=0, return_dict=True), want)
    return value


def run_metric_test(metric, batches, tmp_path: Path, *, expected_value=None,
                    policies=POLICIES):
    """Serialization, accumulation and saving checks of a Keras metric.

    Args:
        metric: the metric object (fresh state).
        batches: list of ``(y_true, y_pred)`` pairs, accumulated in order; all of one
            shape (they are also evaluated as one dataset of a compiled model).
        expected_value: float, the hand-computed result over all batches.
        policies: 16-bit logits give a float32 result equal to the float32 one.

    Returns:
        the result, float.
    """
    def accumulate(m, cast=None):
        m.reset_state()
        for y_true, y_pred in batches:
            m.update_state(y_true, y_pred if cast is None else keras.ops.cast(y_pred, cast))
        return m.result()

    value = float(accumulate(metric))
    if expected_value is not None:
        np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    assert all(keras.backend.standardize_dtype(v.dtype) == "float32" for v in metric.variables)
    revived = run_serialization_test(metric)
    assert float(accumulate(revived)) == value
    assert float(accumulate(type(metric).from_config(metric.get_config()))) == value
    metric.reset_state()
    assert all(float(np.max(np.abs(keras.ops.convert_to_numpy(v)))) == 0.0
               for v in metric.variables)
    assert float(accumulate(metric)) == value  # reset really starts again
    for name in policies:
        out = accumulate(metric, cast=keras.dtype_policies.get(name).compute_dtype)
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        assert float(out) == value, f"{name} logits changed the hard Dice"

    y_true = np.concatenate([b[0] for b in batches])
    y_pred = np.concatenate([b[1] for b in batches])
    batch_size = len(batches[0][0])
    model = _logits_model(y_pred)
    model.compile(optimizer="sgd", loss="mse", metrics=[metric])
    want = model.evaluate(y_pred, y_true, batch_size=batch_size, verbose=0, return_dict=True)
    np.testing.assert_allclose(want[metric.name], value, rtol=1e-6)
    path = tmp_path / f"{type(metric).__name__}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    _assert_same_logs(loaded.evaluate(y_pred, y_true, batch_size=batch_size, verbose=0,
                                      return_dict=True), want)
    (restored,) = [m for m in _compiled_metrics(loaded) if isinstance(m, type(metric))]
    assert config_json(restored.get_config()) == config_json(metric.get_config())
    return value


def _assert_same_logs(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], **SAME, err_msg=key)


def _compiled_metrics(model) -> list:
    """The metric objects a compiled (and evaluated) model holds, flattened."""
    found = []
    for m in model.metrics:
        found.append(m)
        found.extend(getattr(m, "metrics", []))
    return found
