"""Input pipelines: raw TFDS examples -> batches of ``(image, mask)`` for Keras.

:func:`build_dataset` feeds training and validation; :func:`build_eval_dataset` gives
the cases at their original size for evaluation. Resizing and scaling are
:mod:`segtie.data.preprocess`, the functions inference uses too.

Masks: binary data (Kvasir-SEG, DRIVE, a folder without ``label_map`` or with two
classes) gives float32 masks in {0, 1}, as the sigmoid losses expect. A folder
whose ``label_map`` has more than two classes gives int32 class-index masks
``(batch, H, W, 1)`` in 0..K (see :func:`segtie.config.implied_num_classes`), for a softmax model
with ``K + 1`` outputs and a sparse categorical loss.

Patches: with ``DataConfig.patch_size`` set, training takes ``patches_per_image``
random patches (:func:`segtie.data.patches.random_patch`, foreground-oversampled) of each
image at ``image_size`` per epoch; the evaluation splits (``training=False``) stay
whole images at ``image_size`` (a fully convolutional model takes both).
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

import tensorflow as tf

from segtie.config import implied_num_classes
from segtie.data.augment import augment
from segtie.data.patches import random_patch
from segtie.data.preprocess import check_size, preprocess_image, preprocess_mask
from segtie.data.sources import load_split

__all__ = ["build_dataset", "build_eval_dataset"]

logger = logging.getLogger(__name__)


def _case_limit(data_config, split: str) -> Optional[int]:
    """``max_train_cases`` for the train split, ``max_eval_cases`` for the others."""
    if split == "train":
        return data_config.max_train_cases
    return data_config.max_eval_cases


def _limited_split(data_config, split: str) -> tf.data.Dataset:
    dataset = load_split(data_config, split)
    limit = _case_limit(data_config, split)
    if limit is not None:
        dataset = dataset.take(limit)
    return dataset


def build_dataset(data_config, split: str, *, training: bool, seed: int = 42
                  ) -> tf.data.Dataset:
    """Batches of ``(image, mask)`` at ``data_config.image_size`` for Keras.

    Steps: load the split (:func:`segtie.data.sources.load_split`, preparing the TFDS data
    if needed) -> keep the first ``max_train_cases`` (train split) or
    ``max_eval_cases`` (other splits) -> resize (:func:`preprocess_image`,
    :func:`preprocess_mask`) -> cache in memory (if ``data_config.cache``) -> when
    ``training``: repeat each image ``patches_per_image`` times (with
    ``patch_size``), shuffle (``shuffle_buffer``, reshuffled every epoch), crop a
    random patch (with ``patch_size``) and augment (:func:`segtie.data.augment.augment`;
    one seed per example) -> batch (``batch_size``, the last partial batch kept) ->
    prefetch.

    The output is the same for the same ``seed`` (epoch after epoch, run after run):
    the source order is fixed, and shuffling, patches and augmentation draw from
    ``seed``.

    Args:
        data_config: a :class:`segtie.config.DataConfig`.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        training: shuffle and augment when True.
        seed: seed of the shuffle and of the augmentation draws. Default 42.

    Shapes:
        Each element is ``(image, mask)``: image float32 ``(batch, H, W, 3)`` in
        [0, 1], mask float32 ``(batch, H, W, 1)`` in {0, 1} (int32 class indices
        0..K when ``implied_num_classes(data_config) > 1``), with ``(H, W) =
        data_config.image_size``, or ``patch_size`` when training on patches;
        ``batch <= data_config.batch_size``.

    Returns:
        A batched, prefetched ``tf.data.Dataset``.

    Raises:
        ValueError: an unknown split or dataset name.
        FileNotFoundError: the dataset archive is missing (see
            :mod:`segtie.data.sources.kvasir_seg`).
    """
    size = check_size(data_config.image_size)
    mask_dtype = tf.int32 if implied_num_classes(data_config) > 1 else tf.float32
    dataset = _limited_split(data_config, split)
    dataset = dataset.map(
        lambda case: (preprocess_image(case["image"], size),
                      preprocess_mask(case["mask"], size, mask_dtype)),
        num_parallel_calls=tf.data.AUTOTUNE)
    if data_config.cache:
        dataset = dataset.cache()
    if training:
        dataset = _training_examples(dataset, data_config, seed)
    dataset = dataset.batch(data_config.batch_size, drop_remainder=False)
    logger.info("Dataset %s/%s: image_size=%s, patch_size=%s, training=%s",
                data_config.name, split, size, data_config.patch_size, training)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _training_examples(dataset: tf.data.Dataset, data_config, seed: int
                       ) -> tf.data.Dataset:
    """Repeat for patches, shuffle, then crop a patch and augment, one seed each."""
    patch_size = data_config.patch_size
    if patch_size is not None and data_config.patches_per_image > 1:
        repeats = data_config.patches_per_image
        count = int(dataset.cardinality())
        dataset = dataset.flat_map(
            lambda image, mask: tf.data.Dataset.from_tensors((image, mask)).repeat(repeats))
        if count >= 0:  # flat_map forgets the size; the schedule needs it
            dataset = dataset.apply(tf.data.experimental.assert_cardinality(count * repeats))
    dataset = dataset.shuffle(data_config.shuffle_buffer, seed=seed,
                              reshuffle_each_iteration=True)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    augment_config = data_config.augment

    def example(pair, pair_seed):
        image, mask = pair
        if patch_size is not None:
            patch_seed = tf.random.experimental.stateless_fold_in(pair_seed, 1)
            image, mask = random_patch(image, mask, patch_seed, patch_size,
                                       data_config.patch_foreground_prob)
        return augment(image, mask, pair_seed, augment_config)

    return tf.data.Dataset.zip((dataset, seeds)).map(example,
                                                     num_parallel_calls=tf.data.AUTOTUNE)


def build_eval_dataset(data_config, split: str) -> tf.data.Dataset:
    """The cases of a split at their original size, for evaluation.

    Honours ``max_eval_cases`` (``max_train_cases`` for the train split), in the same
    fixed order as :func:`build_dataset` without training.

    Args:
        data_config: a :class:`segtie.config.DataConfig`.
        split: ``"train"``, ``"validation"`` or ``"test"``.

    Shapes:
        Each element is ``{"id": string (), "image": uint8 (H0, W0, 3),
        "mask": uint8 (H0, W0)}``, ``(H0, W0)`` varying per case; ``mask`` in
        {0, 1} (class indices for a multi-class folder). DRIVE adds ``fov`` and
        ``mask2`` (uint8 (H0, W0) in {0, 1}; ``mask2`` is the second observer, all
        zeros where ``has_mask2`` (bool ()) is False).

    Returns:
        An unbatched ``tf.data.Dataset``. Iterate with ``.as_numpy_iterator()``;
        ``id`` then comes as ``bytes`` (decode it with ``.decode()``).

    Raises:
        ValueError: an unknown split or dataset name.
        FileNotFoundError: the dataset archive is missing.
    """
    dataset = _limited_split(data_config, split)
    maps = ("mask", "fov", "mask2")  # (H0, W0, 1) -> (H0, W0)
    return dataset.map(
        lambda case: {key: value[..., 0] if key in maps else value
                      for key, value in case.items()},
        num_parallel_calls=tf.data.AUTOTUNE)
