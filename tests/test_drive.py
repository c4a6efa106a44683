"""The DRIVE builder: the real archive, the split, the pipeline, malformed archives."""

import dataclasses
import io
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from segtie.data import pipeline
from segtie.config import DataConfig
from segtie.data.sources import drive, load_split
from segtie.data.sources.drive import ARCHIVE_NAME, HOMEPAGE, Drive, drive_split_ids
from segtie.data.sources.kvasir_seg import MANUAL_DIR_ENV

VALIDATION_IDS = ["26", "36", "38", "40"]  # seed 2004, pinned for good
TRAIN_IDS = sorted(set(f"{i}" for i in range(21, 41)) - set(VALIDATION_IDS))
TEST_IDS = [f"{i:02d}" for i in range(1, 21)]
KNOWN_CASE, KNOWN_VESSELS = "01", 29440  # first observer, read off once
SIZE = (584, 565)


@pytest.fixture(autouse=True)
def no_manual_dir_env(monkeypatch):
    monkeypatch.delenv(MANUAL_DIR_ENV, raising=False)


@pytest.fixture(scope="module")
def builder(drive_tfds_dir):
    return Drive(data_dir=str(drive_tfds_dir))


@pytest.fixture(scope="module")
def cases(drive_data_config):
    """Every decoded case of every split, by split."""
    return {split: list(load_split(drive_data_config, split).as_numpy_iterator())
            for split in ("train", "validation", "test")}


def test_split_rule():
    split = drive_split_ids([str(i) for i in range(40, 20, -1)], TEST_IDS[::-1])
    assert split == {"train": TRAIN_IDS, "validation": VALIDATION_IDS, "test": TEST_IDS}
    with pytest.raises(ValueError, match="more than 4 training cases"):
        drive_split_ids(["21", "22", "23", "24"], ["01"])


def test_real_split_sizes_and_ids(builder, cases):
    assert {s: builder.info.splits[s].num_examples for s in builder.info.splits} == {
        "train": 16, "validation": 4, "test": 20}
    ids = {split: sorted(c["id"].decode() for c in found) for split, found in cases.items()}
    assert ids == {"train": TRAIN_IDS, "validation": VALIDATION_IDS, "test": TEST_IDS}


def test_real_values_are_binary_and_sizes_match(cases):
    for split, found in cases.items():
        for case in found:
            assert case["image"].shape == (*SIZE, 3) and case["image"].dtype == np.uint8
            for key in ("mask", "fov", "mask2"):
                assert case[key].shape == (*SIZE, 1) and case[key].dtype == np.uint8
                assert set(np.unique(case[key])) <= {0, 1}
            assert 0.6 < case["fov"].mean() < 0.75 and 0.05 < case["mask"].mean() < 0.16
            # Vessels lie inside the field of view (a few boundary pixels aside).
            assert (case["mask"] & (1 - case["fov"])).sum() < 0.01 * case["mask"].sum()
            assert case["has_mask2"] == (split == "test")
            if split == "test":
                assert 0.05 < case["mask2"].mean() < 0.16
            else:
                assert not case["mask2"].any()


def test_known_case_matches_the_zip(cases, drive_archive):
    (case,) = [c for c in cases["test"] if c["id"].decode() == KNOWN_CASE]
    with zipfile.ZipFile(drive_archive) as archive:
        def read(member):
            return np.asarray(Image.open(io.BytesIO(archive.read(member))))
        image = read(f"DRIVE/test/images/{KNOWN_CASE}_test.tif")
        vessels = read(f"DRIVE/test/1st_manual/{KNOWN_CASE}_manual1.gif") > 0
        second = read(f"DRIVE/test/2nd_manual/{KNOWN_CASE}_manual2.gif") > 0  # palette
        fov = read(f"DRIVE/test/mask/{KNOWN_CASE}_test_mask.gif") > 0
    np.testing.assert_array_equal(case["image"], image)  # lossless, via PNG
    np.testing.assert_array_equal(case["mask"][..., 0], vessels)
    np.testing.assert_array_equal(case["mask2"][..., 0], second)
    np.testing.assert_array_equal(case["fov"][..., 0], fov)
    assert case["mask"].sum() == KNOWN_VESSELS
    assert case["mask"].mean() == pytest.approx(KNOWN_VESSELS / (SIZE[0] * SIZE[1]))


def test_pipeline_eval_cases_and_patches(drive_data_config):
    eval_cases = list(pipeline.build_eval_dataset(drive_data_config, "validation")
                      .as_numpy_iterator())
    assert len(eval_cases) == 4
    for case in eval_cases:
        assert case["mask"].shape == case["fov"].shape == case["mask2"].shape == SIZE
        assert case["image"].shape == (*SIZE, 3) and not case["has_mask2"]
    config = dataclasses.replace(drive_data_config, image_size=[288, 280],
                                 patch_size=[32, 40], patches_per_image=6, batch_size=16,
                                 max_train_cases=4, shuffle_buffer=24)
    batches = list(pipeline.build_dataset(config, "train", training=True, seed=1))
    assert [image.shape[0] for image, _ in batches] == [16, 8]  # 4 images x 6 patches
    for image, mask in batches:
        assert image.shape[1:] == (32, 40, 3) and mask.shape[1:] == (32, 40, 1)
    ((image, mask),) = list(pipeline.build_dataset(config, "validation", training=False))
    assert image.shape == (4, 288, 280, 3)  # whole images for validation


# --- synthetic archives -------------------------------------------------------------

def _gif(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="GIF")
    return buffer.getvalue()


def write_archive(path, drop=None, bad_size=None):
    """A small zip laid out as DRIVE (6 training and 2 test cases of 10x8 pixels)."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as archive:
        for split, numbers in (("training", range(21, 27)), ("test", (1, 2))):
            for n in numbers:
                image = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)).save(
                    image, format="TIFF", compression="tiff_lzw")
                label = np.zeros((9 if n == bad_size else 8, 10), np.uint8)
                label[2:4, 1:n % 9] = 255
                members = {f"images/{n:02d}_{split}.tif": image.getvalue(),
                           f"1st_manual/{n:02d}_manual1.gif": _gif(label),
                           f"mask/{n:02d}_{split}_mask.gif": _gif(np.full((8, 10), 255,
                                                                          np.uint8))}
                if split == "test":
                    members[f"2nd_manual/{n:02d}_manual2.gif"] = _gif(label)
                for name, data in members.items():
                    if name != drop:
                        archive.writestr(f"DRIVE/{split}/{name}", data)


def test_synthetic_archive(tmp_path):
    write_archive(tmp_path / ARCHIVE_NAME)
    built = drive.prepare_drive(tmp_path / "tfds", tmp_path)
    assert {s: built.info.splits[s].num_examples for s in built.info.splits} == {
        "train": 2, "validation": 4, "test": 2}
    for case in built.as_dataset(split="test").as_numpy_iterator():
        n = int(case["id"])
        expected = np.zeros((8, 10), np.uint8)
        expected[2:4, 1:n] = 1
        np.testing.assert_array_equal(case["mask"][..., 0], expected)
        np.testing.assert_array_equal(case["mask2"], case["mask"])
        assert case["fov"].all() and case["has_mask2"]


@pytest.mark.parametrize("drop, bad_size, message", [
    ("mask/22_training_mask.gif", None, r"training case 22 has no fov"),
    (None, 2, r"Size of 'DRIVE/test/1st_manual/02_manual1.gif'.* is 10x9"),
])
def test_bad_archives_name_the_member(tmp_path, drop, bad_size, message):
    write_archive(tmp_path / ARCHIVE_NAME, drop=drop, bad_size=bad_size)
    with pytest.raises(ValueError, match=message):
        drive.prepare_drive(tmp_path / "tfds", tmp_path)


def test_missing_archive_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv(MANUAL_DIR_ENV, str(tmp_path / "env"))
    config = DataConfig(name="drive", data_dir=str(tmp_path / "tfds"),
                        manual_dir=str(tmp_path / "manual"))
    with pytest.raises(FileNotFoundError) as info:
        load_split(config, "train")
    message = str(info.value)
    assert HOMEPAGE in message and MANUAL_DIR_ENV in message and "register" in message
    assert str(tmp_path / "env" / ARCHIVE_NAME) in message
    assert str(tmp_path / "manual" / ARCHIVE_NAME) in message


def test_skip_decoding_keeps_png_bytes(builder):
    raw = builder.as_dataset(split="validation",
                             decoders={"image": tfds.decode.SkipDecoding()})
    first = next(iter(raw.take(1).as_numpy_iterator()))
    assert first["image"][:8] == b"\x89PNG\r\n\x1a\n"
