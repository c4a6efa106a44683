"""The NIfTI folder source: layouts, the label map, the header, every bad input."""

import gzip
import logging

import numpy as np
import pytest

from segtie.config import from_dict, implied_num_classes
from segtie.data import pipeline
from segtie.data.sources import dataset_facts, load_split
from segtie.data.sources.nifti_folder import match_volumes, validate_nifti_folder

from nifti_cases import (LABEL_MAP, RNG, SHAPE, VOLUME_MODEL, all_cases, classes_of, config,
                         save, volume)


@pytest.mark.parametrize("image_dir, label_dir", [
    ("images", "labels"), ("imagesTr", "labelsTr"), ("images", "masks")])
def test_layouts_and_the_nnunet_channel_suffix_pair_by_id(tmp_path, image_dir, label_dir):
    written = {}
    for i, (image_name, label_name) in enumerate([
            ("a.nii.gz", "a.nii.gz"), ("b_0000.nii.gz", "b.nii.gz"), ("c.nii", "c.nii.gz"),
            ("d_0000.nii", "d.nii"), ("e_1234.nii.gz", "e_1234.nii.gz")]):
        image = volume() + i
        save(tmp_path / image_dir / image_name, image)
        save(tmp_path / label_dir / label_name, classes_of(image))
        written[label_name.split(".")[0]] = image
    (tmp_path / image_dir / ".DS_Store").write_bytes(b"ignored")
    (tmp_path / image_dir / "__MACOSX").mkdir()
    (tmp_path / "dataset.json").write_text("{}")  # not read
    cases, problems = match_volumes(tmp_path)
    assert problems == []
    assert [c.case_id for c in cases] == ["a", "b", "c", "d", "e_1234"]
    assert cases[1].image.name == "b_0000.nii.gz" and cases[1].label.name == "b.nii.gz"
    got = all_cases(config(tmp_path))
    assert sorted(got) == sorted(written)
    for case_id, image in written.items():
        case = got[case_id]
        assert case["image"].dtype == np.float32 and case["image"].shape == SHAPE + (1,)
        raw = image.astype(np.float64)  # the per-volume z-score, by hand
        np.testing.assert_allclose(case["image"][..., 0], (raw - raw.mean()) / raw.std(),
                                   rtol=1e-5, atol=1e-5)
        assert case["mask"].dtype == np.uint8
        np.testing.assert_array_equal(case["mask"][..., 0], classes_of(image))


def test_label_map_maps_raw_values_to_classes(tmp_path):
    label = np.zeros((2, 2, 2), np.float32)  # float labels, as two real files have
    label[0, 0, 0], label[1, 1, 1], label[0, 1, 0] = 10, 20, 20
    for i in range(3):
        save(tmp_path / "images" / f"c{i}.nii.gz", RNG.random((2, 2, 2)).astype(np.float32))
        save(tmp_path / "labels" / f"c{i}.nii.gz", label)
    data = config(tmp_path, label_map={0: 0, 20: 1, 10: 2})
    expected = np.zeros((2, 2, 2), np.uint8)  # by hand: 10 -> 2, 20 -> 1
    expected[0, 0, 0], expected[1, 1, 1], expected[0, 1, 0] = 2, 1, 1
    for case in all_cases(data).values():
        np.testing.assert_array_equal(case["mask"][..., 0], expected)
    assert implied_num_classes(data) == 3
    # two classes: still softmax, one output per class (volumes take the argmax)
    two = config(tmp_path, label_map={0: 0, 10: 1, 20: 1})
    assert implied_num_classes(two) == 2
    (_, masks), = pipeline.build_dataset(two, "test", training=False).take(1)
    assert masks.dtype.name == "int32" and set(np.unique(masks)) == {0, 1}


def test_spacing_affine_and_orientation_come_from_the_header(tmp_path):
    affine = np.array([[-0.8, 0, 0, 90], [0, -0.8, 0, 126], [0, 0, 2.5, -72], [0, 0, 0, 1]])
    image = RNG.integers(0, 4000, SHAPE).astype(np.int16)
    for i in range(3):
        save(tmp_path / "imagesTr" / f"p{i}_0000.nii.gz", image + i, affine)
        save(tmp_path / "labelsTr" / f"p{i}.nii.gz", classes_of(image), affine)
    for case in all_cases(config(tmp_path)).values():
        np.testing.assert_allclose(case["spacing"], [0.8, 0.8, 2.5], rtol=1e-6)
        np.testing.assert_allclose(case["affine"], affine, rtol=1e-6)
        assert case["affine"].dtype == np.float32 and case["orientation"].decode() == "LPS"
        assert abs(float(case["image"].mean())) < 1e-5
        assert abs(float(case["image"].std()) - 1) < 1e-5


def write_bad_folder(root):
    """3 good pairs and one entry of every problem the source must name."""
    image = volume()
    label = classes_of(image)
    for i in range(3):
        save(root / "images" / f"case_{i}.nii.gz", image + i)
        save(root / "labels" / f"case_{i}.nii.gz", label)
    save(root / "images" / "only_image.nii.gz", image)
    save(root / "labels" / "only_label.nii.gz", label)
    save(root / "images" / "not_nifti.nii.gz", image)
    (root / "labels" / "not_nifti.nii.gz").write_bytes(gzip.compress(b"not a nifti" * 40))
    save(root / "images" / "four_d.nii.gz", np.stack([image, image], -1))
    save(root / "labels" / "four_d.nii.gz", label)
    save(root / "images" / "bad_shape.nii.gz", image)
    save(root / "labels" / "bad_shape.nii.gz", label[:, :, :-1])
    save(root / "images" / "bad_affine.nii.gz", image)
    save(root / "labels" / "bad_affine.nii.gz", label, np.diag([1.0, 1.0, 2.0, 1.0]))
    bad_values = label.copy()
    bad_values[0, 0, 0] = 3
    save(root / "images" / "bad_values.nii.gz", image)
    save(root / "labels" / "bad_values.nii.gz", bad_values)
    nan_image = image.copy()
    nan_image[1, 2, 3] = np.nan
    save(root / "images" / "nan_image.nii.gz", nan_image)
    save(root / "labels" / "nan_image.nii.gz", label)
    save(root / "images" / "two_channels_0000.nii.gz", image)
    save(root / "images" / "two_channels_0001.nii.gz", image)
    save(root / "labels" / "two_channels.nii.gz", label)
    save(root / "images" / "dup.nii", image)
    save(root / "images" / "dup.nii.gz", image)
    save(root / "labels" / "dup.nii.gz", label)
    (root / "images" / "notes.txt").write_text("not a volume")
    (root / "images" / "sub").mkdir()
    (root / "images" / ".DS_Store").write_bytes(b"ignored")
    (root / "labels" / "._case_0.nii.gz").write_bytes(b"AppleDouble, ignored")
    return image, label


EXPECTED_PROBLEMS = [  # sorted by what each leaves out, each naming its file
    "'labels/bad_affine.nii.gz' has affine",
    "'labels/bad_shape.nii.gz' has shape (8, 9, 6), expected its image "
    "'images/bad_shape.nii.gz''s (8, 9, 7)",
    "'labels/bad_values.nii.gz' holds values [0, 1, 2, 3], expected raw values of "
    "`data.label_map` in [0, 1, 2]",
    "'images/dup.nii.gz': a second file for case 'dup' (the first is 'images/dup.nii')",
    "'images/four_d.nii.gz' must be a 3-D volume, received shape (8, 9, 7, 2)",
    "'images/notes.txt': not a NIfTI file",
    "'images/sub': not a file",
    "'images/nan_image.nii.gz' holds 1 NaN or infinite voxels",
    "Cannot read 'labels/not_nifti.nii.gz' as NIfTI",
    "'images/only_image.nii.gz': an image without a label (no labels/only_image.nii.gz)",
    "'labels/only_label.nii.gz': a label without an image (no images/only_label.nii.gz",
    "'images/two_channels_0001.nii.gz': channel 0001 of case 'two_channels'; only "
    "single-channel volumes are read for now",
]


def test_every_bad_input_is_named_at_once_and_refused(tmp_path):
    write_bad_folder(tmp_path)
    with pytest.raises(ValueError) as caught:
        load_split(config(tmp_path), "train")
    message = str(caught.value)
    lines = [line.strip() for line in message.splitlines() if line.startswith("  ")]
    assert len(lines) == len(EXPECTED_PROBLEMS), lines
    for line, start in zip(lines, EXPECTED_PROBLEMS):
        assert line.startswith(start), (line, start)
    assert f"12 problem(s) in {tmp_path}" in message
    assert "`data.skip_invalid: true` to build from the 3 valid pairs" in message
    with pytest.raises(ValueError, match="12 problem"):
        dataset_facts(config(tmp_path))


def test_skip_invalid_builds_the_valid_pairs_and_counts_the_rest(tmp_path, caplog):
    image, label = write_bad_folder(tmp_path)
    data = config(tmp_path, skip_invalid=True)
    with caplog.at_level(logging.WARNING, "segtie.data.sources.nifti_folder"):
        cases = all_cases(data)
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Skipping")]
    assert len(skipped) == 12  # each once, though three splits were read
    assert [s.removeprefix("Skipping ")[:len(e)] for s, e in zip(skipped, EXPECTED_PROBLEMS)] \
        == EXPECTED_PROBLEMS
    assert sorted(cases) == ["case_0", "case_1", "case_2"]
    for case_id, case in cases.items():
        np.testing.assert_array_equal(case["mask"][..., 0], label)
    assert dataset_facts(data) == {"data.num_skipped": 12, "data.num_pairs": 3}
    report = validate_nifti_folder(tmp_path, LABEL_MAP)
    assert report.skipped == ["bad_affine", "bad_shape", "bad_values", "dup", "four_d",
                              "images/notes.txt", "images/sub", "nan_image", "not_nifti",
                              "only_image", "only_label", "two_channels"]


def test_a_changed_file_is_validated_again(tmp_path):
    image = volume()
    for i in range(3):
        save(tmp_path / "images" / f"c{i}.nii.gz", image)
        save(tmp_path / "labels" / f"c{i}.nii.gz", classes_of(image))
    assert validate_nifti_folder(tmp_path, LABEL_MAP).problems == []
    save(tmp_path / "labels" / "c1.nii.gz", np.full(SHAPE, 7, np.uint8))
    (problem,) = validate_nifti_folder(tmp_path, LABEL_MAP).problems
    assert problem.startswith("'labels/c1.nii.gz' holds values [7]")


@pytest.mark.parametrize("folders, message", [
    (["images"], r"must hold one label folder, `labels/` or `labelsTr/` or `masks/`; "
                 r".* holds none"),
    (["images", "imagesTr", "labels"], r"must hold one image folder, `images/` or "
                                       r"`imagesTr/`; .* holds images/, imagesTr/"),
])
def test_the_folder_needs_one_image_and_one_label_folder(tmp_path, folders, message):
    for name in folders:
        (tmp_path / name).mkdir()
    with pytest.raises(ValueError, match=message):
        load_split(config(tmp_path), "train")


@pytest.mark.parametrize("data, model, message", [
    ({"name": "nifti_folder", "folder": "x"}, VOLUME_MODEL,
     r"`data.label_map` is required for `data.name: nifti_folder`.*"
     r"`label_map: \{0: 0, 1: 1, 2: 2\}`, received null"),
    ({"name": "nifti_folder", "label_map": LABEL_MAP}, VOLUME_MODEL,
     r"`data.folder` must be set exactly when `data.name` is 'folder' or 'nifti_folder'"),
    ({"name": "nifti_folder", "folder": "x", "label_map": LABEL_MAP},
     {**VOLUME_MODEL, "in_channels": 3},
     r"`model.in_channels` must be 1 for `data.name` = 'nifti_folder' \(single-channel "
     r"volumes\), received 3"),
    ({"name": "nifti_folder", "folder": "x", "label_map": LABEL_MAP},
     {"in_channels": 1, "num_classes": 3}, r"`model.spatial_dims` must be 3"),
    ({"name": "nifti_folder", "folder": "x", "label_map": {0: 0, 255: 1}},
     {**VOLUME_MODEL, "num_classes": 1},
     r"`model.num_classes` must be 2: .* has classes 0..1, one softmax output each "
     r"\(volumes take the argmax, two classes included\); received `model.num_classes` = 1"),
])
def test_config_rules_of_the_volume_folder(data, model, message):
    with pytest.raises(ValueError, match=message):
        from_dict({"data": {"image_size": [16, 16, 16], **data}, "model": model})
