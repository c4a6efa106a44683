"""Run an exported model like a Keras one: LiteRT and SavedModel adapters.

:class:`LiteRTModel` and :class:`SavedModelModel` take what a segtie Keras model takes,
images float32 ``(n, h, w, 3)`` in [0, 1], and return logits ``(n, h, w, K)``
float32, so :func:`segtie.inference.predict_logits` (resize or sliding window, TTA)
runs them unchanged. Each also exposes the exported pixel signature itself
(:meth:`LiteRTModel.pixels`, :meth:`SavedModelModel.pixels`).

A LiteRT model's input is uint8 at a fixed size ``(1, H, W, 3)`` (see
:mod:`segtie.export.pixels`); :class:`LiteRTModel` rounds its [0, 1] input back to
uint8 (exact for tiles of an 8-bit image, within half a grey level after an
antialiased resize) and runs one image at a time. It runs in the LiteRT interpreter of
``ai-edge-litert`` (XNNPACK on CPU).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["LiteRTModel", "SavedModelModel", "is_saved_model"]

logger = logging.getLogger(__name__)
SIGNATURE = "serving_default"


def is_saved_model(path) -> bool:
    """Whether ``path`` is a SavedModel folder (it holds ``saved_model.pb``)."""
    return Path(path).is_dir() and (Path(path) / "saved_model.pb").is_file()


def _dequantize(value: np.ndarray, detail: dict) -> np.ndarray:
    """float32 of an output; int8/uint8 outputs through their scale and zero point."""
    if value.dtype == np.float32:
        return value
    scale, zero_point = detail["quantization"]
    return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)


class LiteRTModel:
    """A ``.tflite`` model written by :func:`segtie.export.export_model`, as a callable.

    Args:
        model: path of the ``.tflite`` file, or its bytes.
        num_threads: int or None, CPU threads of the interpreter (None: its default).

    Attributes:
        image_size: ``[H, W]`` of the fixed input.
        num_classes: logit channels ``K``.
        input_dtype: numpy dtype of the input (uint8).
        weights_dtype: how the file stores its weights, read from its tensors:
            ``"int8"`` (full-integer quantization), ``"float16"`` or ``"float32"``.

    Raises:
        FileNotFoundError: no file at ``model``.
        ValueError: the file is not a segtie LiteRT export (no ``serving_default``
            signature with input ``image`` and output ``logits``).
    """

    def __init__(self, model, num_threads: Optional[int] = None):
        from ai_edge_litert.interpreter import Interpreter

        if isinstance(model, (bytes, bytearray)):
            self.name, kwargs = "<bytes>", {"model_content": bytes(model)}
        else:
            path = Path(model)
            if not path.is_file():
                raise FileNotFoundError(f"LiteRT model not found: {path} (expected a "
                                        f".tflite file written by `segtie export`)")
            self.name, kwargs = str(path), {"model_path": str(path)}
        try:
            self.interpreter = Interpreter(num_threads=num_threads, **kwargs)
            self.runner = self.interpreter.get_signature_runner(SIGNATURE)
        except (ValueError, RuntimeError) as err:
            raise ValueError(f"{self.name} is not a loadable LiteRT model with a "
                             f"{SIGNATURE!r} signature: {err}") from err
        inputs, self.outputs = self.runner.get_input_details(), self.runner.get_output_details()
        if "image" not in inputs or "logits" not in self.outputs:
            raise ValueError(f"{self.name} must have input 'image' and output 'logits' "
                             f"(a segtie export), received inputs {sorted(inputs)} and "
                             f"outputs {sorted(self.outputs)}")
        shape = [int(d) for d in inputs["image"]["shape"]]
        self.image_size = shape[1:3]
        self.input_dtype = inputs["image"]["dtype"]
        self.num_classes = int(self.outputs["logits"]["shape"][-1])
        stored = {np.dtype(t["dtype"]) for t in self.interpreter.get_tensor_details()}
        self.weights_dtype = next((str(np.dtype(d)) for d in (np.int8, np.float16)
                                   if np.dtype(d) in stored), "float32")

    def pixels(self, image: np.ndarray) -> dict:
        """Run the exported signature on one uint8 image at :attr:`image_size`.

        Shapes:
            ``image``: uint8 ``(1, H, W, 3)`` or ``(H, W, 3)``. Returns
            ``{"logits", "probabilities"}``, float32 ``(1, H, W, K)`` (int8 outputs
            are dequantized).

        Raises:
            ValueError: ``image`` is not uint8 of that shape.
        """
        image = np.asarray(image)
        if image.ndim == 3:
            image = image[None]
        expected = (1, *self.image_size, 3)
        if image.dtype != np.uint8 or image.shape != expected:
            raise ValueError(f"{self.name} takes uint8 {expected}, received "
                             f"{image.dtype} {image.shape}")
        out = self.runner(image=image)
        return {k: _dequantize(v, self.outputs[k]) for k, v in out.items()}

    def __call__(self, images, training=False) -> np.ndarray:
        """Logits of images in [0, 1], as a Keras segtie model gives them.

        Shapes:
            ``images``: float32 ``(n, H, W, 3)`` at :attr:`image_size`. Returns
            float32 ``(n, H, W, K)``.

        Raises:
            ValueError: ``images`` are not ``(n, H, W, 3)`` at :attr:`image_size`
                (set ``eval.window_size`` to it, or leave it null, for sliding
                windows).
        """
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or list(images.shape[1:3]) != self.image_size:
            raise ValueError(f"{self.name} has a fixed input size {self.image_size}; "
                             f"received images of shape {images.shape}")
        pixels = np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)
        return np.concatenate([self.pixels(p[None])["logits"] for p in pixels])


class SavedModelModel:
    """A SavedModel written by :func:`segtie.export.export_model`, as a callable.

    Args:
        path: the SavedModel folder.

    Raises:
        FileNotFoundError: ``path`` is not a SavedModel folder.
        ValueError: it lacks the ``serving_default`` or ``logits`` signature.
    """

    def __init__(self, path):
        import tensorflow as tf

        self.name = str(path)
        if not is_saved_model(path):
            raise FileNotFoundError(f"SavedModel not found: {path} (expected a folder "
                                    f"holding saved_model.pb, written by `segtie export`)")
        self.loaded = tf.saved_model.load(str(path))
        missing = {SIGNATURE, "logits"} - set(self.loaded.signatures)
        if missing:
            raise ValueError(f"SavedModel {path} lacks the signatures {sorted(missing)} "
                             f"(a segtie export has 'serving_default' and 'logits'), "
                             f"received {sorted(self.loaded.signatures)}")
        self._serve = self.loaded.signatures[SIGNATURE]
        self._logits = self.loaded.signatures["logits"]
        self.num_classes = int(self._logits.structured_outputs["logits"].shape[-1])

    def pixels(self, image: np.ndarray) -> dict:
        """``serving_default``: uint8 ``(n, H0, W0, 3)`` of any size ->
        ``{"probabilities": float32 (n, H0, W0, K), "mask": uint8 (n, H0, W0)}``."""
        return {k: v.numpy() for k, v in self._serve(image=np.asarray(image)).items()}

    def __call__(self, images, training=False) -> np.ndarray:
        """Logits ``(n, h, w, K)`` float32 of images float32 ``(n, h, w, 3)`` in [0, 1]."""
        return self._logits(image=np.asarray(images, dtype=np.float32))["logits"].numpy()
