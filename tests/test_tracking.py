"""Tracking: the logged model's requirements, signature and example; model URIs; the store."""

import json
from importlib import metadata

import mlflow
import numpy as np
import pytest

from segtie import tracking
from segtie.nn import build_unet


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A tiny U-Net logged by Tracker.log_keras_model into a fresh SQLite store."""
    root = tmp_path_factory.mktemp("tracking")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    model = build_unet(base_filters=4, depth=2)
    example = np.random.default_rng(0).random((1, 16, 16, 3), dtype=np.float32)
    tracker = tracking.Tracker(True, uri, "tracking-test")
    run_id = tracker.start("log-model")
    model_uri = tracker.log_keras_model(model, example)
    tracker.end("FINISHED")
    mlflow.set_tracking_uri(uri)
    folder = mlflow.artifacts.download_artifacts(model_uri, dst_path=str(root / "model"))
    return dict(uri=uri, run_id=run_id, model_uri=model_uri, folder=folder, model=model,
                example=example)


def test_the_logged_model_requires_what_loading_needs_and_nothing_else(logged):
    lines = open(f"{logged['folder']}/requirements.txt").read().split()
    tf_version = metadata.version("tensorflow-cpu")
    assert f"keras=={metadata.version('keras')}" in lines
    assert f"tensorflow=={tf_version}" in lines  # the build that runs on CPU and GPU
    for name in ("pytest", "medpy", "tensorflow-cpu", "keras-unet-collection"):
        assert not any(line.split("==")[0] == name for line in lines), lines


def test_the_logged_model_has_a_tensor_signature_and_a_real_input_example(logged):
    info = mlflow.models.get_model_info(logged["model_uri"])
    (image,) = info.signature.inputs.inputs
    (logits,) = info.signature.outputs.inputs
    assert (image.name, image.shape, str(image.type)) == ("image", (-1, -1, -1, 3), "float32")
    assert (logits.name, logits.shape, str(logits.type)) == ("logits", (-1, -1, -1, 1),
                                                             "float32")
    example = json.load(open(f"{logged['folder']}/input_example.json"))  # the array itself
    np.testing.assert_allclose(np.asarray(example, np.float32), logged["example"], rtol=1e-6)


def test_every_model_uri_leads_back_to_its_training_run(logged):
    run_id, uri = logged["run_id"], logged["uri"]
    assert logged["model_uri"].startswith("models:/m-")
    assert tracking.run_id_of(logged["model_uri"], uri) == run_id
    assert tracking.run_id_of(f"runs:/{run_id}/model", uri) == run_id
    client = mlflow.MlflowClient(uri)
    client.create_registered_model("tracking-test-model")
    version = client.create_model_version("tracking-test-model", logged["model_uri"],
                                          run_id=run_id)
    client.set_registered_model_alias("tracking-test-model", "champion", version.version)
    assert tracking.run_id_of(f"models:/tracking-test-model/{version.version}", uri) == run_id
    assert tracking.run_id_of("models:/tracking-test-model@champion", uri) == run_id
    assert tracking.run_id_of("models:/m-0123456789abcdef", uri) is None  # unknown: logged
    assert tracking.run_id_of("/a/file.keras", uri) is None


def test_the_logged_model_loads_and_predicts_like_the_original(logged):
    loaded = tracking.load_keras_model(logged["model_uri"], logged["uri"])
    np.testing.assert_array_equal(loaded.predict(logged["example"], verbose=0),
                                  logged["model"].predict(logged["example"], verbose=0))


def test_the_default_store_is_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking.resolve_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert tracking.resolve_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_a_run_missing_from_the_store_is_neither_linked_nor_tagged_and_tracking_goes_on(
        tmp_path, caplog):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = tracking.Tracker(True, uri, "tracking-test")
    other = tracker.start("training")
    tracker.end("FINISHED")
    run_id = tracker.start("evaluation")
    missing = "0" * 32  # a training run of another store
    assert tracker.run_link(missing) is None
    tracker.tag_run(missing, {"segtie.eval_run_id": run_id})
    assert tracker.active and caplog.text.count(f"Run {missing} is not in the tracking") == 1
    tracker.tag_run(other, {"segtie.eval_run_id": run_id})  # one that is there: tagged
    assert tracker.run_link(other).endswith(f"/runs/{other}")
    tracker.end("FINISHED")
    assert mlflow.MlflowClient(uri).get_run(other).data.tags["segtie.eval_run_id"] == run_id
