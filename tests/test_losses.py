"""Losses and the Dice metric on hand-computed cases, binary and multi-class."""

import math

import numpy as np
import pytest

from segtie.losses import (DiceBCELoss, DiceCELoss, bce_loss, categorical_ce_loss,
                           soft_dice_loss, soft_dice_multiclass_loss)
from segtie.metrics.validation import DiceMetric, hard_dice, hard_dice_multiclass


def _t(values):
    return np.asarray(values, dtype="float32").reshape(1, 2, 2, 1)


Y = _t([1, 1, 0, 0])


def test_soft_dice_at_zero_logits_is_one_half():
    # p = 0.5 everywhere: 2 * (0.5 + 0.5) / (2 + 2) = 0.5
    np.testing.assert_allclose(soft_dice_loss(Y, _t([0, 0, 0, 0])), [0.5], atol=1e-5)


def test_soft_dice_of_confident_correct_prediction_is_near_zero():
    np.testing.assert_allclose(soft_dice_loss(Y, _t([20, 20, -20, -20])), [0.0], atol=1e-5)


def test_bce_at_zero_logits_is_log_two():
    np.testing.assert_allclose(bce_loss(Y, _t([0, 0, 0, 0])), [math.log(2)], rtol=1e-5)


def test_combined_loss_weights_its_terms():
    loss = DiceBCELoss(dice_weight=2.0, bce_weight=3.0)
    np.testing.assert_allclose(float(loss(Y, _t([0, 0, 0, 0]))), 2 * 0.5 + 3 * math.log(2),
                               rtol=1e-4)
    with pytest.raises(ValueError, match="dice_weight"):
        DiceBCELoss(dice_weight=0.0, bce_weight=0.0)


def test_hard_dice_hand_computed_and_empty_case():
    # prediction [1, 0, 1, 0] vs reference [1, 1, 0, 0]: 2*1 / (2 + 2) = 0.5
    np.testing.assert_allclose(hard_dice(Y, _t([5, -5, 5, -5])), [0.5])
    np.testing.assert_allclose(hard_dice(_t([0, 0, 0, 0]), _t([-5, -5, -5, -5])), [1.0])


def test_dice_metric_is_mean_over_images():
    metric = DiceMetric()
    y = np.concatenate([Y, Y])
    logits = np.concatenate([_t([5, -5, 5, -5]), _t([5, 5, -5, -5])])
    metric.update_state(y, logits)
    metric.update_state(Y, _t([-5, -5, -5, -5]))  # Dice 0
    np.testing.assert_allclose(float(metric.result()), (0.5 + 1.0 + 0.0) / 3, rtol=1e-6)
    metric.reset_state()
    assert float(metric.result()) == 0.0


# --- multi-class (softmax logits, integer labels) -----------------------------------

def _labels(values):
    return np.asarray(values, dtype="int32").reshape(1, 2, 2, 1)


def _logits3(rows):
    """Four pixels' logits over 3 classes -> (1, 2, 2, 3)."""
    return np.asarray(rows, dtype="float32").reshape(1, 2, 2, 3)


LABELS = _labels([0, 1, 2, 2])


def test_multiclass_soft_dice_at_zero_logits_hand_computed():
    # p = 1/3 everywhere. Class 1: 2 * 1/3 / (4/3 + 1) = 2/7; class 2: 2 * 2/3 / (4/3 + 2)
    # = 2/5. Loss = 1 - (2/7 + 2/5) / 2 (background left out).
    loss = soft_dice_multiclass_loss(LABELS, np.zeros((1, 2, 2, 3), "float32"))
    np.testing.assert_allclose(loss, [1 - (2 / 7 + 2 / 5) / 2], rtol=1e-4)


def test_categorical_ce_hand_computed():
    # Pixel 0: logits (0, 0, 0), label 0 -> log 3; pixels 1-3: logit 2 on the right
    # class, 0 elsewhere -> log(1 + 2 / e**2). Mean over the 4 pixels.
    rows = [[0, 0, 0], [0, 2, 0], [0, 0, 2], [0, 0, 2]]
    expected = (math.log(3) + 3 * math.log(1 + 2 * math.exp(-2))) / 4
    np.testing.assert_allclose(categorical_ce_loss(LABELS, _logits3(rows)), [expected],
                               rtol=1e-5)


def test_dice_ce_loss_chooses_from_the_channel_count():
    loss = DiceCELoss(dice_weight=2.0, ce_weight=3.0)
    zeros3 = np.zeros((1, 2, 2, 3), "float32")
    np.testing.assert_allclose(
        float(loss(LABELS, zeros3)), 2 * (1 - (2 / 7 + 2 / 5) / 2) + 3 * math.log(3),
        rtol=1e-4)
    binary = DiceBCELoss(dice_weight=2.0, bce_weight=3.0)
    logits = _t([0.3, -1.0, 2.0, 0.0])
    assert float(loss(Y, logits)) == pytest.approx(float(binary(Y, logits)), rel=1e-6)
    restored = DiceCELoss.from_config(loss.get_config())
    assert (restored.dice_weight, restored.ce_weight) == (2.0, 3.0)
    with pytest.raises(ValueError, match="ce_weight"):
        DiceCELoss(dice_weight=1.0, ce_weight=-1.0)


def test_hard_dice_multiclass_hand_computed():
    # argmax prediction [0, 1, 1, 2] vs reference [0, 1, 2, 2]:
    # class 1: 2*1 / (2 + 1) = 2/3; class 2: 2*1 / (1 + 2) = 2/3 -> mean 2/3.
    rows = [[5, 0, 0], [0, 5, 0], [0, 5, 0], [0, 0, 5]]
    np.testing.assert_allclose(hard_dice_multiclass(LABELS, _logits3(rows)), [2 / 3],
                               rtol=1e-6)
    # Class 2 absent from both: it scores 1 (as the binary empty case). Class 1:
    # reference [1, 1, 0, 0] vs prediction [1, 0, 0, 0] -> 2/3. Mean (2/3 + 1) / 2.
    rows = [[0, 5, 0], [5, 0, 0], [5, 0, 0], [5, 0, 0]]
    np.testing.assert_allclose(hard_dice_multiclass(_labels([1, 1, 0, 0]), _logits3(rows)),
                               [(2 / 3 + 1) / 2], rtol=1e-6)


def test_dice_metric_multiclass_is_mean_over_images_of_class_means():
    metric = DiceMetric()
    perfect = [[0, 0, 5] if c == 2 else [0, 5, 0] if c == 1 else [5, 0, 0]
               for c in (0, 1, 2, 2)]
    rows = [[5, 0, 0], [0, 5, 0], [0, 5, 0], [0, 0, 5]]  # 2/3 (see above)
    metric.update_state(np.concatenate([LABELS, LABELS]),
                        np.concatenate([_logits3(perfect), _logits3(rows)]))
    np.testing.assert_allclose(float(metric.result()), (1.0 + 2 / 3) / 2, rtol=1e-6)
    # With two classes the multi-class metric is the binary hard Dice of class 1.
    two = DiceMetric()
    two.update_state(Y.astype("int32"), np.concatenate([-_t([5, -5, 5, -5]),
                                                        _t([5, -5, 5, -5])], axis=-1))
    np.testing.assert_allclose(float(two.result()), 0.5, rtol=1e-6)
