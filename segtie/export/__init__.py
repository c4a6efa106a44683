"""Export: SavedModel and LiteRT (float32, float16, int8) with preprocessing inside.

``segtie export --checkpoint <.keras | runs:/... | models:/...>`` (or
:func:`export_model`) writes, from one trained model and its config:

SavedModel (``saved_model/``; loads without segtie, ``tf.saved_model.load``):

=====================  ==================================  =========================
signature              inputs                              outputs
=====================  ==================================  =========================
``serving_default``    ``image`` uint8 ``(n, H0, W0, 3)``  ``probabilities`` float32
                       raw RGB pixels, any size            ``(n, H0, W0, K)``;
                                                           ``mask`` uint8
                                                           ``(n, H0, W0)``
``logits``             ``image`` float32 ``(n, h, w, 3)``  ``logits`` float32
                       in [0, 1]                           ``(n, h, w, K)``
=====================  ==================================  =========================

``serving_default`` resizes to the training size ``(H, W)`` (bilinear, antialiased:
:func:`segtie.data.preprocess.preprocess_image`), scales to [0, 1], runs the U-Net,
resizes the logits back to ``(H0, W0)`` and applies the sigmoid (``K = 1``; mask =
probability > ``eval.threshold``) or the softmax (``K > 1``; mask = argmax).

LiteRT (``model_float32.tflite``, ``model_float16.tflite``, ``model_int8.tflite``;
signature ``serving_default``):

- input ``image``: uint8 ``(1, H, W, 3)``, raw RGB pixels **at the training size**
  ``data.image_size`` (128x128 for the Kvasir-SEG recipe; one window,
  ``eval.window_size``, for a sliding-window recipe such as DRIVE's 96x96). Resize first, as
  :class:`~segtie.export.runtime.LiteRTModel` does (``preprocess_image``, rounded to
  uint8). The size is fixed because LiteRT plans memory, XNNPACK prepares its kernels
  and int8 calibration measures ranges for static shapes, and because the antialiased
  resize lowers to ``ScaleAndTranslate``, which is not a LiteRT built-in op.
- outputs ``logits`` and ``probabilities``: float32 ``(1, H, W, K)`` (int8 with
  ``--int8-io``: dequantize as ``(q - zero_point) * scale``, both in the file).

The graph scales to [0, 1], runs the U-Net and applies the activation; ``logits``
is there so that the caller can resize to the original size before the activation,
as :func:`segtie.inference.predict_probabilities` does.

Modules: :mod:`~segtie.export.pixels` (the two graphs), :mod:`~segtie.export.litert`
(the converter and its variants), :mod:`~segtie.export.calibration` (the int8
calibration set), :mod:`~segtie.export.flatbuffer` (reading weights back: tying in
the file), :mod:`~segtie.export.runtime` (running exports like Keras models),
:mod:`~segtie.export.run` (:func:`export_model`).
"""

from segtie.export.calibration import representative_images
from segtie.export.flatbuffer import FlatbufferWeights, read_weights
from segtie.export.litert import BYTES_PER_WEIGHT, VARIANTS, convert_litert
from segtie.export.pixels import PixelServing, activation_name, pixel_model
from segtie.export.run import (ExportResult, bank_use_count, basis_filter_count,
                               conv_kernel_count, export_model, litert_file_name,
                               litert_input_size)
from segtie.export.runtime import LiteRTModel, SavedModelModel, is_saved_model

__all__ = ["BYTES_PER_WEIGHT", "ExportResult", "FlatbufferWeights", "LiteRTModel",
           "PixelServing", "SavedModelModel", "VARIANTS", "activation_name", "bank_use_count",
           "basis_filter_count", "conv_kernel_count", "convert_litert", "export_model", "is_saved_model",
           "litert_file_name", "litert_input_size", "pixel_model", "read_weights", "representative_images"]
