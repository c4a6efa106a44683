"""The int8 calibration set: real training images, as the exported model receives them.

Full-integer quantization needs the range of every activation; the converter measures
them by running the float model on a representative set. That set is the first
``count`` images of the **training** split (never validation or test: the scores of
the int8 model stay unbiased), resized to the training size with the pipeline's own
preprocessing (:func:`segtie.data.pipeline.build_dataset`, no augmentation) and
rounded to uint8, which is what :func:`segtie.export.pixels.pixel_model` takes. A
model exported for sliding windows (its LiteRT input is one window) is calibrated on
windows: crops of that size at seeded random places of those images.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from segtie.data.pipeline import build_dataset

__all__ = ["representative_images"]


def representative_images(data_config, count: int, window=None, seed: int = 0
                          ) -> np.ndarray:
    """The first ``count`` training images at ``data_config.image_size``, uint8.

    Args:
        data_config: a :class:`segtie.config.DataConfig` (the recipe's ``data``).
        count: int >= 1, images to take (fewer if the split is smaller).
        window: ``[h, w]`` or None; when smaller than ``image_size``, one random crop
            of this size per image instead of the whole image.
        seed: int, the crops' places.

    Shapes:
        Returns uint8 ``(n, H, W, 3)``, ``n = min(count, training images)``,
        ``(H, W) = data_config.image_size`` (``window`` when given).

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
    images = np.clip(np.rint(np.concatenate(batches) * 255.0), 0, 255).astype(np.uint8)
    if window is None or list(window) == list(images.shape[1:3]):
        return images
    (h, w), rng = window, np.random.default_rng(seed)
    if h > images.shape[1] or w > images.shape[2]:
        raise ValueError(f"The window {list(window)} is larger than `data.image_size` "
                         f"{list(images.shape[1:3])}")
    tops = rng.integers(0, images.shape[1] - h + 1, len(images))
    lefts = rng.integers(0, images.shape[2] - w + 1, len(images))
    return np.stack([im[t:t + h, l:l + w] for im, t, l in zip(images, tops, lefts)])
