"""The Hippocampus builder: the real archive and its planted flaws, a crafted bad archive."""

import gzip
import zipfile

import nibabel as nib
import numpy as np
import pytest

from segtie.data.nifti import read_nifti_bytes, zscore
from segtie.data.sources import hippocampus, load_split
from segtie.data.sources.archive import MANUAL_DIR_ENV

# The published archive's three planted anomalies (../shared/data/README.md).
REAL_PROBLEMS = [
    "'TrainingSet/labels/hippocampus_010.nii.gz': a label without an image",
    "'TrainingSet/images/hippocampus_118.nii.gz': an image without a label",
    "'TrainingSet/labels/hippocampus_281.nii.gz': a label without an image",
]
# seed 2020 over the 260 valid ids, read off once and pinned for good
TEST_IDS_HEAD = ["hippocampus_040", "hippocampus_044", "hippocampus_060", "hippocampus_065"]
VALIDATION_IDS_HEAD = ["hippocampus_011", "hippocampus_019", "hippocampus_023"]


@pytest.fixture(autouse=True)
def no_manual_dir_env(monkeypatch):
    monkeypatch.delenv(MANUAL_DIR_ENV, raising=False)


@pytest.fixture(scope="module")
def builder(hippocampus_tfds_dir):
    return hippocampus.Hippocampus(data_dir=str(hippocampus_tfds_dir), config="skip_invalid")


def test_real_archive_is_refused_by_default_with_every_problem(hippocampus_archive, tmp_path):
    with pytest.raises(ValueError) as caught:
        hippocampus.prepare_hippocampus(tmp_path, hippocampus_archive.parent)
    message = str(caught.value)
    lines = [line.strip() for line in message.splitlines() if line.startswith("  ")]
    assert [line.split(" (no ")[0] for line in lines] == REAL_PROBLEMS
    assert "3 case(s) cannot be used" in message
    assert "`data.skip_invalid: true` to build from the 260 valid pairs" in message


def test_real_archive_with_skip_invalid_builds_208_26_26_and_records_the_skipped(builder):
    splits = {name: builder.info.splits[name].num_examples for name in builder.info.splits}
    assert splits == {"train": 208, "validation": 26, "test": 26}
    meta = builder.info.metadata
    assert meta["num_skipped"] == 3 and meta["num_pairs"] == 260
    assert meta["skipped"] == ["hippocampus_010", "hippocampus_118", "hippocampus_281"]
    assert [p.split(" (no ")[0] for p in meta["problems"]] == REAL_PROBLEMS


def test_split_is_pinned_and_disjoint(hippocampus_data_config):
    ids = {split: sorted(e["id"].decode() for e in load_split(
        hippocampus_data_config, split).as_numpy_iterator())
        for split in ("train", "validation", "test")}
    assert ids["test"][:4] == TEST_IDS_HEAD
    assert ids["validation"][:3] == VALIDATION_IDS_HEAD
    everything = set().union(*ids.values())
    assert len(everything) == 260 and sum(map(len, ids.values())) == 260
    assert {"hippocampus_010", "hippocampus_118", "hippocampus_281"}.isdisjoint(everything)


def test_a_case_equals_its_files_read_by_nibabel(hippocampus_data_config, hippocampus_archive):
    case = next(c for c in load_split(hippocampus_data_config, "test").as_numpy_iterator()
                if c["id"] == b"hippocampus_040")
    name = case["id"].decode()
    with zipfile.ZipFile(hippocampus_archive) as archive:
        image = nib.Nifti1Image.from_bytes(gzip.decompress(
            archive.read(f"TrainingSet/images/{name}.nii.gz")))
        label = nib.Nifti1Image.from_bytes(gzip.decompress(
            archive.read(f"TrainingSet/labels/{name}.nii.gz")))
    raw = np.asarray(image.dataobj, np.float64)
    assert case["image"].shape == raw.shape + (1,) and case["image"].dtype == np.float32
    expected = (raw - raw.mean()) / raw.std()  # the documented z-score, by hand
    np.testing.assert_allclose(case["image"][..., 0], expected, rtol=1e-5, atol=1e-5)
    assert abs(float(case["image"].mean())) < 1e-5 and abs(float(case["image"].std()) - 1) < 1e-5
    np.testing.assert_array_equal(case["mask"][..., 0], np.asarray(label.dataobj))
    assert set(np.unique(case["mask"])) == {0, 1, 2}
    np.testing.assert_array_equal(case["spacing"], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(case["affine"], image.affine)
    assert case["orientation"].decode() == "RAS"


def test_zscore_of_a_constant_volume_is_zero_and_nan_is_refused():
    np.testing.assert_array_equal(zscore(np.full((2, 3, 4), 7, np.uint8)), np.zeros((2, 3, 4)))
    np.testing.assert_allclose(zscore(np.array([1.0, 3.0])), [-1.0, 1.0])
    with pytest.raises(ValueError, match="1 NaN or infinite voxels"):
        zscore(np.array([1.0, np.nan]))


def _nifti(data, affine=None, spacing=(1.0, 1.0, 1.0)) -> bytes:
    affine = np.diag([*spacing, 1.0]) if affine is None else affine
    return gzip.compress(nib.Nifti1Image(data, affine).to_bytes())


def _crafted_archive(path):
    """3 good pairs and one case of every problem the builder must name."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 200, (8, 9, 7)).astype(np.uint8)
    label = (image > 100).astype(np.uint8) + (image > 150)
    members = {}
    for i in range(3):
        members[f"images/case_{i}.nii.gz"] = _nifti(image + i)
        members[f"labels/case_{i}.nii.gz"] = _nifti(label)
    members["images/only_image.nii.gz"] = _nifti(image)
    members["labels/only_label.nii.gz"] = _nifti(label)
    members["images/bad_shape.nii.gz"] = _nifti(image)
    members["labels/bad_shape.nii.gz"] = _nifti(label[:, :, :-1])
    members["images/bad_affine.nii.gz"] = _nifti(image)
    members["labels/bad_affine.nii.gz"] = _nifti(label, spacing=(1.0, 1.0, 2.0))
    bad_values = label.copy()
    bad_values[0, 0, 0] = 3
    members["images/bad_values.nii.gz"] = _nifti(image)
    members["labels/bad_values.nii.gz"] = _nifti(bad_values)
    members["images/not_nifti.nii.gz"] = _nifti(image)
    members["labels/not_nifti.nii.gz"] = gzip.compress(b"not a nifti file" * 30)
    with zipfile.ZipFile(path / hippocampus.ARCHIVE_NAME, "w") as archive:
        for name, data in members.items():
            archive.writestr(f"TrainingSet/{name}", data)
    return image, label


EXPECTED_PROBLEMS = [  # sorted by case id, each naming its member
    "'TrainingSet/labels/bad_affine.nii.gz' has affine",
    "'TrainingSet/labels/bad_shape.nii.gz' has shape (8, 9, 6), expected its image "
    "'TrainingSet/images/bad_shape.nii.gz''s (8, 9, 7)",
    "'TrainingSet/labels/bad_values.nii.gz' holds values [0, 1, 2, 3], expected class "
    "indices in [0, 1, 2]",
    "Cannot read 'TrainingSet/labels/not_nifti.nii.gz' as NIfTI",
    "'TrainingSet/images/only_image.nii.gz': an image without a label",
    "'TrainingSet/labels/only_label.nii.gz': a label without an image",
]


def test_crafted_archive_names_every_bad_file_and_refuses(tmp_path):
    _crafted_archive(tmp_path)
    with pytest.raises(ValueError) as caught:
        hippocampus.prepare_hippocampus(tmp_path / "tfds", tmp_path)
    lines = [line.strip() for line in str(caught.value).splitlines() if line.startswith("  ")]
    assert len(lines) == len(EXPECTED_PROBLEMS)
    for line, start in zip(lines, EXPECTED_PROBLEMS):
        assert line.startswith(start), (line, start)
    assert "build from the 3 valid pairs" in str(caught.value)


def test_crafted_archive_with_skip_invalid_builds_the_valid_pairs(tmp_path):
    image, label = _crafted_archive(tmp_path)
    built = hippocampus.prepare_hippocampus(tmp_path / "tfds", tmp_path, skip_invalid=True)
    assert built.info.metadata["num_skipped"] == 6
    assert built.info.metadata["skipped"] == ["bad_affine", "bad_shape", "bad_values",
                                              "not_nifti", "only_image", "only_label"]
    cases = [c for split in ("train", "validation", "test")
             for c in built.as_dataset(split=split).as_numpy_iterator()]
    assert sorted(c["id"].decode() for c in cases) == ["case_0", "case_1", "case_2"]
    for case in cases:
        i = int(case["id"].decode()[-1])
        np.testing.assert_allclose(case["image"][..., 0], zscore(image + i), atol=1e-6)
        np.testing.assert_array_equal(case["mask"][..., 0], label)
    # The metadata survives a fresh builder reading the folder back.
    again = hippocampus.Hippocampus(data_dir=str(tmp_path / "tfds"), config="skip_invalid")
    assert again.info.metadata["num_skipped"] == 6


def test_read_nifti_bytes_reads_spacing_and_refuses_4d():
    volume = read_nifti_bytes(_nifti(np.zeros((2, 3, 4), np.uint8), spacing=(0.5, 0.7, 3.0)),
                              "x.nii.gz")
    np.testing.assert_allclose(volume.spacing, (0.5, 0.7, 3.0))
    assert volume.orientation == "RAS" and volume.data.shape == (2, 3, 4)
    with pytest.raises(ValueError, match=r"'y.nii.gz' must be a 3-D volume, received shape"):
        read_nifti_bytes(_nifti(np.zeros((2, 3, 4, 2), np.uint8)), "y.nii.gz")


def test_missing_archive_lists_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match=hippocampus.ARCHIVE_NAME):
        hippocampus.prepare_hippocampus(tmp_path / "tfds", tmp_path / "nowhere")


def test_the_recipe_builds_the_3d_model_its_header_states():
    from segtie import config as cfg
    from segtie.nn import build_model, check_model, parameter_count, unet_arguments

    config = cfg.load_config("hippocampus")
    check_model(config.model)
    assert config.model.spatial_dims == 3 and config.data.skip_invalid
    assert config.eval.window_size == config.data.patch_size == [32, 32, 32]
    model = build_model(config.model)
    # by hand, widths 16/32/64, 27 weights per 3x3x3 channel pair, 2 instance norms
    # (2F each) a block: encoder 7,440 + 41,664 + 166,272, decoder (up-convolution
    # 2x2x2 and block) 16,416 + 83,136 and 4,112 + 20,832, head 51
    assert model.count_params() == parameter_count(**unet_arguments(config.model)) == 339_923
