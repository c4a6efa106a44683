"""Same seed, same machine, same result: seeds and TensorFlow's deterministic kernels."""

from __future__ import annotations

import logging

import keras
import tensorflow as tf

logger = logging.getLogger(__name__)

__all__ = ["seed_everything"]


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy, TensorFlow and Keras with ``seed``; set op determinism.

    ``deterministic`` switches TensorFlow's op determinism on
    (``tf.config.experimental.enable_op_determinism``: deterministic kernels, and
    tf.data keeps its element order) or back off. Either way the data order and
    augmentation are seeded (:func:`segtie.data.pipeline.build_dataset`) and the
    weights initialised from ``seed``. It is process-wide, as TensorFlow's setting is.

    Args:
        seed: int >= 0, ``train.seed``.
        deterministic: bool, ``train.deterministic``.
    """
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
        return
    from tensorflow.python.framework import config as tf_config  # no public "off" switch

    if getattr(tf_config, "is_op_determinism_enabled", lambda: False)():
        tf_config.disable_op_determinism()
        logger.info("TensorFlow op determinism switched off (train.deterministic: false)")
