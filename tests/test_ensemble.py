"""Ensembles: the mean of the members' logits, their own variables, the files, the CLI.

The unit checks use small random tied U-Nets; the command-line checks use the shared
real Kvasir-SEG training (tests/trained_model.py) and score it, alone and as a
two-member ensemble of itself, on real test frames.
"""

import json
import shutil

import keras
import mlflow
import numpy as np
import pytest
import yaml

from segtie import cli
from segtie.nn import build_unet
from segtie.nn.ensemble import build_ensemble
from model_args import LEVELS
from trained_model import trained_run

SMALL = dict(base_filters=4, depth=2, num_iterations=2)
BASIS = dict(LEVELS, base_filters=8, tie_decoder=True, basis_size=3, basis_unique=1,
             norm="instance")  # tests/test_filter_basis_unet.py's EXPORT


def _members(num_classes=1, count=2):
    models = []
    for seed in range(count):
        keras.utils.set_random_seed(seed)
        models.append(build_unet(num_classes=num_classes, **SMALL))
    return models


def _images():
    return np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)


def test_output_is_the_mean_of_the_members_logits():
    members = _members(count=3)
    x = _images()
    expected = sum(m.predict(x, verbose=0) for m in members) / 3
    got = build_ensemble(members).predict(x, verbose=0)
    assert got.shape == (2, 32, 32, 1)
    assert np.abs(expected).max() > 1e-3  # a real signal, not zeros
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_members_keep_their_own_variables():
    members = _members()
    ensemble = build_ensemble(members)
    assert ensemble.count_params() == sum(m.count_params() for m in members)
    own = {id(v) for m in members for v in m.weights}
    assert {id(v) for v in ensemble.weights} == own  # shared, not copied
    assert len(ensemble.weights) == sum(len(m.weights) for m in members)


def test_keras_round_trip(tmp_path):
    members = _members()
    ensemble = build_ensemble(members)
    x = _images()
    ensemble.save(tmp_path / "e.keras")
    loaded = keras.saving.load_model(tmp_path / "e.keras", safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), ensemble.predict(x, verbose=0))
    assert len(loaded.weights) == len(ensemble.weights)
    assert loaded.count_params() == ensemble.count_params()


def test_refuses_one_member_and_different_classes():
    with pytest.raises(ValueError, match="at least 2 members, received 1"):
        build_ensemble(_members(count=1))
    one, three = _members(num_classes=1, count=1)[0], _members(num_classes=3, count=1)[0]
    with pytest.raises(ValueError, match="member 1 .* output classes 3, member 0 .* has 1"):
        build_ensemble([one, three])


@pytest.fixture(scope="module")
def trained(kvasir_data_config, tmp_path_factory):
    return trained_run(kvasir_data_config, tmp_path_factory)


def _dice(out_dir) -> float:
    """Mean Dice of the newest evaluation in ``out_dir``."""
    summaries = sorted(out_dir.glob("eval-*/summary.json"))
    return json.loads(summaries[-1].read_text())["dice"]["mean"]


@pytest.mark.slow
def test_cli_ensemble_of_a_run_with_itself_scores_as_the_run(trained, tmp_path, capsys):
    """Path and MLflow URI of one real checkpoint: the mean equals the model's logits."""
    best, uri = str(trained.result.checkpoint), trained.run_uri
    out = tmp_path / "ens"
    assert cli.main(["ensemble", "--checkpoint", best, "--checkpoint", uri, "--output",
                     str(out), "--tracking-uri", trained.tracking_uri]) == 0
    assert "2 checkpoints, " in capsys.readouterr().out
    listing = json.loads((out / "ensemble.json").read_text())
    run_id = trained.result.mlflow_run_id
    assert [m["training_run_id"] for m in listing["members"]] == [run_id, run_id]
    assert listing["parameters"] == 2 * trained.result.num_params
    eval_dir = tmp_path / "eval"
    sets = ["--set", f"tracking.tracking_uri={trained.tracking_uri}",
            "--set", f"eval.output_dir={eval_dir}"]
    assert cli.main(["evaluate", "--checkpoint", best, "--split", "test"] + sets) == 0
    single = _dice(eval_dir)
    assert cli.main(["evaluate", "--checkpoint", str(out / "ensemble.keras"),
                     "--split", "test"] + sets) == 0
    assert _dice(eval_dir) == pytest.approx(single, abs=1e-6)
    assert f"training runs {run_id}, {run_id} (an ensemble)" in capsys.readouterr().out
    client = mlflow.MlflowClient(trained.tracking_uri)
    tagged = client.search_runs(
        [client.get_run(run_id).info.experiment_id],
        filter_string=f"tags.`segtie.ensemble_members` = '{run_id},{run_id}'")
    assert len(tagged) == 1  # the ensemble's evaluation run, not the single one
    member = client.get_run(run_id).data.tags  # the member links to both evaluations
    assert member["segtie.ensemble_eval_run_id.test"] == tagged[0].info.run_id
    assert member["segtie.eval_run_id.test"] != tagged[0].info.run_id
    assert cli.main(["ensemble", "--checkpoint", best, "--checkpoint", best,
                     "--output", str(out)]) == 2
    assert "exists; give another --output or --overwrite" in capsys.readouterr().err
    # Its export keeps the members: export.json lists them, its evaluation is tagged.
    assert cli.main(["export", "--checkpoint", str(out / "ensemble.keras"), "--variants",
                     "float32", "--no-saved-model", "--set",
                     f"tracking.tracking_uri={trained.tracking_uri}"]) == 0
    exported = json.loads((out / "export" / "export.json").read_text())
    assert [m["training_run_id"] for m in exported["ensemble_members"]] == [run_id, run_id]
    capsys.readouterr()
    assert cli.main(["evaluate", "--checkpoint", str(out / "export" / "model_float32.tflite"),
                     "--split", "test"] + sets) == 0
    assert f"training runs {run_id}, {run_id} (an ensemble)" in capsys.readouterr().out
    assert len(client.search_runs(
        [client.get_run(run_id).info.experiment_id],
        filter_string=f"tags.`segtie.ensemble_members` = '{run_id},{run_id}'")) == 3


@pytest.mark.slow
def test_members_trained_for_another_task_are_refused(trained, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(trained.result.run_dir, other)
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["data"]["image_size"] = [96, 96]
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    argv = ["ensemble", "--checkpoint", str(trained.result.checkpoint),
            "--checkpoint", str(other / trained.result.checkpoint.name),
            "--output", str(tmp_path / "ens")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "must agree on `data.image_size`" in err and "[64, 64]" in err and "[96, 96]" in err
    assert not (tmp_path / "ens" / "ensemble.keras").exists()


def test_export_counts_each_members_filter_basis():
    """Two basis U-Nets' variables share their paths: the LiteRT filter count the export
    checks the file against must still be the sum (counted by layer)."""
    from segtie.export import basis_filter_count, conv_kernel_count

    members = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        members.append(build_unet(**BASIS))
    single = basis_filter_count(members[0])
    assert single == (1 + 6 + 6) + (1 + 4 + 4)  # as tests/test_filter_basis_unet.py
    ensemble = build_ensemble(members)
    assert basis_filter_count(ensemble) == 2 * single
    assert conv_kernel_count(ensemble) == 2 * conv_kernel_count(members[0])
