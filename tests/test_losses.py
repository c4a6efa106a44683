"""Losses and the Dice metric on hand-computed cases."""

import math

import numpy as np
import pytest

from segtie.losses import DiceBCELoss, DiceMetric, bce_loss, hard_dice, soft_dice_loss


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
