"""DRIVE-style evaluation: metrics inside a field of view, accuracy, second observer.

Synthetic cases with a model whose output is known (as in test_evaluation.py), so
every number is hand-computed; the real DRIVE run is tests/test_drive_end_to_end.py.
"""

import csv
import json

import numpy as np
import pytest

from segtie.cli import evaluate as evaluate_cli
from segtie import evaluation, metrics

SIZE = [32, 32]


@pytest.fixture(scope="module")
def model(channel0_model):
    return channel0_model


def box(rows, cols):
    mask = np.zeros(SIZE, np.uint8)
    mask[rows, cols] = 1
    return mask


def image_of(mask):
    image = np.zeros(SIZE + [3], np.uint8)
    image[..., 0] = mask * 255
    return image


FOV = box(slice(0, 32), slice(0, 16))  # 512 pixels: the left half


def cases():
    reference = box(slice(8, 16), slice(8, 16))  # 64 pixels, all inside the FOV
    return [
        # Inside the FOV the prediction keeps columns 12-15 (32 px) and the second
        # observer columns 10-15 (48 px); the parts right of column 15 do not count.
        {"id": "01", "image": image_of(box(slice(8, 16), slice(12, 20))),
         "mask": reference, "roi": FOV, "mask2": box(slice(8, 16), slice(10, 18))},
        {"id": "02", "image": image_of(reference), "mask": reference, "roi": FOV},
    ]


def test_accuracy_hand_computed_and_conventions():
    y_true, y_pred = box(slice(0, 2), slice(0, 4)), box(slice(0, 2), slice(2, 6))
    # 32x32: TP 4, FP 4, FN 4, TN 1012.
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(1016 / 1024)
    assert metrics.accuracy(y_true, y_pred, roi=box(slice(0, 2), slice(0, 8))) == 0.5
    assert metrics.accuracy(np.zeros(SIZE), np.zeros(SIZE)) == 1.0
    assert np.isnan(metrics.accuracy(y_true, y_pred, roi=np.zeros(SIZE)))


def test_evaluate_in_the_fov_with_a_second_observer(model, tmp_path):
    rows, summary = evaluation.evaluate(model, cases(), SIZE, 0.5, tmp_path, 0,
                                        keep_probabilities=True, accuracy=True)
    names = list(summary["metrics"])
    assert names[:7] == ["dice", "iou", "precision", "recall", "specificity", "accuracy",
                         "hd95"] and names[-2:] == ["auc", "ap"]
    # Case 01 in the FOV: TP 32, FP 0, FN 32, TN 512 - 64 = 448.
    assert rows[0]["dice"] == pytest.approx(64 / 96)
    assert rows[0]["accuracy"] == pytest.approx(480 / 512)
    assert rows[1]["dice"] == 1.0 and rows[1]["accuracy"] == 1.0
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["num_cases_with_roi"] == 2 and saved["auc"]["count"] == 2
    observer = saved["second_observer"]
    assert observer["num_cases"] == 1 and "auc" not in observer["metrics"]
    # Second observer in the FOV: TP 48, FP 0, FN 16, TN 448.
    assert observer["dice"]["mean"] == pytest.approx(96 / 112)
    assert observer["accuracy"]["mean"] == pytest.approx(496 / 512)
    assert observer["recall"]["mean"] == pytest.approx(0.75)
    observer_rows = list(csv.DictReader((tmp_path / "per_case_second_observer.csv").open()))
    assert [r["id"] for r in observer_rows] == ["01"]
    assert list(observer_rows[0]) == ["id", *observer["metrics"]]
    # Pooled over both cases' FOV pixels: TP 32 + 64, FN 32, TN 448 + 448 of 1024,
    # against the mean of the cases' Dice (64/96 + 1) / 2.
    pooled = saved["pooled"]
    assert saved["dice"]["mean"] == pytest.approx((64 / 96 + 1) / 2)
    assert pooled["dice"] == pytest.approx(192 / 224)
    assert pooled["accuracy"] == pytest.approx((96 + 896) / 1024)
    assert pooled["num_pixels"] == 1024 and pooled["metrics"][-2:] == ["auc", "ap"]


def test_print_table_shows_the_second_observer(model, tmp_path, capsys):
    _, summary = evaluation.evaluate(model, cases(), SIZE, 0.5, tmp_path, 0, accuracy=True)
    evaluate_cli.print_table(summary, "training run run-x", tmp_path)
    out = capsys.readouterr().out
    head, observer = out.split("second observer vs first")
    assert "accuracy" in head and "(1 cases)" in observer and "accuracy" in observer
    assert "inside the ROI (field of view) for 2 cases" in out
    assert "pooled over the 1,024 pixels of all 2 cases" in out
    assert f"dice {192 / 224:.4f}" in out.split("pooled over")[1]


def test_evaluate_without_a_fov_is_unchanged(model, tmp_path):
    plain = [{k: v for k, v in c.items() if k not in ("roi", "mask2")} for c in cases()]
    rows, summary = evaluation.evaluate(model, plain, SIZE, 0.5, tmp_path, 0)
    assert summary["metrics"] == list(metrics.METRIC_NAMES)
    assert "second_observer" not in summary and summary["num_cases_with_roi"] == 0
    # Without the FOV the prediction's columns 16-19 count: TP 32, FP 32, FN 32.
    assert rows[0]["dice"] == pytest.approx(0.5)


def test_drive_recipe_loads_and_is_consistent():
    from pathlib import Path

    from segtie.config import load_config

    config = load_config(Path(__file__).parents[1] / "configs" / "drive.yaml")
    data, ev = config.data, config.eval
    assert data.name == "drive" and data.patch_size == ev.window_size
    assert ev.sliding_window and ev.keep_probabilities and ev.accuracy
    assert config.model.num_iterations == 2 and config.model.norm == "instance"
    assert all(side % 2 ** (config.model.depth - 1) == 0 for side in data.image_size)
    assert abs(data.image_size[1] - 565) <= 4 and data.image_size[0] == 584
