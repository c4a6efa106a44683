"""The int8 calibration set: real training images, as the exported model receives them.

Full-integer quantization needs the range of every activation; the converter measures
them by running the float model on a representative set. That set is the first
``count`` images of the **training** split (never validation or test: the scores of
the int8 model stay unbiased), resized to the training size with the pipeline's own
preprocessing (:func:`segtie.data.pipeline.build_dataset`, no augmentation) and
rounded to uint8, which is what :func:`segtie.export.pixels.pixel_model` takes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from segtie.data.pipeline import build_dataset

__all__ = ["representative_images"]


def representative_images(data_config, count: int) -> np.ndarray:
    """The first ``count`` training images at ``data_config.image_size``, uint8.

    Args:
        data_config: a :class:`segtie.config.DataConfig` (the recipe's ``data``).
        count: int >= 1, images to take (fewer if the split is smaller).

    Shapes:
        Returns uint8 ``(n, H, W, 3)``, ``n = min(count, training images)``,
        ``(H, W) = data_config.image_size``.

    Raises:
        ValueError: ``count`` < 1, or the training split is empty.
        FileNotFoundError: the dataset archive is missing (see :mod:`segtie.data`).
    """
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"`count` (calibration images) must be an integer >= 1, "
                         f"received {count!r}")
    limit = min(count, data_config.max_train_cases or count)
    data = dataclasses.replace(data_config, max_train_cases=limit, cache=False,
                               patch_size=None)
    batches = [images for images, _ in build_dataset(data, "train", training=False)
               .as_numpy_iterator()]
    if not batches:
        raise ValueError(f"The training split of `data.name` = {data_config.name!r} has "
                         f"no images to calibrate int8 quantization with")
    images = np.concatenate(batches)
    return np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)
