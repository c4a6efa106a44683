"""``segtie predict`` on real Kvasir-SEG frames, from every kind of model it loads."""

import dataclasses
import os

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from segtie import cli
from segtie.data.image_files import read_image
from segtie.data.pipeline import build_eval_dataset
from segtie.evaluation.run import inference_options
from segtie.export import export_model
from segtie.inference import predict_labels, predict_probabilities
from segtie.training import checkpoints

from trained_model import trained_run

pytestmark = pytest.mark.slow
FORMATS = ("png", "jpg", "tiff", "bmp", "gif")


@pytest.fixture(scope="module")
def trained(kvasir_data_config, tmp_path_factory):
    return trained_run(kvasir_data_config, tmp_path_factory)


@pytest.fixture(scope="module")
def keras_model(trained):
    return checkpoints.load_checkpoint(str(trained.result.checkpoint))


@pytest.fixture(scope="module")
def images_dir(trained, tmp_path_factory):
    """Five real test frames, one per format, at their original sizes."""
    folder = tmp_path_factory.mktemp("frames")
    cases = build_eval_dataset(trained.config.data, "test").take(len(FORMATS))
    for case, fmt in zip(cases.as_numpy_iterator(), FORMATS):
        Image.fromarray(case["image"]).save(folder / f"{case['id'].decode()}.{fmt}")
    return folder


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    model = checkpoints.load_checkpoint(str(trained.result.checkpoint))
    out = tmp_path_factory.mktemp("predict-export") / "export"
    export_model(model, trained.config, out, variants=["float32", "int8"],
                 calibration_images=16, track=False)
    return out


def _expected_masks(model, folder, config, options=None):
    """In-process masks (0/255) of every image in ``folder``, by stem."""
    options = options or inference_options(config)
    masks = {}
    for path in sorted(folder.iterdir()):
        image = read_image(path.read_bytes(), path.name)
        p = predict_probabilities(model, image, config.data.image_size, options)
        masks[path.stem] = predict_labels(p, 1, config.eval.threshold,
                                          config.eval.largest_component) * 255
    return masks


def _read_masks(out):
    return {p.name[:-len("_mask.png")]: np.asarray(Image.open(p))
            for p in out.glob("*_mask.png")}


def _predict(*argv):
    return cli.main(["predict", *map(str, argv), "--set", "tracking.enabled=false"])


def test_predict_writes_one_mask_per_image_at_its_size(trained, keras_model, images_dir,
                                                       tmp_path, capsys):
    out = tmp_path / "masks"
    assert _predict("--model", trained.result.checkpoint, images_dir, "--output", out) == 0
    masks, expected = _read_masks(out), _expected_masks(keras_model, images_dir, trained.config)
    assert sorted(masks) == sorted(expected) and len(masks) == len(FORMATS)
    for stem, mask in masks.items():
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(mask, expected[stem])
    assert (masks[stem] == 255).any()  # a trained model finds some polyp
    assert "5 of 5 images predicted (keras model" in capsys.readouterr().out


# Probabilities against the Keras model's in process, at the original size. The LiteRT
# models take the resized frame rounded to uint8 (half a grey level at most): measured
# float32 max |dp| 0.017, mean 7e-4; int8 max 0.16, mean 0.015.
@pytest.mark.parametrize("form, atol, mean_atol", [
    ("saved_model", 1e-5, 1e-6), ("mlflow", 1e-6, 1e-7),
    ("model_float32.tflite", 4e-2, 3e-3), ("model_int8.tflite", 0.3, 0.03)])
def test_every_model_form_gives_the_keras_probabilities(form, atol, mean_atol, trained,
                                                        keras_model, images_dir, exported,
                                                        tmp_path):
    spec = {"mlflow": trained.run_uri}.get(form, exported / form)
    extra = ["--set", f"tracking.tracking_uri={trained.tracking_uri}"] if form == "mlflow" else []
    out = tmp_path / "masks"
    assert cli.main(["predict", "--model", str(spec), str(images_dir), "--output",
                     str(out), "--probabilities", "npy", *extra]) == 0
    errors = []
    for path in sorted(images_dir.iterdir()):
        image = read_image(path.read_bytes(), path.name)
        expected = predict_probabilities(keras_model, image, trained.config.data.image_size)
        probabilities = np.load(out / f"{path.stem}_prob.npy")
        mask = np.asarray(Image.open(out / f"{path.stem}_mask.png"))
        assert probabilities.shape == mask.shape == image.shape[:2]
        np.testing.assert_array_equal(mask, (probabilities > 0.5) * 255)
        errors.append(np.abs(probabilities - expected))
    errors = np.concatenate([e.ravel() for e in errors])
    print(f"{form}: max |dp| {errors.max():.2e}, mean {errors.mean():.2e}")
    assert errors.max() <= atol and errors.mean() <= mean_atol


def test_probabilities_as_16_bit_png_and_npy(trained, keras_model, images_dir, tmp_path):
    model = trained.result.checkpoint
    assert _predict("--model", model, images_dir, "--output", tmp_path / "png",
                    "--probabilities", "png16") == 0
    assert _predict("--model", model, images_dir, "--output", tmp_path / "npy",
                    "--probabilities", "npy") == 0
    path = sorted(images_dir.iterdir())[0]
    probabilities = np.load(tmp_path / "npy" / f"{path.stem}_prob.npy")
    expected = predict_probabilities(keras_model, read_image(path.read_bytes(), path.name),
                                     trained.config.data.image_size)
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    png = np.asarray(Image.open(tmp_path / "png" / f"{path.stem}_prob.png"))
    assert png.dtype == np.uint16 and png.shape == probabilities.shape
    np.testing.assert_array_equal(png, np.rint(probabilities * 65535).astype(np.uint16))


def test_an_unreadable_image_stops_the_command_unless_keep_going(trained, images_dir,
                                                                  tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    good = sorted(images_dir.iterdir())[0]
    (folder / good.name).write_bytes(good.read_bytes())
    (folder / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    model = trained.result.checkpoint
    assert _predict("--model", model, folder, "--output", tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert "damaged.png" in err and "--keep-going" in err
    assert _predict("--model", model, folder, "--output", tmp_path / "b", "--keep-going") == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "damaged.png" in out and "1 of 2 images predicted" in out
    assert [p.name for p in (tmp_path / "b").iterdir()] == [f"{good.stem}_mask.png"]
    (folder / good.name).unlink()  # nothing left that can be read: exit 1, not 0
    assert _predict("--model", model, folder, "--output", tmp_path / "c", "--keep-going") == 1
    captured = capsys.readouterr()
    assert "0 of 1 images predicted" in captured.out
    assert "no image of 1 could be predicted" in captured.err


def test_an_output_that_is_a_file_is_refused_before_anything_runs(trained, images_dir,
                                                                   tmp_path, capsys):
    target = tmp_path / "masks.png"
    target.write_bytes(b"keep me")
    assert _predict("--model", trained.result.checkpoint, images_dir,
                    "--output", target) == 2
    assert f"--output {target} is a file; expected a folder" in capsys.readouterr().err
    assert target.read_bytes() == b"keep me"


def test_nothing_is_overwritten_without_overwrite(trained, images_dir, tmp_path, capsys):
    model, out = trained.result.checkpoint, tmp_path / "masks"
    assert _predict("--model", model, images_dir, "--output", out) == 0
    stamps = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    os.utime(next(iter(stamps)), ns=(1, 1))  # a mark that a rewrite would erase
    assert _predict("--model", model, images_dir, "--output", out) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert next(iter(stamps)).stat().st_mtime_ns == 1
    assert _predict("--model", model, images_dir, "--output", out, "--overwrite") == 0
    assert next(iter(stamps)).stat().st_mtime_ns > 1


def test_the_config_chooses_tta_and_largest_component(trained, keras_model, images_dir,
                                                      tmp_path):
    out = tmp_path / "masks"
    assert _predict("--model", trained.result.checkpoint, images_dir, "--output", out,
                    "--set", "eval.tta_mirror=true", "--set", "eval.largest_component=true"
                    ) == 0
    config = trained.config
    config = dataclasses.replace(config, eval=dataclasses.replace(
        config.eval, tta_mirror=True, largest_component=True))
    expected = _expected_masks(keras_model, images_dir, config)
    for stem, mask in _read_masks(out).items():
        np.testing.assert_array_equal(mask, expected[stem])
        assert ndimage.label(mask > 0, structure=np.ones((3, 3)))[1] <= 1
