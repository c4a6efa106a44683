"""Scores pooled over a split (segtie.evaluation.pooled): by hand, against
scikit-learn on the concatenated pixels, on real DRIVE annotations, and in the
evaluation's summary.json."""

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from segtie import evaluation, metrics
from segtie.evaluation.pooled import PooledScores
from test_metrics_real import load_drive

SIZE = [32, 32]


def square(r0, r1, c0, c1, value=1):
    out = np.zeros(SIZE, np.uint8)
    out[r0:r1, c0:c1] = value
    return out


def pooled_and_concatenated(pool, cases):
    """``pool``'s result over ``(truth, prediction, probabilities, roi)`` cases, and the
    ROI pixels concatenated for scikit-learn: reference and probabilities (or, without
    them, the prediction)."""
    for index, (truth, pred, probs, roi) in enumerate(cases):
        pool.add(truth, pred, probs, roi=roi, case_id=str(index))
    ys = np.concatenate([t[roi] for t, _, _, roi in cases])
    ss = np.concatenate([(pred if probs is None else probs)[roi]
                         for _, pred, probs, roi in cases])
    return pool.result(), ys, ss


def test_pooled_counts_by_hand():
    # Case a: TP 1, FP 1 (Dice 2/3); case b: TP 6, FN 2 (Dice 12/14).
    a_true, a_pred = np.zeros((2, 4), np.uint8), np.zeros((2, 4), np.uint8)
    a_true[0, 0] = a_pred[0, 0] = a_pred[0, 1] = 1
    b_true, b_pred = np.zeros((3, 4), np.uint8), np.zeros((3, 4), np.uint8)
    b_true[:2] = 1
    b_pred[:2, :3] = 1
    pool = PooledScores(accuracy=True)
    pool.add(a_true, a_pred)
    pool.add(b_true, b_pred)
    out = pool.result()
    assert pool.names() == ("dice", "iou", "precision", "recall", "specificity", "accuracy")
    # Pooled: TP 7, FP 1, FN 2, TN 7 + 4 = 10 of 20 pixels.
    assert out["dice"] == pytest.approx(14 / 17)
    assert out["iou"] == pytest.approx(7 / 10)
    assert out["precision"] == pytest.approx(7 / 8)
    assert out["recall"] == pytest.approx(7 / 9)
    assert out["specificity"] == pytest.approx(10 / 11)
    assert out["accuracy"] == pytest.approx(17 / 20)
    assert (out["num_cases"], out["num_pixels"]) == (2, 20)
    # ...which is not the mean of the cases' Dice (2/3 + 6/7) / 2 = 0.762.
    assert np.mean([metrics.dice(a_true, a_pred), metrics.dice(b_true, b_pred)]) \
        == pytest.approx((2 / 3 + 6 / 7) / 2)


def test_pooled_ranking_matches_sklearn_on_concatenated_pixels():
    rng = np.random.default_rng(3)
    cases = []
    for n, rate in ((20, 0.1), (25, 0.4), (15, 0.25)):
        truth = rng.random((n, n)) < rate
        probs = np.clip(0.3 * truth + 0.7 * rng.random((n, n)), 0, 1).astype(np.float32)
        cases.append((truth, probs > 0.5, probs, rng.random((n, n)) < 0.8))
    out, y, s = pooled_and_concatenated(PooledScores(keep_probabilities=True), cases)
    per_case = [metrics.auc(truth, probs, roi) for truth, _, probs, roi in cases]
    assert out["auc"] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert out["ap"] == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    assert out["dice"] == pytest.approx(skm.f1_score(y, s > 0.5), abs=1e-12)
    assert out["num_pixels"] == y.size
    assert abs(out["auc"] - np.mean(per_case)) > 1e-3  # two aggregations, two numbers


def test_pooled_errors_name_the_case():
    with pytest.raises(ValueError, match="no case"):
        PooledScores().result()
    pool = PooledScores(keep_probabilities=True)
    mask = square(0, 4, 0, 4)
    with pytest.raises(ValueError, match="'c1'.*need the case's probabilities"):
        pool.add(mask, mask, None, case_id="c1")
    with pytest.raises(ValueError, match=r"'c2'.*\[0, 1\]"):
        pool.add(mask, mask, np.full(SIZE, 3.0), case_id="c2")
    with pytest.raises(ValueError, match="'c3'.*shape"):
        pool.add(mask, mask, np.zeros((4, 4)), case_id="c3")


def test_pooled_drive_second_observer_matches_sklearn():
    """Real DRIVE test images 1-3: the second observer pooled against the first."""
    cases = [(first, second, None, fov) for first, second, fov in map(load_drive, (1, 2, 3))]
    out, y, p = pooled_and_concatenated(PooledScores(accuracy=True), cases)
    per_image = [metrics.dice(first, second, fov) for first, second, _, fov in cases]
    assert out["dice"] == pytest.approx(skm.f1_score(y, p), abs=1e-12)
    assert out["accuracy"] == pytest.approx(skm.accuracy_score(y, p), abs=1e-12)
    assert out["specificity"] == pytest.approx(skm.recall_score(y, p, pos_label=False))
    assert out["num_pixels"] == y.size > 3 * 200_000  # DRIVE's FOV: ~225k pixels each
    assert 0.7 < out["dice"] < 0.85 and out["dice"] != pytest.approx(np.mean(per_image))


def test_evaluate_summary_has_the_pooled_block(channel0_model, tmp_path):
    cases = [  # the model predicts channel 0 > 127: the image is the prediction
        {"id": "shifted", "image": np.dstack([square(8, 16, 12, 20, 255)] * 3),
         "mask": square(8, 16, 8, 16)},
        {"id": "both empty", "image": np.zeros(SIZE + [3], np.uint8),
         "mask": np.zeros(SIZE, np.uint8)},
        {"id": "missed", "image": np.zeros(SIZE + [3], np.uint8),
         "mask": square(8, 16, 8, 16)},
    ]
    _, summary = evaluation.evaluate(channel0_model, cases, SIZE, 0.5, tmp_path, 0,
                                     keep_probabilities=True)
    saved = json.loads((tmp_path / "summary.json").read_text())["pooled"]
    # TP 32, FP 32, FN 32 + 64 over 3 x 1024 pixels; the mean of the cases is 0.5.
    assert summary["dice"]["mean"] == pytest.approx(0.5)
    assert saved["dice"] == pytest.approx(64 / 192)
    assert saved["iou"] == pytest.approx(32 / 160)
    assert saved["recall"] == pytest.approx(32 / 128)
    assert saved["specificity"] == pytest.approx((3072 - 160) / (3072 - 128))
    assert saved["num_pixels"] == 3072 and saved["num_cases"] == 3
    assert saved["metrics"] == ["dice", "iou", "precision", "recall", "specificity",
                                "auc", "ap"]
    assert 0.5 < saved["auc"] <= 1 and not math.isnan(saved["ap"])
