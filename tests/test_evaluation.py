"""Tests for segtie.evaluation and segtie.reports with a model whose output is known."""

import csv
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage import io

from segtie import evaluation, inference
from segtie.data import pipeline, preprocess
from segtie.reports import save_overlay_grid

SIZE = [32, 32]


@pytest.fixture(scope="module")
def model(channel0_model):
    return channel0_model


def image_from(channel0):
    image = np.zeros(channel0.shape + (3,), np.uint8)
    image[..., 0] = channel0
    image[..., 1] = 77  # ignored by the model
    return image


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_predict_probabilities_constant_image(model):
    for value in (0, 255, 200):
        image = image_from(np.full((45, 70), value, np.uint8))
        probs = inference.predict_probabilities(model, image, SIZE)
        assert probs.shape == (45, 70) and probs.dtype == np.float32
        np.testing.assert_allclose(probs, sigmoid(10 * (value / 255 - 0.5)), atol=1e-5)


def test_predict_probabilities_resizes_logits(model):
    channel0 = np.zeros((48, 80), np.uint8)
    channel0[:, :37] = 255
    image = image_from(channel0)
    probs = inference.predict_probabilities(model, image, SIZE)
    logits = 10.0 * (preprocess.preprocess_image(image, SIZE)[..., :1] - 0.5)
    resized = tf.image.resize(logits[None], (48, 80), method="bilinear")[0, ..., 0]
    np.testing.assert_allclose(probs, sigmoid(resized.numpy()), atol=1e-5)
    # Resizing probabilities instead would give a different (softer) edge.
    probs_resized = tf.image.resize(sigmoid(logits)[None], (48, 80))[0, ..., 0].numpy()
    assert np.abs(probs - probs_resized).max() > 0.05
    assert probs[:, :30].min() > 0.99 and probs[:, 45:].max() < 0.01


def test_predict_probabilities_rejects_bad_shapes(model):
    with pytest.raises(ValueError, match=r"\(height, width, 3\).*\(8, 8\)"):
        inference.predict_probabilities(model, np.zeros((8, 8), np.uint8), SIZE)
    two_channels = keras.Sequential([keras.Input((None, None, 3)),
                                     keras.layers.Conv2D(2, 1)])
    with pytest.raises(ValueError, match="logits of shape"):
        inference.predict_probabilities(two_channels, np.zeros((8, 8, 3), np.uint8), SIZE)


def synthetic_cases():
    """Cases at the model size (no resampling, exact numbers) and one larger case."""
    square = np.zeros(SIZE, np.uint8)
    square[8:16, 8:16] = 1
    shifted = np.zeros(SIZE, np.uint8)
    shifted[8:16, 12:20] = 255
    big_mask = np.zeros((48, 40), np.uint8)
    big_mask[8:40, 8:32] = 1
    return [
        {"id": "shifted", "image": image_from(shifted), "mask": square},
        {"id": "both empty", "image": image_from(np.zeros(SIZE, np.uint8)),
         "mask": np.zeros(SIZE, np.uint8)},
        {"id": "missed", "image": image_from(np.zeros(SIZE, np.uint8)), "mask": square},
        {"id": "big/odd", "image": image_from(big_mask * 255), "mask": big_mask},
    ]


def test_evaluate_writes_reports(model, tmp_path):
    rows, summary = evaluation.evaluate(model, iter(synthetic_cases()), SIZE, 0.5,
                                        tmp_path, num_overlays=2)
    # Hand-computed: 8x8 squares shifted by 4 columns -> overlap 32 of 64 + 64.
    expected = {"shifted": (0.5, 1 / 3, 4.0), "both empty": (1.0, 1.0, 0.0),
                "missed": (0.0, 0.0, math.hypot(*SIZE))}  # the diagonal penalty
    with (tmp_path / "per_case.csv").open() as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["id"] for r in csv_rows] == ["shifted", "both empty", "missed", "big/odd"]
    for row, csv_row in zip(rows, csv_rows):
        if row["id"] in expected:
            np.testing.assert_allclose(
                [row["dice"], row["iou"], row["hd95"]], expected[row["id"]])
        np.testing.assert_allclose([float(csv_row[k]) for k in ("dice", "iou", "hd95")],
                                   [row["dice"], row["iou"], row["hd95"]])
    assert rows[3]["dice"] > 0.9
    assert (csv_rows[3]["height"], csv_rows[3]["width"]) == ("48", "40")

    saved = json.loads((tmp_path / "summary.json").read_text())
    dices = [0.5, 1.0, 0.0, rows[3]["dice"]]
    assert saved["dice"]["mean"] == pytest.approx(np.mean(dices))
    assert saved["dice"]["count"] == 4 and saved["hd95"]["num_nan"] == 0
    assert saved["hd95"]["count"] == 4  # the missed case counts, with its penalty
    assert saved["hd95"]["num_penalized"] == saved["assd"]["num_penalized"] == 1
    assert "num_penalized" not in saved["dice"]
    assert saved["num_cases"] == 4 and saved["threshold"] == 0.5
    assert saved["image_size"] == SIZE and saved["hd95_units"] == "pixels"
    assert summary["dice"] == saved["dice"]

    overlays = sorted(p.name for p in (tmp_path / "overlays").iterdir())
    assert overlays == ["000_shifted.png", "001_both_empty.png"]
    assert io.imread(tmp_path / "overlays" / overlays[0]).shape == (14 + 256, 3 * 256, 3)


def test_evaluate_spacing_and_errors(model, tmp_path):
    cases = synthetic_cases()[:1]
    rows, summary = evaluation.evaluate(model, cases, SIZE, 0.5, tmp_path, 0,
                                        spacing=(0.5, 0.5))
    assert rows[0]["hd95"] == pytest.approx(2.0) and summary["hd95_units"] == "mm"
    assert not (tmp_path / "overlays").exists()
    with pytest.raises(ValueError, match="empty"):
        evaluation.evaluate(model, [], SIZE, 0.5, tmp_path, 0)
    bad = dict(cases[0], mask=np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="'shifted'.*same height and width"):
        evaluation.evaluate(model, [bad], SIZE, 0.5, tmp_path, 0)
    bad = dict(cases[0], mask=cases[0]["mask"] * 255)
    with pytest.raises(ValueError, match="'shifted'.*0 and 1"):
        evaluation.evaluate(model, [bad], SIZE, 0.5, tmp_path, 0)


def test_save_overlay_grid_mixed_sizes(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (30, 40, 3), dtype=np.uint8),
              rng.random((50, 20, 3)).astype(np.float32),
              rng.random((10, 10))]
    masks = [np.zeros((30, 40), np.uint8), np.ones((50, 20), bool), np.eye(10)]
    masks[0][5:25, 5:35] = 1
    preds = [np.zeros((30, 40)), np.zeros((50, 20, 1)), np.eye(10)]
    path = save_overlay_grid(images, masks, preds, tmp_path / "sub" / "grid.png",
                             titles=["a", "b", "c"], row_height=32)
    grid = io.imread(path)
    # widths 3 * round(40 * 32 / 30) = 129, 3 * 13, 3 * 32; rows 14 + 32 each.
    assert grid.shape == (3 * (14 + 32), 129, 3) and grid.dtype == np.uint8
    # Second panel of the first row: ground truth filled in green.
    inside = grid[14 + 16, 43 + 21].astype(int)
    assert inside[1] > inside[0] and inside[1] > inside[2]
    # Padding right of the narrow second row is black.
    assert grid[46 + 14 + 5, 100:].max() == 0


def test_save_overlay_grid_errors(tmp_path):
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="same, non-zero number"):
        save_overlay_grid([image], [], [np.zeros((8, 8))], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"row 0: mask .*\(8, 8\).*\(8, 9\)"):
        save_overlay_grid([image], [np.zeros((8, 9))], [np.zeros((8, 8))],
                          tmp_path / "x.png")


def test_evaluate_full_suite_reports(model, tmp_path):
    cases = synthetic_cases()
    roi = np.ones(SIZE, np.uint8)
    roi[:, 16:] = 0  # "shifted": the prediction's right half is cut away
    cases[0] = dict(cases[0], roi=roi)
    options = inference.InferenceOptions(image_size=SIZE, sliding_window=True,
                                          overlap=0.5, tta_mirror=True)
    rows, summary = evaluation.evaluate(
        model, cases, SIZE, 0.5, tmp_path, 0, spacing=(0.5, 0.5),
        inference_options=options, nsd_tolerance=1.0, largest_component=True,
        keep_probabilities=True, bootstrap_samples=200, seed=0, progress=True,
        num_cases=len(cases))
    header = (tmp_path / "per_case.csv").read_text().splitlines()[0].split(",")
    assert header == ["id", "dice", "iou", "precision", "recall", "specificity", "hd95",
                      "assd", "nsd", "auc", "ap", "height", "width"]
    # Inside the ROI (columns < 16): true 8x8 at columns 8-15, prediction columns 12-15.
    assert rows[0]["dice"] == pytest.approx(2 * 32 / (64 + 32))
    assert rows[0]["precision"] == 1.0 and rows[0]["recall"] == 0.5
    assert math.isnan(rows[1]["auc"]) and rows[1]["dice"] == 1.0  # both empty
    assert rows[3]["auc"] > 0.99
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["distance_units"] == "mm" and saved["bootstrap_samples"] == 200
    assert saved["dice"]["ci_low"] <= saved["dice"]["mean"] <= saved["dice"]["ci_high"]
    # NaN: auc of the empty reference ("both empty"), precision of "missed" (0 / 0).
    assert saved["auc"]["num_nan"] == 1 and saved["precision"]["num_nan"] == 1
    assert saved["inference"]["sliding_window"] and saved["inference"]["largest_component"]
    ranked = io.imread(tmp_path / "best_median_worst.png")
    assert ranked.shape == (3 * (14 + 256), 3 * 256, 3)
    assert io.imread(tmp_path / "dice_boxplot.png").ndim == 3
    from segtie.reports import format_table
    table = format_table(summary, ("dice", "hd95"))
    assert "95% CI of mean" in table and table.splitlines()[1].startswith("dice")


class NanModel:
    def __call__(self, batch, training=False):
        return np.full(np.asarray(batch).shape[:3] + (1,), np.nan, np.float32)


def test_evaluate_bad_input_names_the_case(model, tmp_path):
    case = synthetic_cases()[0]
    with pytest.raises(ValueError, match=r"'shifted'.*NaN probabilities"):
        evaluation.evaluate(NanModel(), [case], SIZE, 0.5, tmp_path, 0)
    with pytest.raises(ValueError, match=r"'shifted'.*spacing"):
        evaluation.evaluate(model, [dict(case, spacing=(0.0, 1.0))], SIZE, 0.5,
                            tmp_path, 0)
    with pytest.raises(ValueError, match=r"'b'.*with and without a spacing"):
        evaluation.evaluate(model, [dict(case, id="a", spacing=(1.0, 1.0)),
                                    dict(case, id="b")], SIZE, 0.5, tmp_path, 0)
