"""The exported graphs: raw uint8 pixels in, the model's logits and probabilities out.

Two graphs wrap a trained segtie model (images float32 in [0, 1] -> logits), with the
preprocessing of :mod:`segtie.data.preprocess` and the final activation inside:

- :func:`pixel_model` (LiteRT): a Keras model taking uint8 ``(1, H, W, 3)`` at the
  training size ``(H, W)``, scaling it to [0, 1] and returning ``logits`` and
  ``probabilities``. The input size is fixed because LiteRT plans memory, and
  XNNPACK and full-integer quantization calibrate, for static shapes, and because
  the antialiased resize of :func:`~segtie.data.preprocess.preprocess_image`
  lowers to TensorFlow's ``ScaleAndTranslate``, which is not a LiteRT built-in op
  (it would need the Flex delegate, which ``ai-edge-litert`` does not ship). The
  caller resizes: :class:`segtie.export.runtime.LiteRTModel` does it with
  ``preprocess_image`` and rounds to uint8, as a camera pipeline would.
- :class:`PixelServing` (SavedModel): takes uint8 ``(n, H0, W0, 3)`` of any size,
  resizes it with ``preprocess_image`` inside the graph, runs the model, resizes the
  logits back to ``(H0, W0)`` (bilinear, before the activation, as
  :func:`segtie.inference.predict_probabilities` does) and returns probabilities
  and the mask.

The final activation is the sigmoid for one output channel, the softmax over the
channels for ``num_classes > 1``.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf

from segtie.data.preprocess import check_size, preprocess_image

__all__ = ["PixelServing", "activation_name", "pixel_model"]


def activation_name(num_classes: int) -> str:
    """``"sigmoid"`` for one logit channel, ``"softmax"`` for ``num_classes > 1``."""
    return "sigmoid" if num_classes == 1 else "softmax"


def _check_model(model: keras.Model) -> tuple[int, int]:
    """``(in_channels, num_classes)`` of a segtie model; errors name what is wrong."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model, received {type(model).__name__}")
    in_channels, num_classes = model.inputs[0].shape[-1], model.outputs[0].shape[-1]
    if in_channels != 3:
        raise ValueError(f"Exported models take RGB pixels: `model` must take 3 input "
                         f"channels, received {in_channels}")
    return in_channels, num_classes


def pixel_model(model: keras.Model, image_size: Sequence[int]) -> keras.Model:
    """uint8 pixels at the training size -> ``{"logits", "probabilities"}`` (for LiteRT).

    Args:
        model: a segtie model, images float32 ``(n, H, W, 3)`` in [0, 1] -> logits
            ``(n, H, W, K)``.
        image_size: ``[H, W]`` the model was trained at.

    Shapes:
        input ``image``: uint8 ``(1, H, W, 3)``. Outputs ``logits`` and
        ``probabilities``: float32 ``(1, H, W, K)``.

    Raises:
        TypeError: ``model`` is not a Keras model.
        ValueError: ``model`` does not take 3 channels, or a bad ``image_size``.
    """
    _, num_classes = _check_model(model)
    height, width = check_size(image_size)
    image = keras.Input((height, width, 3), batch_size=1, dtype="uint8", name="image")
    scaled = keras.layers.Rescaling(1.0 / 255.0, name="scale_to_unit")(image)
    logits = model(scaled)
    probabilities = keras.layers.Activation(activation_name(num_classes),
                                            name="probabilities")(logits)
    return keras.Model(image, {"logits": logits, "probabilities": probabilities},
                       name=f"{model.name}_pixels")


class PixelServing(tf.Module):
    """The SavedModel's functions: any-size uint8 images -> probabilities and mask.

    Args:
        model: a segtie model (images float32 in [0, 1] -> logits ``K`` channels).
        image_size: ``[H, W]`` the model was trained at.
        threshold: float, a binary mask is ``probability > threshold``; multi-class
            masks are the argmax (threshold unused).

    Functions (the SavedModel's signatures):
        ``serve`` (``serving_default``): ``image`` uint8 ``(n, H0, W0, 3)`` ->
        ``probabilities`` float32 ``(n, H0, W0, K)`` and ``mask`` uint8
        ``(n, H0, W0)`` (0/1, or class indices).
        ``logits`` (``logits``): ``image`` float32 ``(n, h, w, 3)`` in [0, 1] ->
        ``logits`` float32 ``(n, h, w, K)``, ``h`` and ``w`` multiples of
        ``2 ** (depth - 1)``: the raw model, for sliding windows and TTA.
    """

    def __init__(self, model: keras.Model, image_size: Sequence[int], threshold: float):
        super().__init__(name="segtie_pixels")
        _, self.num_classes = _check_model(model)
        self.model = model
        self.image_size = check_size(image_size)
        self.threshold = float(threshold)
        self.serve = tf.function(self._serve, input_signature=[
            tf.TensorSpec((None, None, None, 3), tf.uint8, name="image")])
        self.logits = tf.function(self._logits, input_signature=[
            tf.TensorSpec((None, None, None, 3), tf.float32, name="image")])

    def _logits(self, image):
        return {"logits": self.model(image, training=False)}

    def _serve(self, image):
        logits = self.model(preprocess_image(image, self.image_size), training=False)
        logits = tf.image.resize(logits, tf.shape(image)[1:3], method="bilinear")
        if self.num_classes == 1:
            probabilities = tf.sigmoid(logits)
            mask = tf.cast(probabilities[..., 0] > self.threshold, tf.uint8)
        else:
            probabilities = tf.nn.softmax(logits, axis=-1)
            mask = tf.cast(tf.argmax(probabilities, axis=-1), tf.uint8)
        return {"probabilities": probabilities, "mask": mask}

    def signatures(self) -> dict:
        """The SavedModel signatures: ``serving_default`` and ``logits``."""
        return {"serving_default": self.serve.get_concrete_function(),
                "logits": self.logits.get_concrete_function()}
