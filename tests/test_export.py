"""``segtie export`` on a real trained model; every export run in the real LiteRT interpreter.

Outputs are compared with the Keras model on real Kvasir-SEG test frames, resized to
the training size and rounded to uint8 (what the LiteRT models take; the Keras model
gets the same pixels / 255).
"""

import json
import subprocess
import sys

import mlflow
import numpy as np
import pytest

from segtie import cli
from segtie.data.pipeline import build_eval_dataset
from segtie.data.preprocess import preprocess_image
from segtie.data.sources import load_split
from segtie.export import (LiteRTModel, SavedModelModel, convert_litert, read_weights,
                           representative_images)
from segtie.inference import predict_probabilities
from segtie.training import checkpoints

from trained_model import trained_run

pytestmark = pytest.mark.slow
NUM_IMAGES = 8


@pytest.fixture(scope="module")
def trained(kvasir_data_config, tmp_path_factory):
    return trained_run(kvasir_data_config, tmp_path_factory)


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model"
    code = cli.main(["export", "--checkpoint", trained.run_uri, "--output", str(out),
                     "--calibration-images", "24",
                     "--set", f"tracking.tracking_uri={trained.tracking_uri}"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def keras_model(trained):
    return checkpoints.load_checkpoint(str(trained.result.checkpoint))


@pytest.fixture(scope="module")
def test_frames(trained):
    """Real test frames: (originals, uint8 pixels at the training size)."""
    size = trained.config.data.image_size
    originals = [case["image"] for case in build_eval_dataset(trained.config.data, "test")
                 .take(NUM_IMAGES).as_numpy_iterator()]
    pixels = [np.clip(np.rint(preprocess_image(im, size).numpy() * 255), 0, 255)
              .astype(np.uint8) for im in originals]
    return originals, pixels


def test_export_writes_every_file_and_logs_them_to_a_run_of_the_training(trained, exported):
    info = json.loads((exported / "export.json").read_text())
    assert (exported / "saved_model" / "saved_model.pb").is_file()
    assert (exported / "config.yaml").is_file()
    for variant in ("float32", "float16", "int8"):
        path = exported / f"model_{variant}.tflite"
        assert path.stat().st_size == info["variants"][variant]["file_bytes"]
        assert info["variants"][variant]["filter_buffers"] == info["conv_kernels"]
    assert info["image_size"] == [64, 64] and info["calibration_images"] == 24
    sizes = {v: d["constant_bytes"] for v, d in info["variants"].items()}
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]
    client = mlflow.MlflowClient(trained.tracking_uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name("export-tests").experiment_id],
        "tags.`segtie.kind` = 'export' and "  # not another module's export of an ensemble
        f"tags.`segtie.train_run_id` = '{trained.result.mlflow_run_id}'")
    assert run.data.tags["segtie.train_run_id"] == trained.result.mlflow_run_id
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "litert")}
    assert logged == {f"litert/model_{v}.tflite" for v in ("float32", "float16", "int8")}
    assert run.data.metrics["int8.file_bytes"] == info["variants"]["int8"]["file_bytes"]


# Tolerances on probabilities (logits / 4 for the sigmoid's slope at most 1/4), from
# the measured error x ~3 (measured: see the README's export section).
FLOAT32_ATOL = 3e-5
FLOAT16_ATOL = 3e-3
# int8: 8-bit activations through ~20 layers and 18 instance norms, each rounding to
# 1/256 of its calibrated range; measured over two trainings: mean |dp| 0.019-0.022,
# max 0.19-0.25, labels of decisive pixels kept 0.9987-1.0.
INT8_MEAN_ATOL = 0.04
INT8_MAX_ATOL = 0.35
DECISIVE = 0.1          # pixels whose Keras probability is this far from 0.5 ...
INT8_AGREEMENT = 0.995  # ... keep their label (the 3-epoch model leaves ~40% of the
                        # pixels within 0.05 of 0.5, where any error flips the label)


def _errors(model, keras_model, pixels):
    diffs, agreement = [], []
    for image in pixels:
        expected = keras_model(image[None].astype("float32") / 255.0).numpy()
        expected = 1.0 / (1.0 + np.exp(-expected))
        probabilities = model.pixels(image)["probabilities"]
        diffs.append(np.abs(probabilities - expected))
        decisive = np.abs(expected - 0.5) > DECISIVE
        agreement.append(((probabilities > 0.5) == (expected > 0.5))[decisive].mean())
    return np.stack(diffs), np.array(agreement)


@pytest.mark.parametrize("variant", ["float32", "float16", "int8"])
def test_litert_outputs_match_keras_on_real_frames(variant, exported, keras_model,
                                                   test_frames):
    model = LiteRTModel(exported / f"model_{variant}.tflite", num_threads=1)
    assert model.image_size == [64, 64] and model.input_dtype == np.uint8
    assert model.weights_dtype == variant
    diffs, agreement = _errors(model, keras_model, test_frames[1])
    print(f"{variant}: max |dp| {diffs.max():.2e}, mean {diffs.mean():.2e}, "
          f"decisive-pixel label agreement min {agreement.min():.4f}")
    if variant == "float32":
        assert diffs.max() <= FLOAT32_ATOL
    elif variant == "float16":
        assert diffs.max() <= FLOAT16_ATOL
    else:
        assert diffs.mean() <= INT8_MEAN_ATOL and diffs.max() <= INT8_MAX_ATOL
        assert agreement.min() >= INT8_AGREEMENT
    assert diffs.max() > 0 or variant == "float32"  # the comparison saw real outputs


def test_int8_io_outputs_int8_and_agrees_with_the_float_output_int8(trained, exported,
                                                                    test_frames):
    images = representative_images(trained.config.data, 24)
    model = checkpoints.load_checkpoint(str(trained.result.checkpoint))
    data = convert_litert(model, [64, 64], "int8", images, int8_io=True)
    quantized, floats = LiteRTModel(data), LiteRTModel(exported / "model_int8.tflite")
    assert quantized.outputs["probabilities"]["dtype"] == np.int8
    assert read_weights(data).num_filter_buffers == read_weights(
        (exported / "model_int8.tflite").read_bytes()).num_filter_buffers
    scale = quantized.outputs["probabilities"]["quantization"][0]
    for image in test_frames[1][:3]:
        np.testing.assert_allclose(quantized.pixels(image)["probabilities"],
                                   floats.pixels(image)["probabilities"], atol=scale * 1.01)


def test_representative_images_are_the_first_training_frames(trained):
    data = trained.config.data
    images = representative_images(data, 3)
    raw = [case["image"] for case in load_split(data, "train").take(3).as_numpy_iterator()]
    expected = [np.rint(preprocess_image(im, data.image_size).numpy() * 255) for im in raw]
    assert images.shape == (3, 64, 64, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, np.stack(expected).astype(np.uint8))


def test_saved_model_serves_any_size_without_segtie(exported, keras_model, test_frames):
    original = test_frames[0][0]
    np.save(exported.parent / "frame.npy", original)
    script = (
        "import sys, json, numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(exported / 'saved_model')!r})\n"
        f"x = np.load({str(exported.parent / 'frame.npy')!r})[None]\n"
        "out = m.signatures['serving_default'](image=tf.constant(x))\n"
        f"np.save({str(exported.parent / 'probabilities.npy')!r}, out['probabilities'].numpy())\n"
        "print(json.dumps({'segtie': 'segtie' in sys.modules, 'mask': list(out['mask'].shape),"
        " 'dtype': out['mask'].dtype.name}))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"segtie": False, "mask": [1, *original.shape[:2]], "dtype": "uint8"}
    served = np.load(exported.parent / "probabilities.npy")[0, ..., 0]
    expected = predict_probabilities(keras_model, original, [64, 64])
    np.testing.assert_allclose(served, expected, atol=1e-5)
    in_process = SavedModelModel(exported / "saved_model")
    logits = in_process(test_frames[1][0][None].astype("float32") / 255.0)
    np.testing.assert_allclose(
        logits, keras_model(test_frames[1][0][None].astype("float32") / 255.0), atol=1e-5)


def test_export_refuses_to_replace_an_export_without_overwrite(trained, exported, capsys):
    code = cli.main(["export", "--checkpoint", str(trained.result.checkpoint), "--output",
                     str(exported), "--variants", "float32", "--no-saved-model",
                     "--set", "tracking.enabled=false"])
    assert code == 2
    assert f"Export folder {exported} already holds" in capsys.readouterr().err
    assert (exported / "model_int8.tflite").is_file()


@pytest.mark.parametrize("kwargs, message", [
    (dict(variant="int4"), "`variant` must be one of ['float32', 'float16', 'int8']"),
    (dict(variant="int8"), "The int8 variant needs `representative_images`"),
    (dict(variant="float16", int8_io=True), "`int8_io` applies to the int8 variant only"),
])
def test_convert_litert_rejects_bad_arguments(kwargs, message, keras_model):
    with pytest.raises(ValueError) as err:
        convert_litert(keras_model, [64, 64], **kwargs)
    assert str(err.value).startswith(message)


def test_conversion_keeps_the_converters_variable_listing_out_of_stdout(keras_model, capsys,
                                                                        caplog):
    with caplog.at_level("DEBUG", logger="segtie.export.litert"):
        data = convert_litert(keras_model, [64, 64], "float32")
    assert "TensorSpec" not in capsys.readouterr().out
    assert "TensorSpec" in caplog.text  # kept at DEBUG, not lost
    assert LiteRTModel(data).outputs["probabilities"]["dtype"] == np.float32


def _hand_dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """2|A and B| / (|A| + |B|); 1.0 when both are empty."""
    both = prediction.sum() + truth.sum()
    return 1.0 if both == 0 else 2.0 * np.logical_and(prediction, truth).sum() / both


def test_evaluate_scores_an_int8_export_as_the_interpreter_runs_it(trained, exported,
                                                                    test_frames, tmp_path):
    import tensorflow as tf
    from mlflow_runs import only_run

    tflite = exported / "model_int8.tflite"
    out = tmp_path / "eval"
    uri = f"sqlite:///{tmp_path / 'eval.db'}"
    code = cli.main(["evaluate", "--checkpoint", str(tflite),
                     "--set", f"tracking.tracking_uri={uri}", "--set", f"eval.output_dir={out}",
                     "--set", "eval.bootstrap_samples=0"])
    assert code == 0
    summary = json.loads(next(out.glob("eval-*/summary.json")).read_text())
    # The reference: the interpreter on the uint8 frames, logits resized by hand, Dice by hand.
    interpreter = LiteRTModel(tflite)
    masks = [case["mask"] for case in build_eval_dataset(trained.config.data, "test")
             .take(NUM_IMAGES).as_numpy_iterator()]
    dice = []
    for original, pixels, mask in zip(*test_frames, masks):
        logits = interpreter.pixels(pixels)["logits"]
        resized = tf.image.resize(logits, original.shape[:2], method="bilinear")[0, ..., 0]
        dice.append(_hand_dice(resized.numpy() > 0, np.squeeze(mask) > 0))
    assert summary["num_cases"] == NUM_IMAGES
    np.testing.assert_allclose(summary["dice"]["mean"], np.mean(dice), atol=1e-6)
    _, run = only_run(uri, trained.config.tracking.experiment)
    assert run.data.tags["segtie.model_format"] == "litert"
    assert run.data.tags["segtie.weights_dtype"] == "int8"
    assert run.data.tags["segtie.train_run_id"] == trained.result.mlflow_run_id
    # The training run is in another store: the evaluation is still tracked whole.
    assert "per_case_table.json" in {a.path for a in mlflow.MlflowClient(uri).list_artifacts(
        run.info.run_id)}


def test_evaluate_refuses_to_promote_an_export(exported, capsys):
    code = cli.main(["evaluate", "--checkpoint", str(exported / "model_int8.tflite"),
                     "--promote"])
    assert code == 2
    assert "--promote registers a .keras checkpoint" in capsys.readouterr().err
