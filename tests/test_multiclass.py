"""Multi-class on the binary code path: config check, inference, scoring, reports.

The model is a 1x1 convolution whose argmax class is read off the red channel
(0 -> class 0, 128 -> class 1, 255 -> class 2), so every score is hand-computed.
"""

import csv
import json
import math

import keras
import numpy as np
import pytest
from skimage import io

from segtie import evaluation, inference
from segtie.evaluation import scoring
from segtie.config import from_dict, implied_num_classes
from segtie.inference import InferenceOptions, predict_logits
from segtie.reports import save_overlay_grid

SIZE = [32, 32]
LABEL_MAP = {0: 0, 100: 1, 200: 2}


@pytest.fixture(scope="module")
def model():
    """Logits (3 - 10 x, 0, 10 x - 7) of x = red / 255: classes 0, 1, 2 at 0, 128, 255."""
    net = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 1)])
    kernel = np.zeros((1, 1, 3, 3), np.float32)
    kernel[0, 0, 0] = [-10.0, 0.0, 10.0]
    net.layers[0].set_weights([kernel, np.array([3.0, 0.0, -7.0], np.float32)])
    return net


def image_of(labels):
    """An image whose red channel encodes ``labels`` for :func:`model`."""
    image = np.zeros(labels.shape + (3,), np.uint8)
    image[..., 0] = np.array([0, 128, 255], np.uint8)[labels]
    image[..., 2] = 50  # ignored by the model
    return image


def label_map(*boxes):
    """A (32, 32) label map with ``(class, rows, cols)`` rectangles."""
    labels = np.zeros(SIZE, np.uint8)
    for c, rows, cols in boxes:
        labels[rows, cols] = c
    return labels


CASES = [  # (id, reference, prediction drawn into the image)
    ("shifted", label_map((1, slice(8, 16), slice(8, 16)), (2, slice(20, 28), slice(4, 12))),
     label_map((1, slice(8, 16), slice(12, 20)), (2, slice(20, 28), slice(4, 12)))),
    ("extra class", label_map((1, slice(0, 8), slice(0, 8))),
     label_map((1, slice(0, 8), slice(0, 8)), (2, slice(20, 24), slice(20, 24)))),
]


def cases():
    return [{"id": i, "image": image_of(pred), "mask": ref} for i, ref, pred in CASES]


def test_config_num_classes_must_match_the_label_map():
    folder = {"name": "folder", "folder": "x", "label_map": LABEL_MAP}
    config = from_dict({"data": folder, "model": {"num_classes": 3}})
    assert implied_num_classes(config.data) == 3
    with pytest.raises(ValueError, match=r"`model.num_classes` must be 3: `data.label_map` ="
                                         r" \{0: 0, 100: 1, 200: 2\} has classes 0..2.*"
                                         r"received `model.num_classes` = 1"):
        from_dict({"data": folder})
    two = {**folder, "label_map": {0: 0, 255: 1}}
    assert from_dict({"data": two}).model.num_classes == 1
    with pytest.raises(ValueError, match=r"must be 1: `data.label_map` = \{0: 0, 255: 1\} "
                                         r"has two classes.*received `model.num_classes` = 2"):
        from_dict({"data": two, "model": {"num_classes": 2}})
    with pytest.raises(ValueError, match=r"must be 1: binary masks \(`data.name` = "
                                         r"'kvasir_seg', `data.label_map` = null\)"):
        from_dict({"model": {"num_classes": 3}})


@pytest.mark.parametrize("sliding", [False, True])
def test_inference_keeps_the_class_channels(model, sliding):
    labels = label_map((1, slice(3, 20), slice(5, 9)), (2, slice(0, 4), slice(0, 32)))
    options = InferenceOptions(SIZE, sliding_window=sliding, window_size=[16, 16],
                               num_classes=3, tta_mirror=True)
    logits = predict_logits(model, image_of(labels), options)
    assert logits.shape == (32, 32, 3)
    np.testing.assert_array_equal(np.argmax(logits, -1), labels)
    probs = inference.predict_probabilities(model, image_of(labels), SIZE, options)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match=r"logits of shape \(batch, \*spatial, 1\) \(`num_classes` = 1\)"):
        predict_logits(model, image_of(labels), InferenceOptions(SIZE))


def test_scoring_hand_computed():
    (_, ref, pred), (_, ref2, pred2) = CASES
    names = scoring.metric_names(3, accuracy=True)
    assert names[:3] == ("dice", "dice_class1", "iou_class1")
    assert names.index("accuracy_class1") == names.index("specificity_class1") + 1
    row = scoring.score_prediction(ref, pred.astype(np.int32), 3, accuracy=True)
    assert list(row) == list(names)
    # Class 1: 8x8 squares 4 columns apart -> 2 * 32 / 128; class 2 exact.
    assert row["dice_class1"] == 0.5 and row["iou_class1"] == pytest.approx(1 / 3)
    assert row["dice_class2"] == 1.0 and row["dice"] == 0.75
    assert row["accuracy_class1"] == (1024 - 64) / 1024  # 32 FP + 32 FN of 1024
    row2 = scoring.score_prediction(ref2, pred2.astype(np.int32), 3)
    # Class 2 absent from the reference but predicted: NaN, skipped by the case mean.
    assert math.isnan(row2["dice_class2"]) and row2["dice"] == 1.0
    with pytest.raises(ValueError, match=r"Case 'c': `mask` values must be class indices "
                                         r"0..2 .*\[5\]"):
        scoring.score_prediction(ref + 3 * (ref == 2), pred.astype(np.int32), 3,
                                 case_id="c")


def test_predict_labels_largest_component_per_class():
    probs = np.zeros((6, 6, 3), np.float32)
    probs[..., 0] = 0.5
    probs[0:2, 0:2, 1] = probs[4, 4, 1] = 0.9  # class 1: a 2x2 blob and a stray pixel
    probs[3:6, 0, 2] = 0.9
    labels = inference.predict_labels(probs, 3, 0.5, keep_largest=True)
    expected = np.zeros((6, 6), np.int32)
    expected[0:2, 0:2], expected[3:6, 0] = 1, 2
    np.testing.assert_array_equal(labels, expected)


def test_evaluate_reports_per_class(model, tmp_path):
    options = InferenceOptions(SIZE, num_classes=3)
    rows, summary = evaluation.evaluate(model, cases(), SIZE, 0.5, tmp_path, 2,
                                        inference_options=options, keep_probabilities=True)
    header = (tmp_path / "per_case.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["id", "dice", "dice_class1", "iou_class1"]
    assert "auc_class2" in header and header[-2:] == ["height", "width"]
    csv_rows = list(csv.DictReader((tmp_path / "per_case.csv").open()))
    assert [float(r["dice_class1"]) for r in csv_rows] == [0.5, 1.0]
    assert [r["dice"] for r in rows] == [0.75, 1.0]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["num_classes"] == 3 and saved["metrics"] == header[1:-2]
    assert saved["dice"]["mean"] == pytest.approx(0.875)
    assert saved["dice_class1"]["mean"] == pytest.approx(0.75)
    assert saved["dice_class2"] == {**saved["dice_class2"], "mean": 1.0, "count": 1,
                                    "num_nan": 1}
    # AUC of "shifted", class 1: 64 positives (32 scored high), 960 negatives (32 high),
    # ties count one half: (32 * 928 + 32 * 32 / 2 + 32 * 928 / 2) / (64 * 960).
    shifted_auc = (32 * 928 + 32 * 32 / 2 + 32 * 928 / 2) / (64 * 960)
    assert rows[0]["auc_class1"] == pytest.approx(shifted_auc) and rows[1]["auc_class1"] == 1
    assert "second_observer" not in saved
    overlay = io.imread(tmp_path / "overlays" / "000_shifted.png")
    assert overlay.shape == (14 + 256, 3 * 256, 3)
    assert (tmp_path / "best_median_worst.png").is_file()


def test_label_overlay_colours_each_class(tmp_path):
    labels = label_map((1, slice(0, 16), slice(0, 32)), (2, slice(16, 32), slice(0, 32)))
    image = np.full((32, 32, 3), 128, np.uint8)
    path = save_overlay_grid([image], [labels], [labels], tmp_path / "g.png",
                             row_height=32, multiclass=True)
    grid = io.imread(path).astype(int)
    top, bottom = grid[8, 32 + 16], grid[24, 32 + 16]  # inside each class, 2nd column
    assert top[2] > top[0] and bottom[0] > bottom[2]  # class 1 blue, class 2 orange
    np.testing.assert_array_equal(grid[:, 32:64], grid[:, 64:96])  # same colours
