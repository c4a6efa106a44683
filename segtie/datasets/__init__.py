"""Public datasets as TFDS builders, and one entry point to read a split.

:func:`load_split` dispatches on ``DataConfig.name`` and returns the raw, decoded
examples of a split at their original size; :mod:`segtie.pipeline` resizes, caches,
augments and batches them.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from segtie.datasets.kvasir_seg import (SPLITS, KvasirSeg, load_kvasir_split,
                                        prepare_kvasir_seg)

__all__ = ["KvasirSeg", "LOADERS", "SPLITS", "load_split", "load_kvasir_split",
           "prepare_kvasir_seg"]

# DataConfig.name -> function(data_config, split) -> tf.data.Dataset of raw examples.
LOADERS: dict[str, Callable[..., tf.data.Dataset]] = {
    "kvasir_seg": load_kvasir_split,
}


def load_split(data_config, split: str) -> tf.data.Dataset:
    """The raw examples of one split of the dataset named by ``data_config.name``.

    The dataset is built into ``data_config.data_dir`` on first use (from the archive in
    ``data_config.manual_dir`` or ``$SEGTIE_MANUAL_DIR``).

    Args:
        data_config: a :class:`segtie.config.DataConfig`.
        split: ``"train"``, ``"validation"`` or ``"test"``.

    Shapes:
        Each element is ``{"id": string (), "image": uint8 (height, width, 3),
        "mask": uint8 (height, width, 1) in {0, 1}}`` at the original size.

    Returns:
        An unbatched ``tf.data.Dataset`` in a fixed order.

    Raises:
        ValueError: an unknown dataset name or split.
        FileNotFoundError: the dataset's archive cannot be found or downloaded.
    """
    if data_config.name not in LOADERS:
        raise ValueError(f"`data.name` must be one of {sorted(LOADERS)}, received "
                         f"{data_config.name!r}")
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {list(SPLITS)}, received {split!r}")
    return LOADERS[data_config.name](data_config, split)
