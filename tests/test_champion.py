"""The ``champion`` alias: set by ``segtie promote`` only for a better score on the same test set."""

import mlflow
import numpy as np
import pytest

from segtie import cli, tracking
from segtie.nn import build_unet
from segtie.tracking.champion import promote

DIGEST = "9ea6dcb9166e10595ad06febfafb8f11"
NAME = "segtie-kvasir_seg"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two training runs with a logged model each, in a fresh SQLite store (each test
    registers under its own model name)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('champion') / 'mlflow.db'}"
    runs = []
    for seed in (1, 2):
        model = build_unet(base_filters=2, depth=2, num_iterations=1)
        model.set_weights([np.full(w.shape, seed / 10, np.float32) for w in model.weights])
        tracker = tracking.Tracker(True, uri, "champion")
        run_id = tracker.start(f"train-{seed}", tags={"segtie.kind": "train"})
        tracker.set_tags({"segtie.model_uri": tracker.log_keras_model(model)})
        tracker.end()
        runs.append((run_id, model))
    return uri, runs


def _evaluation(uri, train_run, dice, digest=DIGEST, hd95=10.0):
    """An evaluation run as run_evaluation tags it, with the scores given."""
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("champion").experiment_id
    run = client.create_run(exp, tags={
        "segtie.kind": "evaluate", "segtie.train_run_id": train_run, "segtie.split": "test",
        "segtie.split_digest": digest, "segtie.dataset": "kvasir_seg"})
    client.log_metric(run.info.run_id, "test_dice_mean", dice)
    client.log_metric(run.info.run_id, "test_hd95_mean", hd95)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _champion(uri, name):
    return mlflow.MlflowClient(uri).get_model_version_by_alias(name, "champion")


def test_the_first_evaluation_makes_a_champion_that_loads_by_its_alias(store):
    uri, [(train_a, model_a), _] = store
    result = promote(_evaluation(uri, train_a, 0.70), tracking_uri=uri)  # default name
    assert (result["promoted"], result["version"], result["reason"]) == (True, 1,
                                                                         "first champion")
    version = _champion(uri, NAME)
    assert version.run_id == train_a
    assert version.tags["segtie.split_digest"] == DIGEST
    assert float(version.tags["segtie.score"]) == 0.70
    loaded = tracking.load_keras_model(f"models:/{NAME}@champion", uri)
    images = np.random.default_rng(0).random((1, 16, 16, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(images, verbose=0),
                               model_a.predict(images, verbose=0), rtol=1e-6, atol=1e-6)
    assert tracking.run_id_of(f"models:/{NAME}@champion", uri) == train_a


def test_only_a_strictly_better_score_on_the_same_digest_moves_the_alias(store):
    uri, [(train_a, _), (train_b, _)] = store
    name = "moves"
    assert promote(_evaluation(uri, train_a, 0.70), name, tracking_uri=uri)["promoted"]
    tie = promote(_evaluation(uri, train_b, 0.70), name, tracking_uri=uri)
    assert not tie["promoted"] and tie["reason"].startswith("not better")
    other_set = promote(_evaluation(uri, train_b, 0.99, digest="0" * 32), name,
                        tracking_uri=uri)
    assert not other_set["promoted"] and other_set["reason"].startswith("not comparable")
    assert _champion(uri, name).run_id == train_a  # neither moved it nor registered
    assert len(mlflow.MlflowClient(uri).search_model_versions(f"name='{name}'")) == 1
    better = promote(_evaluation(uri, train_b, 0.71), name, tracking_uri=uri)
    assert (better["promoted"], better["version"], better["champion_score"]) == (True, 2,
                                                                                 0.70)
    assert _champion(uri, name).run_id == train_b


def test_a_distance_metric_wins_by_being_lower(store):
    uri, [(train_a, _), (train_b, _)] = store
    promote(_evaluation(uri, train_a, 0.5, hd95=20.0), metric="test_hd95_mean",
            name="by-hd95", tracking_uri=uri)
    assert not promote(_evaluation(uri, train_b, 0.9, hd95=25.0), metric="test_hd95_mean",
                       name="by-hd95", tracking_uri=uri)["promoted"]
    assert promote(_evaluation(uri, train_b, 0.1, hd95=19.5), metric="test_hd95_mean",
                   name="by-hd95", tracking_uri=uri)["promoted"]


def test_promote_refuses_what_is_not_an_evaluation_in_one_line(store, capsys):
    uri, [(train_a, _), _] = store
    assert cli.main(["promote", train_a, "--tracking-uri", uri]) == 2
    assert "is not an evaluation run of segtie evaluate" in capsys.readouterr().err
    evaluation = _evaluation(uri, train_a, 0.6)
    assert cli.main(["promote", evaluation, "--metric", "test_iou_mean",
                     "--tracking-uri", uri]) == 2
    assert "has no metric 'test_iou_mean'" in capsys.readouterr().err
    assert cli.main(["promote", "0" * 32, "--tracking-uri", uri]) == 2
    assert capsys.readouterr().err.startswith("error: MLflow: Run with id=")
    assert cli.main(["promote", evaluation, "--name", "cli", "--tracking-uri", uri]) == 0
    assert "models:/cli@champion = version 1 (first champion)" in capsys.readouterr().out
