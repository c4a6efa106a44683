"""The input pipeline: preprocessing, batches from the real archive, evaluation cases."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from segtie.data import pipeline, preprocess
from segtie.data.sources import load_split

# --- preprocess_image / preprocess_mask ---------------------------------------------


def test_preprocess_image_shapes_dtype_and_range():
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    out = preprocess.preprocess_image(image, [16, 24])
    assert out.shape == (16, 24, 3) and out.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 1.0
    batch = preprocess.preprocess_image(np.stack([image, image]), [16, 24])
    assert batch.shape == (2, 16, 24, 3)
    np.testing.assert_allclose(batch[1].numpy(), out.numpy(), atol=1e-6)


def test_preprocess_image_scales_by_255_and_keeps_same_size_images():
    for value in (0, 77, 255):
        out = preprocess.preprocess_image(np.full((40, 30, 3), value, np.uint8), [8, 8])
        np.testing.assert_allclose(out.numpy(), value / 255.0, atol=1e-6)
    image = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    np.testing.assert_allclose(preprocess.preprocess_image(image, [8, 8]).numpy(),
                               image / 255.0, atol=1e-5)


def test_preprocess_image_rejects_bad_input():
    with pytest.raises(TypeError, match="uint8.*float32"):
        preprocess.preprocess_image(np.zeros((8, 8, 3), np.float32), [4, 4])
    with pytest.raises(ValueError, match=r"\(height, width, 3\).*\(8, 8\)"):
        preprocess.preprocess_image(np.zeros((8, 8), np.uint8), [4, 4])
    with pytest.raises(ValueError, match=r"image_size.*\[4\]"):
        preprocess.preprocess_image(np.zeros((8, 8, 3), np.uint8), [4])


def test_preprocess_mask_stays_binary():
    mask = np.zeros((40, 60, 1), np.uint8)
    mask[8:28, 6:45] = 1  # aligned with the 4x3 blocks of the downscale
    out = preprocess.preprocess_mask(mask, [10, 20]).numpy()
    assert out.shape == (10, 20, 1) and out.dtype == np.float32
    expected = np.zeros((10, 20, 1), np.float32)
    expected[2:7, 2:15] = 1
    np.testing.assert_array_equal(out, expected)
    odd = preprocess.preprocess_mask(mask, [13, 17]).numpy()
    assert set(np.unique(odd)) == {0.0, 1.0}


# --- build_dataset on the real archive ----------------------------------------------

@pytest.fixture(scope="module")
def small_config(kvasir_data_config):
    return dataclasses.replace(kvasir_data_config, image_size=[32, 48], batch_size=4,
                               max_train_cases=10, max_eval_cases=6, shuffle_buffer=10)


def collect(dataset):
    return [(image.numpy(), mask.numpy()) for image, mask in dataset]


def test_training_batches_shapes_dtypes_and_values(small_config):
    batches = collect(pipeline.build_dataset(small_config, "train", training=True, seed=3))
    assert [image.shape[0] for image, _ in batches] == [4, 4, 2]  # partial batch kept
    for image, mask in batches:
        assert image.shape[1:] == (32, 48, 3) and image.dtype == np.float32
        assert mask.shape[1:] == (32, 48, 1) and mask.dtype == np.float32
        assert image.min() >= 0.0 and image.max() <= 1.0 and image.max() > 0.5
        assert set(np.unique(mask)) <= {0.0, 1.0}
    assert np.concatenate([m for _, m in batches]).mean() > 0.01


def test_training_is_deterministic_for_a_seed(small_config):
    first = collect(pipeline.build_dataset(small_config, "train", training=True, seed=3))
    again = collect(pipeline.build_dataset(small_config, "train", training=True, seed=3))
    other = collect(pipeline.build_dataset(small_config, "train", training=True, seed=4))
    for (a, m), (b, n) in zip(first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(m, n)
    assert any(not np.array_equal(a, b) for (a, _), (b, _) in zip(first, other))


def test_epochs_differ_but_hold_the_same_cases(small_config):
    dataset = pipeline.build_dataset(small_config, "train", training=True, seed=3, epochs=2)
    batches = collect(dataset)
    assert int(dataset.cardinality()) == len(batches) == 6  # 2 epochs x [4, 4, 2]
    images_1 = np.concatenate([i for i, _ in batches[:3]])
    images_2 = np.concatenate([i for i, _ in batches[3:]])
    assert not np.array_equal(images_1, images_2)  # reshuffled / re-augmented
    # Flips and quarter turns permute pixels: per-image sums identify the cases.
    assert np.allclose(sorted(images_1.sum((1, 2, 3))), sorted(images_2.sum((1, 2, 3))),
                       rtol=1e-5)


def test_an_epoch_depends_on_the_seed_and_its_number_only(small_config):
    """A resumed training's stream (from epoch 2) is the uninterrupted one's tail."""
    full = pipeline.build_dataset(small_config, "train", training=True, seed=3, epochs=3)
    tail = pipeline.build_dataset(small_config, "train", training=True, seed=3, epochs=3,
                                  start_epoch=2)
    first, again = collect(full), collect(full)  # iterating twice: the same stream
    resumed = collect(tail)
    assert [i.shape[0] for i, _ in resumed] == [4, 4, 2]
    for (a, m), (b, n) in zip(first[6:], resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(m, n)
    for (a, m), (b, n) in zip(first, again):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(m, n)
    with pytest.raises(ValueError, match=r"start_epoch.*0 \.\. epochs - 1 = 2.*received "
                                         r"start_epoch=3"):
        pipeline.build_dataset(small_config, "train", training=True, epochs=3, start_epoch=3)


@pytest.mark.parametrize("global_seed", [0, 1234])
def test_the_stream_ignores_tensorflows_global_seed(small_config, global_seed):
    """A global seed of 0 once broke the pipeline; no global seed changes the stream."""
    tf.random.set_seed(7)
    reference = collect(pipeline.build_dataset(small_config, "train", training=True, seed=3))
    tf.random.set_seed(global_seed)
    batches = collect(pipeline.build_dataset(small_config, "train", training=True, seed=3))
    assert len(batches) == len(reference) == 3
    for (a, m), (b, n) in zip(batches, reference):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(m, n)


def test_eval_batches_follow_the_split_order(small_config):
    no_cache = dataclasses.replace(small_config, cache=False)
    batches = collect(pipeline.build_dataset(no_cache, "validation", training=False))
    assert [image.shape[0] for image, _ in batches] == [4, 2]
    raw = list(load_split(small_config, "validation").take(6))
    expected = np.stack([preprocess.preprocess_image(c["image"], [32, 48]).numpy()
                         for c in raw])
    np.testing.assert_allclose(np.concatenate([i for i, _ in batches]), expected, atol=1e-6)
    expected_masks = np.stack([preprocess.preprocess_mask(c["mask"], [32, 48]).numpy()
                               for c in raw])
    np.testing.assert_array_equal(np.concatenate([m for _, m in batches]), expected_masks)


def test_build_eval_dataset_gives_original_sizes(small_config):
    cases = list(pipeline.build_eval_dataset(small_config, "test").as_numpy_iterator())
    assert len(cases) == 6
    for case in cases:
        image, mask = case["image"], case["mask"]
        assert isinstance(case["id"], bytes) and len(case["id"]) > 0
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
        assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
        assert set(np.unique(mask)) <= {0, 1}
    assert len({case["image"].shape for case in cases}) > 1  # sizes vary, not resized


def test_unknown_split_is_rejected(small_config):
    with pytest.raises(ValueError, match=r"`split` must be one of.*'valid'"):
        pipeline.build_dataset(small_config, "valid", training=False)


def test_patch_epochs_keep_a_known_size(tmp_path):
    """Repeating images for patches keeps the cardinality the LR schedule needs."""
    from PIL import Image

    from segtie.config import DataConfig

    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    for i in range(10):  # split 8 / 1 / 1
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
            tmp_path / "images" / f"c{i}.png")
        Image.fromarray((rng.random((16, 16)) > 0.7).astype(np.uint8) * 255).save(
            tmp_path / "masks" / f"c{i}.png")
    config = DataConfig(name="folder", folder=str(tmp_path), image_size=[16, 16],
                        patch_size=[8, 8], patches_per_image=3, batch_size=5)
    dataset = pipeline.build_dataset(config, "train", training=True)
    assert int(dataset.cardinality()) == 5  # ceil(8 images x 3 patches / 5)
    assert sum(int(x.shape[0]) for x, _ in dataset) == 24


def test_full_batches_are_static_and_a_partial_one_is_kept(small_config):
    """10 cases in batches of 5 fill every batch: the batch size is in the element spec
    and all 10 cases come out; in batches of 4 the last batch (2) is kept, unknown size."""
    full = dataclasses.replace(small_config, batch_size=5)
    dataset = pipeline.build_dataset(full, "train", training=True, seed=3, epochs=2)
    assert dataset.element_spec[0].shape.as_list() == [5, 32, 48, 3]
    batches = collect(dataset)
    assert [image.shape[0] for image, _ in batches] == [5, 5, 5, 5]
    assert int(dataset.cardinality()) == 4
    partial = pipeline.build_dataset(small_config, "train", training=True, seed=3)
    assert partial.element_spec[0].shape.as_list() == [None, 32, 48, 3]
