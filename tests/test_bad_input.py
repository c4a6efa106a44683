"""Bad input of every kind: a clear error naming the file, key or value, and no trace left.

Each test builds the smallest real file that shows the problem (an animated GIF, a
rotated JPEG, a crafted or damaged zip, a mask with stray values, a binary config).
"""

import io
import zipfile

import keras
import numpy as np
import pytest
import tifffile
from PIL import Image

from segtie import cli
from segtie.cli.common import load_config
from segtie.config import from_dict
from segtie.data.sources.folder import _read_case, validate_folder
from segtie.data.sources.kvasir_seg import ARCHIVE_NAME, MANUAL_DIR_ENV, prepare_kvasir_seg
from segtie.losses import DiceCELoss
from segtie.nn import build_unet
from segtie.training.fit import new_run_dir
from test_kvasir_seg import _jpeg, write_archive

SHAPE = (16, 24)


@pytest.fixture(autouse=True)
def no_manual_dir_env(monkeypatch):
    monkeypatch.delenv(MANUAL_DIR_ENV, raising=False)


def _folder(root, count=3):
    """``count`` cases of RGB PNG images and 0/255 PNG masks in ``root``."""
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (*SHAPE, 3), dtype=np.uint8)).save(
            root / "images" / f"c{i}.png")
        mask = np.zeros(SHAPE, np.uint8)
        mask[4:12, 4:4 + 2 * i + 2] = 255
        Image.fromarray(mask).save(root / "masks" / f"c{i}.png")
    return root


# --- files: frames, orientation, stray mask values -------------------------------------

def test_an_animated_gif_mask_is_refused_by_name(tmp_path):
    root = _folder(tmp_path)
    frames = [Image.fromarray(np.full(SHAPE, v, np.uint8)) for v in (0, 255)]
    (root / "masks" / "c1.png").unlink()
    frames[0].save(root / "masks" / "c1.gif", save_all=True, append_images=frames[1:])
    (problem,) = validate_folder(root).problems
    assert problem == ("masks/c1.gif: holds 2 frames (an animation or a multi-page file); "
                       "expected a single image")


def test_a_multi_page_tiff_is_refused_by_name(tmp_path):
    root = _folder(tmp_path)
    (root / "images" / "c2.png").unlink()
    tifffile.imwrite(root / "images" / "c2.tif",
                     np.zeros((2, *SHAPE, 3), np.uint8), photometric="rgb")
    (problem,) = validate_folder(root).problems
    assert problem == ("images/c2.tif: holds 2 pages (a multi-page or volume TIFF); "
                       "expected a single image")


def test_a_jpeg_is_read_as_its_exif_orientation_shows_it(tmp_path):
    # A camera stored the frame sideways (24x16) with Orientation 6 (rotate 90 clockwise
    # to display); the mask was drawn on the displayed 16x24 picture.
    root = _folder(tmp_path, 3)
    stored = np.zeros((SHAPE[1], SHAPE[0], 3), np.uint8)
    stored[0, :] = 255  # top row as stored = right column as displayed
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    (root / "images" / "c0.png").unlink()
    image.save(root / "images" / "c0.jpg", exif=exif, quality=95)
    report = validate_folder(root)
    assert report.problems == []  # without the rotation: a 24x16 image for a 16x24 mask
    case = [c for c in report.cases if c.case_id == "c0"][0]
    pixels, _ = _read_case(case, report.folder, None)
    assert pixels.shape[:2] == SHAPE
    assert pixels[:, -1].mean() > 200 and pixels[:, 0].mean() < 50  # the right column


def test_stray_mask_values_name_mask_threshold_and_it_fixes_them(tmp_path):
    root = _folder(tmp_path)
    mask = np.zeros(SHAPE, np.uint8)
    mask[4:12, 4:12] = 255
    mask[3, 4:12] = 180  # the stray values of an anti-aliased edge
    mask[12, 4:12] = 7
    (root / "masks" / "c0.png").unlink()
    tifffile.imwrite(root / "masks" / "c0.tif", mask)
    (problem,) = validate_folder(root).problems
    assert problem.startswith("masks/c0.tif: values [0, 7, 180, 255] are not binary (0/1, "
                              "0/255 or 0/65535); set `data.mask_threshold`")
    report = validate_folder(root, mask_threshold=127)
    assert report.problems == []
    case = [c for c in report.cases if c.case_id == "c0"][0]
    _, classes = _read_case(case, report.folder, None, 127)
    assert classes.sum() == 8 * 8 + 8  # the 180 row is foreground, the 7 row is not


def test_sixteen_bit_zero_and_max_masks_are_binary(tmp_path):
    root = _folder(tmp_path)
    mask = np.zeros(SHAPE, np.uint16)
    mask[2:6, 2:6] = 65535
    (root / "masks" / "c0.png").unlink()
    tifffile.imwrite(root / "masks" / "c0.tif", mask)
    assert validate_folder(root).problems == []


@pytest.mark.parametrize("data, message", [
    ({"mask_threshold": 127}, r"`data.mask_threshold` applies to the binary masks of "
                              r"`data.name: folder`"),
    ({"name": "folder", "folder": "x", "label_map": {0: 0, 1: 1, 2: 2}, "mask_threshold": 1},
     r"`data.mask_threshold` applies to the binary masks .* without `data.label_map`"),
    ({"name": "folder", "folder": "x", "mask_threshold": -1},
     r"`data.mask_threshold` must be >= 0, received -1"),
])
def test_mask_threshold_is_checked_with_the_config(data, message):
    with pytest.raises(ValueError, match=message):
        from_dict({"data": data})


# --- archives: crafted paths, damaged members ----------------------------------------

def test_an_archive_member_leaving_its_folder_is_refused(tmp_path):
    write_archive(tmp_path / ARCHIVE_NAME, 4)
    with zipfile.ZipFile(tmp_path / ARCHIVE_NAME, "a") as archive:
        archive.writestr("Kvasir-SEG/../x/images/evil.jpg", _jpeg(np.zeros((4, 4, 3), np.uint8)))
    with pytest.raises(ValueError, match=r"1 member path\(s\) leave the archive's folder, "
                                         r"e.g. \['Kvasir-SEG/../x/images/evil.jpg'\]"):
        prepare_kvasir_seg(tmp_path / "tfds", tmp_path)


def _damage(path, member):
    """Flip one byte inside ``member``'s stored data (its CRC no longer matches)."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_member_with_a_bad_crc_names_the_archive_and_the_member(tmp_path, capsys):
    archive = tmp_path / ARCHIVE_NAME
    write_archive(archive, 4)
    _damage(archive, "Kvasir-SEG/images/case001.jpg")
    with pytest.raises(ValueError, match=r"kvasir-seg.zip: member "
                                         r"'Kvasir-SEG/images/case001.jpg' is damaged "
                                         r"\(BadZipFile: Bad CRC-32"):
        prepare_kvasir_seg(tmp_path / "tfds", tmp_path)


def test_a_config_that_is_not_text_names_the_file(tmp_path, capsys):
    path = tmp_path / "recipe.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert cli.main(["report", "--config", str(path), "--no-measure"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: Config file {path} is not UTF-8 text (invalid start byte at byte 0); "
        f"expected a YAML file")


# --- training: nothing half-written, unique run folders --------------------------------

def test_a_data_error_leaves_no_run_folder(tmp_path, capsys, monkeypatch):
    root = _folder(tmp_path / "data", 4)
    (root / "masks" / "c3.png").unlink()  # an image without a mask
    runs = tmp_path / "runs"
    code = cli.main(["train", "--set", "data.name=folder", "--set", f"data.folder={root}",
                     "--set", "data.image_size=[16,24]", "--set", "model.depth=2",
                     "--set", f"train.output_dir={runs}", "--set", "tracking.enabled=false"])
    assert code == 2
    assert "images/c3.png: no mask" in capsys.readouterr().err
    assert not runs.exists() or list(runs.iterdir()) == []


def test_run_folders_started_in_the_same_second_are_two(tmp_path, monkeypatch):
    monkeypatch.setattr("time.strftime", lambda fmt: "20261201-120000")
    first, second = new_run_dir(tmp_path, "kvasir_seg"), new_run_dir(tmp_path, "kvasir_seg")
    assert (first.name, second.name) == ("kvasir_seg-20261201-120000",
                                         "kvasir_seg-20261201-120000-2")


# --- a batch norm shared by the uses of a tied kernel -----------------------------------

@pytest.mark.parametrize("model, shared", [
    ({"norm": "batch", "num_iterations": 2}, "the 2 iterations of each block"),
    ({"norm": "batch", "num_iterations": 1, "num_recurrences": 2}, "the 2 passes"),
])
def test_the_config_refuses_a_batch_norm_shared_across_uses(model, shared):
    overrides = [f"model.{k}={v}" for k, v in model.items()]
    with pytest.raises(ValueError, match=rf"`model.norm: batch` would share one batch norm "
                                         rf"across {shared}"):
        load_config(None, overrides)
    assert load_config(None, ["model.norm=batch", "model.norm_per_iteration=true"])


def _agreement(**kwargs) -> float:
    """Dice of eval-mode vs train-mode predictions after 30 steps on one batch.

    Momentum 0 makes the moving statistics those of the last batch, so a batch norm
    with its own statistics per use reproduces the train-mode output exactly."""
    rng = np.random.default_rng(0)
    x = rng.random((4, 32, 32, 3)).astype("float32")
    y = np.zeros((4, 32, 32, 1), "float32")
    y[:, 8:24, 8:24] = 1
    x[..., 0] += y[..., 0]
    keras.utils.set_random_seed(1)
    model = build_unet(base_filters=8, depth=3, num_iterations=3, norm="batch", **kwargs)
    for layer in model._flatten_layers():
        if hasattr(layer, "moving_mean"):
            layer.momentum = 0.0
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=DiceCELoss())
    for _ in range(30):
        model.train_on_batch(x, y)
    train_mode = model(x, training=True).numpy() > 0
    eval_mode = model(x, training=False).numpy() > 0
    return 2 * (train_mode & eval_mode).sum() / (train_mode.sum() + eval_mode.sum())


def test_a_shared_batch_norm_breaks_inference_and_one_per_iteration_does_not():
    assert _agreement(norm_per_iteration=True) == pytest.approx(1.0, abs=1e-3)
    assert _agreement(norm_per_iteration=False) < 0.97  # measured 0.908
