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


def test_hard_dice_hand_computed_and_empty_cases():
    # prediction [1, 0, 1, 0] vs reference [1, 1, 0, 0]: 2*1 / (2 + 2) = 0.5
    np.testing.assert_allclose(hard_dice(Y, _t([5, -5, 5, -5])), [0.5])
    empty = _t([0, 0, 0, 0])
    np.testing.assert_allclose(hard_dice(empty, _t([-5, -5, -5, -5])), [1.0])
    # An empty reference with a false positive has no Dice: NaN (it used to be 0).
    assert np.isnan(hard_dice(empty, _t([5, -5, -5, -5]))).tolist() == [True]
    np.testing.assert_allclose(hard_dice(Y, _t([-5, -5, -5, -5])), [0.0])


def test_dice_metric_is_mean_over_images_skipping_nan():
    metric = DiceMetric()
    y = np.concatenate([Y, Y])
    logits = np.concatenate([_t([5, -5, 5, -5]), _t([5, 5, -5, -5])])
    metric.update_state(y, logits)
    metric.update_state(Y, _t([-5, -5, -5, -5]))  # Dice 0
    metric.update_state(_t([0, 0, 0, 0]), _t([5, 5, 5, 5]))  # NaN: not counted
    np.testing.assert_allclose(float(metric.result()), (0.5 + 1.0 + 0.0) / 3, rtol=1e-6)
    assert float(metric.count) == 3.0
    metric.reset_state()
    assert math.isnan(float(metric.result()))  # no image with a defined Dice
    metric.update_state(_t([0, 0, 0, 0]), _t([5, 5, 5, 5]))
    assert math.isnan(float(metric.result())) and float(metric.count) == 0.0


# --- the four empty / non-empty combinations, binary ------------------------------

L = 3.0  # logit magnitude of a confident prediction: sigmoid(3) = 0.9526
S, Q = 1 / (1 + math.exp(-L)), 1 / (1 + math.exp(L))  # sigmoid(+L), sigmoid(-L)
EPS = 1e-5  # segtie.losses.SMOOTH
SOFTPLUS = {+1: math.log1p(math.exp(-L)), -1: math.log1p(math.exp(L))}  # right / wrong

EMPTY, SOME = [0, 0, 0, 0], [1, 1, 0, 0]
PRED_EMPTY, PRED_SOME = [-L] * 4, [L, L, -L, -L]
# (reference, logits, hand-computed soft Dice loss, hand-computed BCE), per image
BINARY_CASES = {
    "both empty": (EMPTY, PRED_EMPTY, 0.0, SOFTPLUS[+1]),
    "reference empty": (EMPTY, PRED_SOME, 0.0, (SOFTPLUS[+1] + SOFTPLUS[-1]) / 2),
    # p = Q everywhere: 1 - (2 * 2Q + eps) / (2 + 4Q + eps)
    "prediction empty": (SOME, PRED_EMPTY, 1 - (4 * Q + EPS) / (2 + 4 * Q + EPS),
                         (SOFTPLUS[+1] + SOFTPLUS[-1]) / 2),
    # p = [S, S, Q, Q], S + Q = 1: 1 - (2 * 2S + eps) / (2 + 2S + 2Q + eps)
    "both non-empty": (SOME, PRED_SOME, 1 - (4 * S + EPS) / (4 + EPS), SOFTPLUS[+1]),
}


def _soft_dice_gradient(g, z):
    """Independent d(1 - soft Dice)/d logits of one image with foreground (float64)."""
    p = 1 / (1 + np.exp(-z))
    num, den = 2 * (g * p).sum() + EPS, g.sum() + p.sum() + EPS
    return -(2 * g * den - num) / den ** 2 * p * (1 - p)


def _value_and_gradient(fn, y, logits):
    import tensorflow as tf

    z = tf.Variable(np.asarray(logits, "float32"))
    with tf.GradientTape() as tape:
        value = fn(y, z)
        total = tf.reduce_sum(value)
    return np.asarray(value), tape.gradient(total, z).numpy()


@pytest.mark.parametrize("case", sorted(BINARY_CASES))
def test_soft_dice_four_empty_combinations(case):
    reference, logits, want, _ = BINARY_CASES[case]
    value, grad = _value_and_gradient(soft_dice_loss, _t(reference), _t(logits))
    np.testing.assert_allclose(value, [want], rtol=1e-5, atol=1e-7)
    assert np.isfinite(grad).all()
    g, z = np.asarray(reference, float), np.asarray(logits, float)
    expected = np.zeros(4) if g.sum() == 0 else _soft_dice_gradient(g, z)
    np.testing.assert_allclose(grad.ravel(), expected, rtol=1e-4, atol=1e-8)


def test_dice_ce_four_empty_combinations_in_one_batch():
    names = sorted(BINARY_CASES)
    y = np.concatenate([_t(BINARY_CASES[n][0]) for n in names])
    logits = np.concatenate([_t(BINARY_CASES[n][1]) for n in names])
    want = np.array([BINARY_CASES[n][2] + BINARY_CASES[n][3] for n in names])
    loss = DiceCELoss()
    per_image, _ = _value_and_gradient(loss.call, y, logits)
    np.testing.assert_allclose(per_image, want, rtol=1e-5)
    value, grad = _value_and_gradient(loss, y, logits)  # mean over the batch of 4
    np.testing.assert_allclose(value, want.mean(), rtol=1e-5)
    assert np.isfinite(grad).all()
    for i, name in enumerate(names):
        g, z = y[i].ravel().astype(float), logits[i].ravel().astype(float)
        bce = (1 / (1 + np.exp(-z)) - g) / 4  # d mean-BCE / dz
        dice = np.zeros(4) if g.sum() == 0 else _soft_dice_gradient(g, z)
        # an empty reference: the cross-entropy's gradient alone
        np.testing.assert_allclose(grad[i].ravel(), (bce + dice) / 4, rtol=1e-4,
                                   atol=1e-8, err_msg=name)


def test_soft_dice_of_confident_empty_prediction_on_empty_patch_is_zero():
    # The case: 64x64 background, logits -10 (p = 4.5e-5, sum(p) = 0.19).
    # Smoothing alone gave 1 - 1e-5 / (0.19 + 1e-5) = 0.99995; the convention gives 0.
    y = np.zeros((1, 64, 64, 1), "float32")
    value, grad = _value_and_gradient(soft_dice_loss, y, np.full(y.shape, -10.0))
    assert value.tolist() == [0.0] and not grad.any()


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


# --- the empty / non-empty combinations, multi-class (K = 3) --------------------------

A = math.exp(L) / (math.exp(L) + 2)  # softmax of the class with logit L (others 0)
B = 1 / (math.exp(L) + 2)  # softmax of a class with logit 0
BG = [0, 0, 0, 0]


def _confident(classes):
    """Logit L on each pixel's class, 0 on the others -> (1, 2, 2, 3)."""
    return _logits3([[L if k == c else 0.0 for k in range(3)] for c in classes])


# (reference, predicted classes, hand-computed soft Dice loss), per image
MULTICLASS_CASES = {
    "no foreground in either": (BG, BG, 0.0),
    "no foreground in the reference": (BG, [1, 2, 2, 0], 0.0),
    # class 2 absent from the reference but predicted: left out of the mean
    # (smoothing alone scored it ~0 and gave a loss near 1 - D1 / 2).
    "one class absent from the reference": (
        [1, 1, 0, 0], [1, 1, 2, 0], 1 - (4 * A + EPS) / (2 * A + 2 * B + 2 + EPS)),
    # p_1 = p_2 = B everywhere: D1 = (2 * 2B + eps) / (4B + 2 + eps),
    # D2 = (2B + eps) / (4B + 1 + eps)
    "prediction empty": (
        [1, 1, 2, 0], BG, 1 - ((4 * B + EPS) / (4 * B + 2 + EPS)
                               + (2 * B + EPS) / (4 * B + 1 + EPS)) / 2),
    # D1 = (4A + eps) / (2A + 2B + 2 + eps), D2 = (2A + eps) / (A + 3B + 1 + eps)
    "both non-empty": (
        [1, 1, 2, 0], [1, 1, 2, 0], 1 - ((4 * A + EPS) / (2 * A + 2 * B + 2 + EPS)
                                         + (2 * A + EPS) / (A + 3 * B + 1 + EPS)) / 2),
}


def _softmax_np(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("case", sorted(MULTICLASS_CASES))
def test_multiclass_soft_dice_empty_combinations(case):
    reference, predicted, want = MULTICLASS_CASES[case]
    value, grad = _value_and_gradient(soft_dice_multiclass_loss, _labels(reference),
                                      _confident(predicted))
    np.testing.assert_allclose(value, [want], rtol=1e-5, atol=1e-7)
    assert np.isfinite(grad).all()
    if not any(reference):
        assert not grad.any()  # no foreground in the reference: no Dice gradient
    else:
        assert np.abs(grad).max() > 1e-3


@pytest.mark.parametrize("case", sorted(MULTICLASS_CASES))
def test_multiclass_dice_ce_empty_combinations(case):
    reference, predicted, dice = MULTICLASS_CASES[case]
    labels, logits = _labels(reference), _confident(predicted)
    p = _softmax_np(logits.astype(float))[0].reshape(4, 3)
    onehot = np.eye(3)[reference]
    ce = -np.log((p * onehot).sum(-1)).mean()  # -log a where right, -log b where wrong
    value, grad = _value_and_gradient(DiceCELoss(), labels, logits)
    np.testing.assert_allclose(value, dice + ce, rtol=1e-5)
    assert np.isfinite(grad).all()
    if not any(reference):  # the cross-entropy's gradient alone
        np.testing.assert_allclose(grad.reshape(4, 3), (p - onehot) / 4, rtol=1e-5,
                                   atol=1e-8)
