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

Volumes (``image_size`` of three sides, ``hippocampus``): each z-scored volume is
padded or cropped about its centre to ``image_size`` (:func:`segtie.data.volumes.fit_volume`,
no resampling), patches are 3-D, and the augmentation is
:func:`segtie.data.augment.volume.augment_volume`; images are float32 ``(batch, D,
H, W, 1)``, masks int32 ``(batch, D, H, W, 1)``.
"""

from __future__ import annotations

import logging

import tensorflow as tf

from segtie.config import implied_num_classes
from segtie.data.augment import augment
from segtie.data.augment.volume import augment_volume, check_volume_augment
from segtie.data.patches import random_patch
from segtie.data.preprocess import check_size, preprocess_image, preprocess_mask
from segtie.data.sources import load_split
from segtie.data.splits import case_limit, split_parts
from segtie.data.volumes import fit_volume

__all__ = ["build_dataset", "build_eval_dataset"]

logger = logging.getLogger(__name__)


def _limited_split(data_config, split: str) -> tf.data.Dataset:
    first, *rest = split_parts(data_config, split)
    dataset = load_split(data_config, first)
    for part in rest:
        dataset = dataset.concatenate(load_split(data_config, part))
    limit = case_limit(data_config, split)
    if limit is not None:
        dataset = dataset.take(limit)
    return dataset


def build_dataset(data_config, split: str, *, training: bool, seed: int = 42,
                  epochs: int = 1, start_epoch: int = 0) -> tf.data.Dataset:
    """Batches of ``(image, mask)`` at ``data_config.image_size`` for Keras.

    Steps: load the split (:func:`segtie.data.sources.load_split`, preparing the TFDS data
    if needed; the train split followed by the validation split with
    ``data_config.train_on_validation``) -> keep the first ``max_train_cases`` (train split) or
    ``max_eval_cases`` (other splits) -> resize (:func:`preprocess_image`,
    :func:`preprocess_mask`) -> cache in memory (if ``data_config.cache``) -> when
    ``training``, for each epoch ``e`` of ``start_epoch .. epochs - 1``: repeat each
    image ``patches_per_image`` times (with ``patch_size``), shuffle
    (``shuffle_buffer``), crop a random patch (with ``patch_size``) and augment
    (:func:`segtie.data.augment.augment`; one seed per example), batch
    (``batch_size``, each epoch's last partial batch kept), the epochs one after the
    other -> prefetch. Without ``training``: batch the split once, in its order.

    Epoch ``e``'s order, patches and augmentation are a function of ``(seed, e)``
    alone, never of how many epochs this process has iterated before: the stream
    from ``start_epoch=3`` is the tail of the stream from ``start_epoch=0``, batch
    for batch, which is what lets a resumed training see the data an uninterrupted
    one would. The output is the same for the same ``seed`` (run after run, and
    each time the dataset is iterated), whatever TensorFlow's global seed
    (``tf.random.set_seed``) is.

    Args:
        data_config: a :class:`segtie.config.DataConfig`.
        split: ``"train"``, ``"validation"`` or ``"test"``.
        training: shuffle and augment when True.
        seed: seed of the shuffle and of the augmentation draws. Default 42.
        epochs: int, default 1; with ``training``, the stream ends after epoch
            ``epochs - 1`` (ignored without ``training``: one pass).
        start_epoch: int, default 0; with ``training``, the first epoch of the
            stream (a resumed training's first epoch).

    Shapes:
        Each element is ``(image, mask)``: image float32 ``(batch, H, W, 3)`` in
        [0, 1], mask float32 ``(batch, H, W, 1)`` in {0, 1} (int32 class indices
        0..K when ``implied_num_classes(data_config) > 1``), with ``(H, W) =
        data_config.image_size``, or ``patch_size`` when training on patches;
        ``batch <= data_config.batch_size``. With ``training``, when the examples of
        an epoch (cases times ``patches_per_image``) fill whole batches, ``batch`` is
        static (``data_config.batch_size`` in the element spec) and no batch is smaller.

    Returns:
        A batched, prefetched ``tf.data.Dataset``. Its cardinality is known: with
        ``training``, ``(epochs - start_epoch)`` times the batches of one epoch.

    Raises:
        ValueError: an unknown split or dataset name; with ``training``,
            ``start_epoch`` not in ``0 .. epochs - 1``.
        FileNotFoundError: the dataset archive is missing (see
            :mod:`segtie.data.sources.kvasir_seg`).
    """
    if training and not (isinstance(start_epoch, int) and isinstance(epochs, int)
                         and 0 <= start_epoch < epochs):
        raise ValueError(f"`start_epoch` must be an int in 0 .. epochs - 1 = {epochs - 1}, "
                         f"received start_epoch={start_epoch!r}, epochs={epochs!r}")
    volumes = len(data_config.image_size) == 3
    size = list(data_config.image_size) if volumes else check_size(data_config.image_size)
    mask_dtype = tf.int32 if implied_num_classes(data_config) > 1 else tf.float32
    dataset = _limited_split(data_config, split)
    if volumes:
        check_volume_augment(data_config.augment)
        prepare = lambda case: (fit_volume(case["image"], size),  # noqa: E731
                                tf.cast(fit_volume(case["mask"], size), mask_dtype))
    else:
        prepare = lambda case: (preprocess_image(case["image"], size),  # noqa: E731
                                preprocess_mask(case["mask"], size, mask_dtype))
    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    if data_config.cache:
        dataset = dataset.cache()
    if training:
        dataset = _training_epochs(dataset, data_config, seed, start_epoch, epochs)
    else:
        dataset = dataset.batch(data_config.batch_size, drop_remainder=False)
    logger.info("Dataset %s/%s: image_size=%s, patch_size=%s, training=%s",
                data_config.name, split, size, data_config.patch_size, training)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _training_epochs(dataset: tf.data.Dataset, data_config, seed: int, start_epoch: int,
                     epochs: int) -> tf.data.Dataset:
    """Epochs ``start_epoch .. epochs - 1`` of batches, epoch ``e`` drawn from ``(seed, e)``."""
    patch_size = data_config.patch_size
    repeats = data_config.patches_per_image if patch_size is not None else 1
    count = int(dataset.cardinality())
    augment_config = data_config.augment
    augment_fn = augment_volume if len(data_config.image_size) == 3 else augment
    # When an epoch fills whole batches, say so in the element spec: the batch size is
    # then static in the training graph (InstanceNormalization's fused form needs it)
    # and drop_remainder drops nothing. Otherwise the last batch of each epoch is smaller.
    full_batches = count >= 0 and (count * repeats) % data_config.batch_size == 0

    def example(index, pair, key):
        image, mask = pair
        pair_seed = _derived_seeds(key, index)
        if patch_size is not None:
            patch_seed = tf.random.experimental.stateless_fold_in(pair_seed, 1)
            image, mask = random_patch(image, mask, patch_seed, patch_size,
                                       data_config.patch_foreground_prob)
        return augment_fn(image, mask, pair_seed, augment_config)

    def one_epoch(epoch):
        shuffle_seed, example_key = tf.unstack(_derived_seeds(seed, epoch))
        # This function's graph forgets TensorFlow's global seed: the shuffle's seed
        # pair is then (a constant, shuffle_seed), a function of (seed, epoch) alone.
        # With the global seed kept, a global seed of 0 (`train.seed: 0`) made
        # tf.random.get_seed compare the seed tensor with 0 in Python and fail
        # ("Using a symbolic tf.Tensor as a Python bool").
        tf.compat.v1.get_default_graph().seed = None
        examples = dataset
        if repeats > 1:
            examples = examples.flat_map(
                lambda image, mask: tf.data.Dataset.from_tensors((image, mask)).repeat(repeats))
        examples = examples.shuffle(data_config.shuffle_buffer, seed=shuffle_seed)
        return examples.enumerate().map(
            lambda index, pair: example(index, pair, example_key),
            num_parallel_calls=tf.data.AUTOTUNE).batch(data_config.batch_size,
                                                       drop_remainder=full_batches)

    stream = tf.data.Dataset.range(start_epoch, epochs).flat_map(one_epoch)
    if count >= 0:  # flat_map forgets the size; the schedule and Keras need it
        per_epoch = -(-count * repeats // data_config.batch_size)
        stream = stream.apply(tf.data.experimental.assert_cardinality(
            (epochs - start_epoch) * per_epoch))
    return stream


def _derived_seeds(key, index) -> tf.Tensor:
    """Two int64 seeds, a pure function of ``(key, index)`` (stateless, full range)."""
    return tf.random.stateless_uniform(
        [2], seed=tf.stack([tf.cast(key, tf.int64), tf.cast(index, tf.int64)]),
        minval=None, maxval=None, dtype=tf.int64)


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
