"""The keras-hub-style harness (``harness.py``) on every custom layer, loss and metric.

Each case gives the expected number of unique variables, counted by hand from the
class docstring's parameter layout, so tying is checked too (an untied or duplicated
sublayer adds variables). Loss and metric values are recomputed here in NumPy from
their definitions (an independent reference); every reference image is non-empty,
so no empty-mask convention is involved.
"""

import numpy as np
import pytest
from harness import run_layer_test
from harness_losses import run_loss_test, run_metric_test

from segtie.losses import DiceBCELoss, DiceCELoss
from segtie.metrics.validation import DiceMetric
from segtie.nn import ConvGRUCell, FusedBatchNormalization, RecurrentConvBlock, ZeroState

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 8, 8, 3)).astype("float32")
SKIP = RNG.normal(size=(2, 8, 8, 2)).astype("float32")
F = 4

# Variables: conv 2 (kernel, bias); batch norm 4 (gamma, beta, moving mean/variance,
# 2 trainable); instance norm 2 (gamma, beta); "none" 0.
BLOCKS = {
    # entry conv + norm, one tied conv + one shared norm
    "tied": (dict(num_iterations=3, norm="batch"), None, 2 + 4 + 2 + 4, 8),
    # three convs, one per iteration
    "untied": (dict(num_iterations=3, norm="instance", tied=False), None, 2 + 2 + 6 + 2, 12),
    # two call sites, each with its own entry norm and per-iteration norms, one kernel
    "two uses, norm per use": (
        dict(num_iterations=2, norm="batch", norm_per_iteration=True, num_uses=2,
             norm_per_use=True), [{"use": 0}, {"use": 1}],
        2 + 2 + 2 * (4 + 2 * 4), 4 + 2 * (2 + 2 * 2)),
    # two call sites sharing everything
    "two uses, shared norms": (dict(num_iterations=2, norm="instance", num_uses=2),
                               [{"use": 0}, {"use": 1}], 2 + 2 + 2 + 2, 8),
    "recompute": (dict(num_iterations=2, norm="instance", recompute=True), None, 8, 8),
    # two call sites x two iterations mixing one bank (templates, coefficients, bias)
    "template bank, two uses": (dict(num_iterations=2, norm="instance", num_uses=2,
                                     num_templates=3), [{"use": 0}, {"use": 1}],
                                2 + 2 + 3 + 2, 9),
    "dropout": (dict(num_iterations=1, norm="none", dropout=0.25), None, 4, 4),
}


@pytest.mark.parametrize("name", list(BLOCKS))
def test_recurrent_conv_block(name, tmp_path):
    kwargs, sites, num_vars, num_trainable = BLOCKS[name]
    run_layer_test(RecurrentConvBlock, {"filters": F, **kwargs}, X, (2, 8, 8, F), tmp_path,
                   call_kwargs=sites, expected_num_variables=num_vars,
                   expected_num_trainable=num_trainable,
                   random_training=kwargs.get("dropout", 0) > 0)


@pytest.mark.parametrize("recompute", [False, True])
def test_recurrent_conv_block_on_a_list_of_inputs(recompute, tmp_path):
    """A decoder block: up-sampled features and the skip, concatenated inside."""
    layer = run_layer_test(RecurrentConvBlock,
                           dict(filters=F, num_iterations=2, norm="batch", recompute=recompute),
                           [X, SKIP], (2, 8, 8, F), tmp_path, expected_num_variables=12)
    assert tuple(layer.entry_conv.kernel.shape) == (3, 3, 3 + 2, F)


@pytest.mark.parametrize("kernel_size", [3, 1])
def test_conv_gru_cell(kernel_size, tmp_path):
    h = RNG.normal(size=(2, 8, 8, F)).astype("float32")
    layer = run_layer_test(ConvGRUCell, dict(filters=F, kernel_size=kernel_size), [X, h],
                           (2, 8, 8, F), tmp_path, expected_num_variables=4,
                           expected_num_trainable=4)
    assert layer.count_params() == kernel_size ** 2 * (3 + F) * 3 * F + 3 * F


def test_zero_state(tmp_path):
    run_layer_test(ZeroState, dict(channels=5), X, (2, 8, 8, 5), tmp_path,
                   expected_num_variables=0)


@pytest.mark.parametrize("kwargs, num_vars, num_trainable", [
    ({}, 4, 2), (dict(momentum=0.9, epsilon=1e-2, center=False), 3, 1)])
def test_fused_batch_normalization(kwargs, num_vars, num_trainable, tmp_path):
    x = (3.0 * X + 2.0).astype("float32")  # statistics far from the initial 0 and 1
    run_layer_test(FusedBatchNormalization, kwargs, x, X.shape, tmp_path,
                   expected_num_variables=num_vars, expected_num_trainable=num_trainable)


# --- losses and the metric: NumPy references ---------------------------------------

def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _binary(seed):
    """Non-empty binary masks ``(2, 8, 8, 1)`` and logits away from 0."""
    rng = np.random.default_rng(seed)
    y = (rng.random((2, 8, 8, 1)) > 0.6).astype("float32")
    y[:, 0, 0] = 1.0
    logits = rng.normal(size=y.shape) + 2.0 * (y - 0.5)
    logits = np.where(np.abs(logits) < 0.1, 0.1, logits).astype("float32")
    return y, logits


def _multiclass(seed, k=3):
    """Labels ``(2, 8, 8, 1)`` with every class in every image, and logits."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, (2, 8, 8, 1))
    y[:, 0, :k, 0] = np.arange(k)
    logits = rng.normal(size=(2, 8, 8, k)) + 2.0 * np.eye(k)[y[..., 0]]
    return y.astype("float32"), logits.astype("float32")


SMOOTH = 1e-5  # segtie.losses.SMOOTH, by definition of the soft Dice


def _reference_loss(y, logits, dice_weight, ce_weight):
    if logits.shape[-1] == 1:
        p = _sigmoid(logits.astype("float64"))
        dice = 1 - (2 * (y * p).sum((1, 2, 3)) + SMOOTH) / (y.sum((1, 2, 3)) + p.sum((1, 2, 3))
                                                           + SMOOTH)
        ce = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean((1, 2, 3))
    else:
        k = logits.shape[-1]
        p = _softmax(logits.astype("float64"))
        g = np.eye(k)[y[..., 0].astype(int)]
        per_class = ((2 * (g * p).sum((1, 2)) + SMOOTH)
                     / (g.sum((1, 2)) + p.sum((1, 2)) + SMOOTH))
        dice = 1 - per_class[:, 1:].mean(-1)
        ce = -np.log((g * p).sum(-1)).mean((1, 2))
    return float(np.mean(dice_weight * dice + ce_weight * ce))


def _reference_dice(y, logits):
    """Per image: Dice of sigmoid > 0.5 (one channel) or mean foreground argmax Dice."""
    if logits.shape[-1] == 1:
        truth, pred = y[..., 0] > 0.5, logits[..., 0] > 0
        return list(2 * (truth & pred).sum((1, 2)) / (truth.sum((1, 2)) + pred.sum((1, 2))))
    k, labels, argmax = logits.shape[-1], y[..., 0].astype(int), logits.argmax(-1)
    scores = []
    for t, q in zip(labels, argmax):
        scores.append(np.mean([2 * ((t == c) & (q == c)).sum() / ((t == c).sum() + (q == c).sum())
                               for c in range(1, k)]))
    return scores


@pytest.mark.parametrize("loss, data, weights", [
    (DiceCELoss(), _binary(1), (1.0, 1.0)),
    (DiceCELoss(dice_weight=0.5, ce_weight=2.0), _binary(2), (0.5, 2.0)),
    (DiceCELoss(dice_weight=2.0, ce_weight=0.25), _multiclass(3), (2.0, 0.25)),
    (DiceBCELoss(dice_weight=1.5, bce_weight=0.5), _binary(4), (1.5, 0.5)),
], ids=["dice_ce", "dice_ce weighted", "dice_ce multiclass", "dice_bce"])
def test_losses(loss, data, weights, tmp_path):
    y, logits = data
    run_loss_test(loss, y, logits, tmp_path,
                  expected_value=_reference_loss(y, logits, *weights))


@pytest.mark.parametrize("make", [_binary, _multiclass], ids=["binary", "multiclass"])
def test_dice_metric(make, tmp_path):
    batches = [make(10), make(11)]
    expected = np.mean([d for y, logits in batches for d in _reference_dice(y, logits)])
    assert 0.2 < expected < 0.95  # neither trivial nor perfect: the check can fail
    run_metric_test(DiceMetric(threshold=0.5, name="dice"), batches, tmp_path,
                    expected_value=float(expected))
