"""The activation peak of a .tflite file, against hand-counted tensors of tiny models."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from segtie.export.arena import activation_peak


def _tflite(model) -> bytes:
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _chain(skip: bool):
    """x (1,4,4,2) -> 1x1 conv (3) -> 1x1 conv (1) [-> concat with x]; float32."""
    x = keras.Input((4, 4, 2), batch_size=1)
    y = keras.layers.Conv2D(3, 1)(x)
    z = keras.layers.Conv2D(1, 1)(y)
    out = keras.layers.Concatenate()([x, z]) if skip else z
    return keras.Model(x, out)


def test_a_chain_holds_one_input_and_one_output_at_a_time():
    peak = activation_peak(_tflite(_chain(skip=False)))
    # x 4*4*2*4 = 128 B, y 4*4*3*4 = 192 B, z 4*4*1*4 = 64 B: max(128 + 192, 192 + 64)
    assert peak.peak_bytes == 320
    assert peak.largest_tensor_bytes == 192
    assert peak.num_ops == 2 and peak.peak_op == 0


def test_a_skip_connection_stays_alive_until_its_concatenation():
    peak = activation_peak(_tflite(_chain(skip=True)))
    # at the second conv x (128), y (192) and z (64) are alive: 384 B
    assert peak.peak_bytes == 384
    assert peak.num_ops == 3


def test_not_a_flatbuffer_is_refused():
    with pytest.raises(ValueError, match="Not a LiteRT flatbuffer"):
        activation_peak(b"\x00" * 16)
