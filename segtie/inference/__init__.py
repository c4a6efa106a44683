"""Inference at the original resolution: resize or sliding window, mirroring TTA, LCC.

Two ways to bring a model trained at ``image_size`` to an image of any size:

* **resize** (default): the image is resized to ``image_size`` (as in training), the
  model gives logits, and the logits are resized bilinearly back to the original size
  before the sigmoid (nnU-Net v2 resamples logits before its softmax);
* **sliding window** (nnU-Net, MONAI ``SlidingWindowInferer``): the image, scaled to
  [0, 1] at its original resolution, is covered by ``window_size`` tiles whose starts
  are spread evenly with at least ``overlap`` between neighbours (nnU-Net's
  ``compute_steps_for_sliding_window``); an image smaller than the window is padded
  with zeros at the bottom and right. Tile logits are blended with a Gaussian
  importance map (sigma = ``sigma_scale`` x window side; nnU-Net and MONAI use 1/8)
  or uniformly, then divided by the summed weights. This suits a model trained on
  patches at the native resolution; a model trained on whole, downscaled frames (the
  Kvasir-SEG recipe) sees a different scale in each tile.

Mirroring test-time augmentation averages the *logits* of the input and its three
flips (left-right, up-down, both), each flipped back, as nnU-Net does.
:func:`largest_component` keeps only the largest 8-connected foreground component.
No config objects here: :class:`InferenceOptions` holds plain values. Modules:
:mod:`~segtie.inference.options`, :mod:`~segtie.inference.sliding_window`,
:mod:`~segtie.inference.predict` (the one prediction path: logits, probabilities),
:mod:`~segtie.inference.postprocess` (threshold or argmax, largest component) and
:mod:`~segtie.inference.files` (image files in, mask PNGs out: ``segtie predict``).
A new inference option goes into :class:`InferenceOptions` and
:func:`~segtie.inference.predict.predict_logits`.

References:
    Isensee et al., "nnU-Net: a self-configuring method for deep learning-based
    biomedical image segmentation", Nature Methods 18, 2021.
    MONAI ``monai.inferers.SlidingWindowInferer``.
"""

from segtie.inference.options import InferenceOptions
from segtie.inference.postprocess import largest_component, predict_labels
from segtie.inference.predict import predict_logits, predict_probabilities
from segtie.inference.sliding_window import (gaussian_importance_map, sliding_window_logits,
                                             window_starts)

__all__ = ["InferenceOptions", "gaussian_importance_map", "largest_component",
           "predict_labels", "predict_logits", "predict_probabilities",
           "sliding_window_logits", "window_starts"]
