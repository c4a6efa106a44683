"""The Kvasir-SEG builder: the real archive, small synthetic archives, missing archive."""

import io
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from segtie.config import DataConfig
from segtie.data.sources import kvasir_seg, load_split
from segtie.data.sources.kvasir_seg import (ARCHIVE_NAME, MANUAL_DIR_ENV, URL, KvasirSeg,
                                        prepare_kvasir_seg, split_ids)

# Read off the real archive once (seed 2020); they pin the split for good.
TEST_IDS_IN_SPLIT_ORDER = ["cju885ikhnmkn09878s2lqtuh", "cju422cm8lfxn0818ojicxejb",
                           "cju7d2q1k27nf08715zshsckt"]
FIRST_SORTED_TEST_IDS = ["cju15wdt3zla10801odjiw7sy", "cju17v6ih0u7808783zcbg1jy",
                         "cju18kevfrojc0835bn90f1in", "cju1euant5l960878iqj5vvto",
                         "cju1ewnoh5z030855vpex9uzt"]
VALIDATION_IDS_IN_SPLIT_ORDER = ["cju8ando2qqdo0818ck7i1be1", "cju42dwedlmk60871jbgu4ehi",
                                 "cju84aoa3ktwn0755pfl4gfwd"]
KNOWN_CASE = "cju15wdt3zla10801odjiw7sy"  # test split
KNOWN_CASE_FOREGROUND = 0.16356  # read off once, mean-of-channels > 127


@pytest.fixture(autouse=True)
def no_manual_dir_env(monkeypatch):
    monkeypatch.delenv(MANUAL_DIR_ENV, raising=False)


def _jpeg(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=75)
    return buffer.getvalue()


def write_archive(path, num_cases, size=(12, 16), odd=None):
    """A zip laid out as Kvasir-SEG; ``odd`` = {case index: "bad_size"|"corrupt"|"no_mask"}."""
    odd = odd or {}
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("Kvasir-SEG/kavsir_bboxes.json", "{}")
        for i in range(num_cases):
            case_id = f"case{i:03d}"
            height, width = size
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            mask = np.zeros((height, width, 3), np.uint8)
            mask[2:height - 2, 3:3 + i % (width - 4)] = 255
            if odd.get(i) == "bad_size":
                mask = np.zeros((height + 1, width, 3), np.uint8)
            image_bytes = b"not a jpeg" if odd.get(i) == "corrupt" else _jpeg(image)
            archive.writestr(f"Kvasir-SEG/images/{case_id}.jpg", image_bytes)
            if odd.get(i) != "no_mask":
                archive.writestr(f"Kvasir-SEG/masks/{case_id}.jpg", _jpeg(mask))


def ids_of(builder, split):
    skip = {"image": tfds.decode.SkipDecoding(), "mask": tfds.decode.SkipDecoding()}
    ds = builder.as_dataset(split=split, decoders=skip)
    return [case["id"].decode() for case in ds.as_numpy_iterator()]


# --- the split rule, on ids alone ---------------------------------------------------

def test_split_ids_is_80_10_10_seeded_and_order_free():
    ids = [f"id{i:04d}" for i in range(1000)]
    split = split_ids(ids)
    assert [len(split[s]) for s in ("train", "validation", "test")] == [800, 100, 100]
    assert sorted(sum(split.values(), [])) == ids
    assert split_ids(list(reversed(ids))) == split
    assert split_ids(ids, seed=1) != split


@pytest.mark.parametrize("count, sizes", [(37, (29, 4, 4)), (3, (1, 1, 1)), (14, (12, 1, 1))])
def test_split_ids_other_counts_are_proportional(count, sizes):
    split = split_ids([str(i) for i in range(count)])
    assert tuple(len(split[s]) for s in ("train", "validation", "test")) == sizes


def test_split_ids_rejects_too_few_and_duplicates():
    with pytest.raises(ValueError, match="at least 3 cases.*received 2"):
        split_ids(["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        split_ids(["a", "a", "b", "c"])


# --- the real archive ---------------------------------------------------------------

@pytest.fixture(scope="module")
def real_builder(kvasir_tfds_dir):
    return KvasirSeg(data_dir=str(kvasir_tfds_dir))


def test_real_archive_split_sizes_and_disjointness(real_builder):
    splits = real_builder.info.splits
    assert {name: splits[name].num_examples for name in splits} == {
        "train": 800, "validation": 100, "test": 100}
    ids = {split: ids_of(real_builder, split) for split in ("train", "validation", "test")}
    assert all(len(set(v)) == len(v) for v in ids.values())
    assert not set(ids["train"]) & set(ids["validation"])
    assert not set(ids["train"]) & set(ids["test"])
    assert not set(ids["validation"]) & set(ids["test"])
    assert sorted(ids["test"])[:5] == FIRST_SORTED_TEST_IDS
    assert set(TEST_IDS_IN_SPLIT_ORDER) <= set(ids["test"])
    assert set(VALIDATION_IDS_IN_SPLIT_ORDER) <= set(ids["validation"])


def test_real_archive_split_rule_is_pinned(kvasir_archive):
    with zipfile.ZipFile(kvasir_archive) as archive:
        ids = [n.split("/")[-1][:-4] for n in archive.namelist()
               if n.startswith("Kvasir-SEG/images/") and n.endswith(".jpg")]
    split = split_ids(ids)
    assert split["test"][:3] == TEST_IDS_IN_SPLIT_ORDER
    assert split["validation"][:3] == VALIDATION_IDS_IN_SPLIT_ORDER


def test_real_masks_are_binary_and_match_image_sizes(kvasir_data_config):
    for case in load_split(kvasir_data_config, "test").as_numpy_iterator():
        image, mask = case["image"], case["mask"]
        assert image.dtype == np.uint8 and mask.dtype == np.uint8
        assert image.ndim == 3 and image.shape[-1] == 3 and mask.shape[-1] == 1
        assert image.shape[:2] == mask.shape[:2]
        assert set(np.unique(mask)) <= {0, 1} and mask.any()


def test_known_case_matches_the_zip(real_builder, kvasir_archive):
    with zipfile.ZipFile(kvasir_archive) as archive:
        image_bytes = archive.read(f"Kvasir-SEG/images/{KNOWN_CASE}.jpg")
        mask_bytes = archive.read(f"Kvasir-SEG/masks/{KNOWN_CASE}.jpg")
    raw = real_builder.as_dataset(split="test", decoders={"image": tfds.decode.SkipDecoding()})
    (case,) = [c for c in raw.as_numpy_iterator() if c["id"].decode() == KNOWN_CASE]
    assert case["image"] == image_bytes  # the original JPEG, not re-encoded
    stored = case["mask"][..., 0]
    pil_mask = np.asarray(Image.open(io.BytesIO(mask_bytes)).convert("RGB"))
    np.testing.assert_array_equal(stored, pil_mask.mean(-1) > 127)
    assert stored.mean() == pytest.approx(KNOWN_CASE_FOREGROUND, abs=1e-5)
    # Another decoder (TensorFlow's) and another rule (first channel) agree closely.
    tf_mask = tf.io.decode_jpeg(mask_bytes, channels=3).numpy()
    assert abs((tf_mask[..., 0] > 127).mean() - stored.mean()) < 2e-3


# --- synthetic archives -------------------------------------------------------------

def test_synthetic_archive_builds_with_proportional_split(tmp_path):
    write_archive(tmp_path / ARCHIVE_NAME, 14, size=(12, 16))
    builder = prepare_kvasir_seg(tmp_path / "tfds", tmp_path)
    assert {s: builder.info.splits[s].num_examples for s in builder.info.splits} == {
        "train": 12, "validation": 1, "test": 1}
    for case in builder.as_dataset(split="train").as_numpy_iterator():
        index = int(case["id"].decode()[4:])
        expected = np.zeros((12, 16), np.uint8)
        expected[2:10, 3:3 + index % 12] = 1
        assert case["image"].shape == (12, 16, 3)
        # JPEG noise around the edges of the rectangle is thresholded away.
        np.testing.assert_array_equal(case["mask"][..., 0], expected)


def test_env_var_comes_first(tmp_path, monkeypatch):
    write_archive(tmp_path / ARCHIVE_NAME, 5)
    monkeypatch.setenv(MANUAL_DIR_ENV, str(tmp_path))
    builder = prepare_kvasir_seg(tmp_path / "tfds", tmp_path / "nonexistent")
    assert builder.info.splits["train"].num_examples == 3


@pytest.mark.parametrize("odd, message", [
    ({3: "bad_size"}, r"sizes differ for case 'case003'.*'Kvasir-SEG/images/case003.jpg' "
                      r"is 16x12.*'Kvasir-SEG/masks/case003.jpg' is 16x13"),
    ({4: "corrupt"}, r"Cannot decode 'Kvasir-SEG/images/case004.jpg'"),
    ({2: "no_mask"}, r"no partner, e.g. 'Kvasir-SEG/images/case002.jpg'"),
])
def test_bad_archives_name_the_member(tmp_path, odd, message):
    write_archive(tmp_path / ARCHIVE_NAME, 6, odd=odd)
    with pytest.raises(ValueError, match=message):
        prepare_kvasir_seg(tmp_path / "tfds", tmp_path)


# --- missing archive ----------------------------------------------------------------

def test_missing_archive_is_a_clear_error_and_recoverable(tmp_path, monkeypatch):
    monkeypatch.setattr(kvasir_seg, "_network_reachable", lambda url: False)
    monkeypatch.setenv(MANUAL_DIR_ENV, str(tmp_path / "env"))
    manual = tmp_path / "manual"
    config = DataConfig(data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))
    with pytest.raises(FileNotFoundError) as info:
        load_split(config, "train")
    message = str(info.value)
    assert ARCHIVE_NAME in message and URL in message and MANUAL_DIR_ENV in message
    assert str(tmp_path / "env" / ARCHIVE_NAME) in message
    assert str(manual / ARCHIVE_NAME) in message
    # The failed attempt leaves nothing behind that blocks a later build.
    manual.mkdir()
    write_archive(manual / ARCHIVE_NAME, 4)
    assert len(list(load_split(config, "validation"))) == 1


def test_failed_download_is_reported(tmp_path, monkeypatch):
    def refuse(self, url):
        raise OSError(f"no route to {url}")

    monkeypatch.setattr(kvasir_seg, "_network_reachable", lambda url: True)
    monkeypatch.setattr(tfds.download.DownloadManager, "download", refuse)
    with pytest.raises(FileNotFoundError, match="no route to https://datasets.simula.no"):
        prepare_kvasir_seg(tmp_path / "tfds", tmp_path / "manual")


def test_probe_fails_fast_without_network():
    assert kvasir_seg._network_reachable("https://segtie.invalid/x.zip", timeout=5) is False
