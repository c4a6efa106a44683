"""End to end on the real DRIVE archive: patch training, sliding-window evaluation in
the field of view, the second observer as the human reference, MLflow read back.

The second observer's scores are checked against an independent computation straight
from ``DRIVE.zip`` (PIL + NumPy, no segtie code). Over all 20 test images it scores
Dice 0.7881 and accuracy 0.9473 inside the FOV (computed once with the same code;
Staal et al. 2004 report accuracy 0.9473).
"""

import csv
import dataclasses
import io
import json
import zipfile

import mlflow
import numpy as np
import pytest
from PIL import Image

from segtie import cli
from segtie import config as cfg
from segtie.training import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def evaluated(drive_data_config, tmp_path_factory):
    """A tiny model trained on 64x64 patches of 4 images, evaluated on 2 test cases."""
    root = tmp_path_factory.mktemp("drive_e2e")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    data = dataclasses.asdict(drive_data_config)
    data.update(image_size=[584, 568], patch_size=[64, 64], patches_per_image=4,
                batch_size=8, max_train_cases=4, max_eval_cases=2, shuffle_buffer=16,
                patch_foreground_prob=0.5)
    config = cfg.from_dict({
        "data": data,
        "model": {"base_filters": 4, "depth": 3, "num_iterations": 2, "norm": "instance"},
        "train": {"epochs": 2, "learning_rate": 0.003, "output_dir": str(root / "runs")},
        "eval": {"output_dir": str(root / "eval"), "num_overlays": 1,
                 "sliding_window": True, "window_size": [64, 64], "sw_batch_size": 16,
                 "bootstrap_samples": 0},
        "tracking": {"tracking_uri": uri, "experiment": "e2e-drive"},
    })
    result = train(config)
    assert cli.main(["evaluate", "--checkpoint", str(result.checkpoint)]) == 0
    (eval_dir,) = [p for p in (root / "eval").iterdir() if p.is_dir()]
    summary = json.loads((eval_dir / "summary.json").read_text())
    return result, eval_dir, summary, uri


def read_member(archive, suffix):
    (name,) = [n for n in archive.namelist() if n.endswith(suffix) and "__MACOSX" not in n]
    return np.asarray(Image.open(io.BytesIO(archive.read(name))).convert("L")) > 127


def observer_scores(archive_path, case_id):
    """Dice and accuracy of the 2nd observer against the 1st inside the FOV."""
    with zipfile.ZipFile(archive_path) as archive:
        first = read_member(archive, f"test/1st_manual/{case_id}_manual1.gif")
        second = read_member(archive, f"test/2nd_manual/{case_id}_manual2.gif")
        fov = read_member(archive, f"test/mask/{case_id}_test_mask.gif")
    tp = np.sum(first & second & fov)
    fp, fn = np.sum(~first & second & fov), np.sum(first & ~second & fov)
    tn = np.sum(~first & ~second & fov)
    return 2 * tp / (2 * tp + fp + fn), (tp + tn) / np.sum(fov)


def test_model_is_scored_in_the_fov_with_auc_and_accuracy(evaluated):
    result, eval_dir, summary, _ = evaluated
    assert summary["num_cases"] == 2 and summary["num_cases_with_roi"] == 2
    for name in ("dice", "accuracy", "auc", "ap"):
        assert summary[name]["count"] == 2, name
    assert 0.0 < summary["auc"]["mean"] <= 1.0
    assert summary["inference"]["sliding_window"] is True
    rows = list(csv.DictReader((eval_dir / "per_case.csv").open()))
    assert [int(r["height"]) for r in rows] == [584, 584]  # the original resolution


def test_second_observer_matches_an_independent_computation(evaluated, drive_archive):
    _, eval_dir, summary, _ = evaluated
    observer = summary["second_observer"]
    assert observer["num_cases"] == 2 and "auc" not in observer
    rows = list(csv.DictReader((eval_dir / "per_case_second_observer.csv").open()))
    expected = [observer_scores(drive_archive, r["id"]) for r in rows]
    for row, (dice, accuracy) in zip(rows, expected):
        assert float(row["dice"]) == pytest.approx(dice, abs=1e-6), row["id"]
        assert float(row["accuracy"]) == pytest.approx(accuracy, abs=1e-6), row["id"]
    assert observer["dice"]["mean"] == pytest.approx(np.mean([d for d, _ in expected]),
                                                     abs=1e-6)
    assert observer["accuracy"]["mean"] == pytest.approx(
        np.mean([a for _, a in expected]), abs=1e-6)
    # The published inter-observer agreement (all 20 images: 0.788 and 0.947).
    assert 0.75 < observer["dice"]["mean"] < 0.85
    assert 0.93 < observer["accuracy"]["mean"] < 0.96


def test_mlflow_holds_both_blocks(evaluated):
    result, _, summary, uri = evaluated
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("e2e-drive")
    (run,) = client.search_runs([exp.experiment_id], "tags.`segtie.kind` = 'evaluate'")
    assert run.data.tags["segtie.train_run_id"] == result.mlflow_run_id
    metrics = run.data.metrics
    assert metrics["test_auc_mean"] == pytest.approx(summary["auc"]["mean"])
    assert metrics["test_second_observer_dice_mean"] == pytest.approx(
        summary["second_observer"]["dice"]["mean"])
    pooled = summary["pooled"]  # all FOV pixels of the split as one pool, as the papers
    assert metrics["test_pooled_auc"] == pytest.approx(pooled["auc"])
    assert metrics["test_pooled_dice"] == pytest.approx(pooled["dice"])
    assert pooled["num_cases"] == 2 and 0.0 < pooled["auc"] <= 1.0


def test_pooled_block_counts_every_fov_pixel(evaluated, drive_archive):
    _, eval_dir, summary, _ = evaluated
    rows = list(csv.DictReader((eval_dir / "per_case.csv").open()))
    with zipfile.ZipFile(drive_archive) as archive:
        fov = sum(int(read_member(archive, f"test/mask/{r['id']}_test_mask.gif").sum())
                  for r in rows)
    assert summary["pooled"]["num_pixels"] == fov > 2 * 200_000
