"""The pyfunc model that training logs answers a real HTTP request from ``mlflow models serve``."""

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest

from segtie.data.pipeline import build_eval_dataset
from segtie.inference import predict_probabilities
from segtie.training import checkpoints

from mlflow_server import free_port, wait_until_healthy
from trained_model import trained_run

pytestmark = pytest.mark.slow
START_TIMEOUT = 240  # seconds for the server to answer /ping (loads TensorFlow)


@pytest.fixture(scope="module")
def trained(kvasir_data_config, tmp_path_factory):
    return trained_run(kvasir_data_config, tmp_path_factory)


def test_served_model_segments_a_real_frame(trained, tmp_path):
    run_id = trained.result.mlflow_run_id
    run = mlflow.MlflowClient(trained.tracking_uri).get_run(run_id)
    assert run.data.tags["segtie.serving_uri"].startswith("models:/m-")
    cases = list(build_eval_dataset(trained.config.data, "test").take(8).as_numpy_iterator())
    image = min((c["image"] for c in cases), key=lambda im: im.size)  # smallest JSON
    port, log = free_port(), tmp_path / "serve.log"
    bin_dir = str(Path(sys.executable).parent)  # mlflow starts uvicorn from PATH
    env = {**os.environ, "MLFLOW_TRACKING_URI": trained.tracking_uri,
           "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    with log.open("w") as out:
        server = subprocess.Popen(
            [os.path.join(bin_dir, "mlflow"), "models", "serve", "-m",
             f"runs:/{run_id}/serving", "--env-manager", "local", "--host", "127.0.0.1",
             "-p", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT,
            cwd=tmp_path, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(server, url, log, "/ping", START_TIMEOUT)
        body = json.dumps({"inputs": image[None].tolist()}).encode()
        request = urllib.request.Request(url + "/invocations", body,
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as reply:
            predictions = json.loads(reply.read())["predictions"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and its uvicorn worker
        server.wait(timeout=60)
    mask = np.asarray(predictions["mask"])
    probabilities = np.asarray(predictions["probabilities"], dtype=np.float32)
    height, width = image.shape[:2]
    assert mask.shape == (1, height, width) and probabilities.shape == (1, height, width, 1)
    assert set(np.unique(mask)) <= {0, 1} and mask.any()
    model = checkpoints.load_checkpoint(str(trained.result.checkpoint))
    expected = predict_probabilities(model, image, trained.config.data.image_size)
    np.testing.assert_allclose(probabilities[0, ..., 0], expected, atol=1e-5)
    np.testing.assert_array_equal(mask[0], expected > trained.config.eval.threshold)
