"""The folder source: every format, bit depth and mask encoding; the validation report."""

import dataclasses
import io
import zipfile

import numpy as np
import pytest
import tensorflow as tf
import tifffile
from PIL import Image

from segtie.config import implied_num_classes
from segtie.data import pipeline
from segtie.config import DataConfig, from_dict
from segtie.data.sources import load_split
from segtie.data.image_files import read_image
from segtie.data.sources.folder import load_folder_split, match_files, validate_folder

SHAPE = (12, 16)  # height, width
RNG = np.random.default_rng(0)


def rgb8():
    return RNG.integers(0, 256, (*SHAPE, 3), dtype=np.uint8)


def gray8():
    return RNG.integers(0, 256, SHAPE, dtype=np.uint8)


def blob(value=1, top=2):
    """A binary 2-D mask, foreground ``value`` in a rectangle."""
    mask = np.zeros(SHAPE, np.uint8)
    mask[top:top + 5, 3:11] = value
    return mask


def save_pil(path, array, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def save_palette(path, indices):
    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def save_png16(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = array if array.ndim == 3 else array[..., None]
    path.write_bytes(tf.io.encode_png(data).numpy())


def save_tiff(path, array, compression):
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, array, compression=compression,
                     photometric="rgb" if array.ndim == 3 else "minisblack")


def write_binary_folder(root):
    """One case per image format and mask encoding; returns {id: (image uint8, mask)}."""
    expected = {}

    def case(case_id, image, expected_image, write_image, mask_name, write_mask, mask):
        write_image(root / "images" / case_id[1], image)
        write_mask(root / "masks" / mask_name, mask)
        expected[case_id[0]] = (expected_image, blob())

    def pil(**kwargs):
        return lambda path, array: save_pil(path, array, **kwargs)

    image16 = RNG.integers(0, 4096, SHAPE, dtype=np.uint16)
    image16[0, 0] = 4095  # the folder's 16-bit maximum -> 255
    rgb16 = RNG.integers(0, 4096, (*SHAPE, 3), dtype=np.uint16)
    scale = lambda a: np.rint(a * (255 / 4095)).astype(np.uint8)  # noqa: E731
    gray, rgb, rgba = gray8(), rgb8(), np.dstack([rgb8(), np.full(SHAPE, 9, np.uint8)])
    lzw, bmp, gif_rgb = rgb8(), rgb8(), rgb8()
    gif = Image.fromarray(gif_rgb).quantize(16)
    gray3 = lambda a: np.repeat(a[..., None], 3, -1)  # noqa: E731
    case(("png_rgb", "png_rgb.png"), rgb, rgb, pil(), "png_rgb.png", save_pil, blob(255))
    case(("png_gray", "png_gray.png"), gray, gray3(gray), pil(), "png_gray_mask.png",
         save_pil, blob(1))
    case(("png16", "png16.png"), image16, gray3(scale(image16)), save_png16,
         "png16_label.png", save_png16, blob(1).astype(np.uint16))
    case(("png16_rgb", "png16_rgb.png"), rgb16, scale(rgb16), save_png16, "png16_rgb.gif",
         save_palette, blob(1))
    case(("png_rgba", "png_rgba.png"), rgba, rgba[..., :3], pil(), "png_rgba_gt.bmp",
         save_pil, blob(255))
    case(("tif_lzw", "tif_lzw.tif"), lzw, lzw, pil(compression="tiff_lzw"),
         "tif_lzw.tif", lambda p, a: save_tiff(p, a, "zlib"), blob(1))
    case(("tif16", "tif16.tiff"), image16, gray3(scale(image16)),
         lambda p, a: save_tiff(p, a, "zlib"), "tif16.png", save_pil,
         np.repeat(blob(255)[..., None], 3, -1))  # an RGB mask with equal channels
    case(("tif16_rgb", "tif16_rgb.tif"), rgb16, scale(rgb16),
         lambda p, a: save_tiff(p, a, None), "tif16_rgb.png", save_pil, blob(1) > 0)
    case(("gif", "gif.gif"), gif, np.asarray(gif.convert("RGB")),
         lambda p, a: a.save(p), "gif.png", save_pil, blob(1))
    case(("bmp", "bmp.bmp"), bmp, bmp, pil(), "bmp.tif",
         lambda p, a: save_pil(p, a, compression="tiff_lzw"), blob(255))
    jpeg = rgb8()
    save_pil(root / "images" / "jpeg.jpg", jpeg, quality=95)
    save_pil(root / "masks" / "jpeg_mask.jpg", blob(255), quality=75)  # lossy mask
    decoded = np.asarray(Image.open(root / "images" / "jpeg.jpg"))
    expected["jpeg"] = (decoded, blob())
    (root / "images" / ".DS_Store").write_bytes(b"ignored")
    return expected


@pytest.fixture(scope="module")
def binary_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("binary")
    return root, write_binary_folder(root)


def all_cases(config):
    out = {}
    for split in ("train", "validation", "test"):
        for case in load_split(config, split).as_numpy_iterator():
            out[case["id"].decode()] = case
    return out


def test_every_format_reads_as_expected(binary_folder):
    root, expected = binary_folder
    report = validate_folder(root)
    assert report.problems == [] and report.empty_masks == []
    assert report.max_16bit == 4095
    cases = all_cases(DataConfig(name="folder", folder=str(root)))
    assert sorted(cases) == sorted(expected)
    for case_id, (image, mask) in expected.items():
        got = cases[case_id]
        assert got["image"].dtype == np.uint8 and got["image"].shape == (*SHAPE, 3), case_id
        np.testing.assert_array_equal(got["image"], image, err_msg=case_id)
        np.testing.assert_array_equal(got["mask"][..., 0], mask, err_msg=case_id)


def test_split_is_seeded_80_10_10_and_pipeline_gives_float_masks(binary_folder):
    root, expected = binary_folder
    config = DataConfig(name="folder", folder=str(root), image_size=[8, 8], batch_size=20)
    sizes = {s: len(list(load_folder_split(config, s))) for s in ("train", "validation",
                                                                   "test")}
    assert sizes == {"train": 9, "validation": 1, "test": 1}
    ((image, mask),) = list(pipeline.build_dataset(config, "train", training=True))
    assert image.shape == (9, 8, 8, 3) and mask.dtype == tf.float32
    assert set(np.unique(mask)) == {0.0, 1.0}


def test_label_map_multi_class(tmp_path):
    values = {0: 0, 100: 1, 200: 2}
    for i in range(4):
        mask = np.zeros(SHAPE, np.uint8)
        mask[:, :5], mask[:, 9 + i:] = 100, 200
        save_pil(tmp_path / "images" / f"c{i}.png", rgb8())
        save_pil(tmp_path / "masks" / f"c{i}.png", mask)
    indices = np.zeros(SHAPE, np.uint8)
    indices[4:, :] = 2
    save_pil(tmp_path / "images" / "p.png", rgb8())
    save_palette(tmp_path / "masks" / "p_mask.png", indices)  # palette index 2 -> raw 2
    config = DataConfig(name="folder", folder=str(tmp_path), label_map={**values, 2: 2},
                        image_size=[12, 16], batch_size=8)
    cases = all_cases(config)
    assert set(np.unique(cases["c0"]["mask"])) == {0, 1, 2}
    np.testing.assert_array_equal(cases["p"]["mask"][..., 0], indices)
    assert implied_num_classes(config) == 3
    masks = np.concatenate([m for _, m in pipeline.build_dataset(config, "train",
                                                                 training=True)])
    assert masks.dtype == np.int32 and set(np.unique(masks)) == {0, 1, 2}


def test_validation_reports_every_problem_by_file(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    save_pil(images / "ok.png", rgb8()), save_pil(masks / "ok.png", blob(255))
    save_pil(images / "empty.png", rgb8()), save_pil(masks / "empty.png", blob(0))
    save_pil(images / "orphan.png", rgb8())
    save_pil(masks / "ghost.png", blob(1))
    save_pil(images / "dup.png", rgb8()), save_pil(images / "dup.jpg", rgb8())
    save_pil(masks / "dup.png", blob(1))
    save_pil(images / "two.png", rgb8())
    save_pil(masks / "two.png", blob(1)), save_pil(masks / "two_mask.png", blob(1))
    (images / "bad.png").write_bytes(b"not a png")
    save_pil(masks / "bad.png", blob(1))
    save_pil(images / "size.png", rgb8())
    save_pil(masks / "size.png", np.zeros((13, 16), np.uint8))
    save_pil(images / "labels.png", rgb8()), save_pil(masks / "labels.png", blob(7))
    save_pil(images / "colour.png", rgb8()), save_pil(masks / "colour.png", rgb8())
    (images / "notes.txt").write_text("hello")
    report = validate_folder(tmp_path)
    text = "\n".join(report.problems)
    for fragment in ["images/orphan.png: no mask", "masks/ghost.png: no image",
                     "images/dup.png: same stem 'dup' as images/dup.jpg",
                     "masks/two_mask.png: a second mask for images/two.png",
                     "images/bad.png: cannot decode",
                     "masks/size.png: size 16x13 differs from images/size.png's 16x12",
                     "masks/labels.png: values [0, 7] are not binary",
                     "masks/colour.png: colour mask with differing channels",
                     "images/notes.txt: unsupported file type '.txt'"]:
        assert fragment in text
    assert len(report.problems) == 9 and report.empty_masks == ["empty"]
    with pytest.raises(ValueError, match=r"9 problem\(s\)") as info:
        load_split(DataConfig(name="folder", folder=str(tmp_path)), "train")
    assert all(problem in str(info.value) for problem in report.problems)
    with_map = validate_folder(tmp_path, {0: 0, 1: 1})
    assert "masks/ok.png: values [255] are not in the label map (keys [0, 1])" in \
        with_map.problems


def test_missing_subfolder_and_jpeg_masks_with_classes(tmp_path):
    with pytest.raises(ValueError, match="images/` and `masks/`.*masks is not a folder"):
        save_pil(tmp_path / "images" / "a.png", rgb8())
        match_files(tmp_path)
    save_pil(tmp_path / "masks" / "a.jpg", blob(255))
    report = validate_folder(tmp_path, {0: 0, 1: 1, 2: 2})
    assert report.problems == ["masks/a.jpg: a JPEG mask is lossy and holds binary masks "
                               "only, but `data.label_map` has more than two classes; "
                               "save it as PNG"]


@pytest.mark.parametrize("source", ["kvasir", "drive"])
def test_real_files_from_the_archives(source, tmp_path, request):
    """A few real cases extracted from the archives into a folder, as a user would."""
    archive = request.getfixturevalue(f"{source}_archive")
    if source == "kvasir":
        stems = ["cju0qkwl35piu0993l0dewei2", "cju0qoxqj9q6s0835b43399p4",
                 "cju0qx73cjw570799j4n5cjze"]
        pairs = {s: (f"Kvasir-SEG/images/{s}.jpg", f"Kvasir-SEG/masks/{s}.jpg",
                     f"{s}_mask.jpg") for s in stems}
    else:
        pairs = {f"{n}_training": (f"DRIVE/training/images/{n}_training.tif",
                                   f"DRIVE/training/1st_manual/{n}_manual1.gif",
                                   f"{n}_training_label.gif") for n in (21, 22, 23)}
    with zipfile.ZipFile(archive) as zipped:
        for stem, (image_member, mask_member, mask_name) in pairs.items():
            (tmp_path / "images").mkdir(exist_ok=True), (tmp_path / "masks").mkdir(
                exist_ok=True)
            suffix = image_member[image_member.rindex("."):]
            (tmp_path / "images" / f"{stem}{suffix}").write_bytes(zipped.read(image_member))
            (tmp_path / "masks" / mask_name).write_bytes(zipped.read(mask_member))
    config = DataConfig(name="folder", folder=str(tmp_path))
    cases = all_cases(config)
    assert sorted(cases) == sorted(pairs)
    for stem, (image_member, mask_member, _) in pairs.items():
        with zipfile.ZipFile(archive) as zipped:
            image = np.asarray(Image.open(io.BytesIO(zipped.read(image_member))))
            mask = np.asarray(Image.open(io.BytesIO(zipped.read(mask_member)))
                              .convert("RGB")).mean(-1) > 127
        np.testing.assert_array_equal(cases[stem]["image"], image)
        np.testing.assert_array_equal(cases[stem]["mask"][..., 0], mask)
        assert 0.01 < mask.mean() < 0.5
    small = dataclasses.replace(config, image_size=[64, 64], batch_size=3)
    ((image, mask),) = list(pipeline.build_dataset(small, "train", training=False))
    assert image.shape == (1, 64, 64, 3) and mask.shape == (1, 64, 64, 1)


def test_16bit_colour_lzw_tiff_decodes_exactly(tmp_path):
    """Pillow alone would keep only the high byte of each sample; imagecodecs (a
    dependency) lets tifffile decode every bit."""
    image = RNG.integers(0, 4096, (*SHAPE, 3), dtype=np.uint16)
    save_tiff(tmp_path / "images" / "a.tif", image, "lzw")
    with tifffile.TiffFile(tmp_path / "images" / "a.tif") as tiff:
        assert tiff.pages[0].compression == tifffile.COMPRESSION.LZW
    save_pil(tmp_path / "masks" / "a.png", blob(1))
    assert validate_folder(tmp_path).problems == []
    np.testing.assert_array_equal(read_image((tmp_path / "images" / "a.tif").read_bytes(),
                                             "a.tif"), image)


@pytest.mark.parametrize("raw, message", [
    ({"name": "folder"}, r"`data.folder` must be set exactly when `data.name` is 'folder'"),
    ({"folder": "x"}, r"`data.folder` must be set exactly when"),
    ({"label_map": {0: 0, 255: 1}}, r"`data.label_map` applies to `data.name: folder`"),
    ({"name": "folder", "folder": "x", "label_map": {0: 0, 255: 2}},
     r"class indices must be 0, 1, ..., K.*received \[0, 2\]"),
    ({"name": "folder", "folder": "x", "label_map": {-1: 0, 255: 1}},
     r"raw mask values \(integers 0..65535\)"),
    ({"spacing": [0.5]}, r"`data.spacing` must be \[row, col\]"),
])
def test_config_rejects_bad_folder_settings(raw, message):
    with pytest.raises(ValueError, match=message):
        from_dict({"data": raw})
