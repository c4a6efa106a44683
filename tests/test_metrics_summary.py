"""Tests for segtie.metrics' ranking and summary statistics: AUC and AP (hand-computed,
with ties, against the Mann-Whitney U statistic), summaries that skip NaN, the
percentile bootstrap and the best/median/worst case ranking."""

import math

import numpy as np
import pytest

from segtie import metrics


# ------------------------------------------------------------- ranking: AUC, AP

def mann_whitney_auc(y_true, scores):
    """AUC as P(score_pos > score_neg) + 0.5 P(equal), over all pairs (hand formula)."""
    pos, neg = scores[y_true], scores[~y_true]
    greater = (pos[:, None] > neg[None, :]).sum()
    equal = (pos[:, None] == neg[None, :]).sum()
    return (greater + 0.5 * equal) / (pos.size * neg.size)


def test_auc_ap_hand_computed_with_ties():
    y_true = np.array([[1, 0, 1], [0, 1, 0]], bool)
    probs = np.array([[0.9, 0.9, 0.4], [0.4, 0.4, 0.1]])
    # Pairs (pos, neg): 0.9 vs (0.9, 0.4, 0.1): 0.5 + 1 + 1; 0.4 vs: 0 + 0.5 + 1, twice.
    assert metrics.auc(y_true, probs) == pytest.approx((2.5 + 1.5 + 1.5) / 9)
    assert metrics.auc(y_true, probs) == pytest.approx(mann_whitney_auc(
        y_true.ravel(), probs.ravel()))
    # Thresholds 0.9: P 1/2, R 1/3; 0.4: P 3/5, R 1; 0.1: no recall step.
    assert metrics.average_precision(y_true, probs) == pytest.approx(
        1 / 3 * 1 / 2 + 2 / 3 * 3 / 5)


def test_ranking_conventions_and_errors():
    probs = np.full((3, 3), 0.3)
    assert all(math.isnan(v) for v in metrics.ranking_metrics(
        np.zeros((3, 3)), probs).values())
    full = metrics.ranking_metrics(np.ones((3, 3)), probs)
    assert math.isnan(full["auc"]) and full["ap"] == 1.0
    bad = probs.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"'img7'.*NaN"):
        metrics.score_case(np.eye(3), np.eye(3), probabilities=bad, case_id="img7")
    with pytest.raises(ValueError, match=r"'img7'.*\[0, 1\]"):
        metrics.auc(np.eye(3), probs * 5, case_id="img7")
    with pytest.raises(ValueError, match=r"'img7'.*shape"):
        metrics.auc(np.eye(3), np.zeros((3, 4)), case_id="img7")


# ------------------------------------------------------------------ summarize

def test_summarize_skips_nan():
    out = metrics.summarize({"dice": [1.0, math.nan, 0.5], "hd95": [math.nan]})
    assert out["dice"] == {"mean": 0.75, "median": 0.75, "std": 0.25, "count": 2,
                           "num_nan": 1}
    assert out["hd95"]["count"] == 0 and out["hd95"]["num_nan"] == 1
    assert math.isnan(out["hd95"]["mean"]) and math.isnan(out["hd95"]["std"])


# ------------------------------------------------------- bootstrap and ranking

def test_bootstrap_two_values_hand_derived():
    """Means of resamples of [0, 1] take 0, 0.5, 1 with probability 1/4, 1/2, 1/4, so
    the 2.5% and 97.5% quantiles are 0 and 1."""
    assert metrics.bootstrap_ci([0.0, 1.0], 4000, 0.95, seed=1) == (0.0, 1.0)
    assert metrics.bootstrap_ci([0.3], 10) == (0.3, 0.3)
    assert all(math.isnan(v) for v in metrics.bootstrap_ci([], 10))
    with pytest.raises(ValueError, match="NaN"):
        metrics.bootstrap_ci([math.nan], 10)


def test_bootstrap_close_to_normal_interval():
    values = np.random.default_rng(3).normal(0.7, 0.1, 400)
    low, high = metrics.bootstrap_ci(values, 2000, 0.95, seed=0)
    half = 1.96 * values.std() / math.sqrt(values.size)
    assert low == pytest.approx(values.mean() - half, abs=0.1 * half)
    assert high == pytest.approx(values.mean() + half, abs=0.1 * half)
    out = metrics.summarize({"dice": list(values) + [math.nan]}, 2000, 0.95, seed=0)
    assert (out["dice"]["ci_low"], out["dice"]["ci_high"]) == (low, high)
    assert out["dice"]["num_nan"] == 1


def test_rank_cases_skips_nan():
    assert metrics.rank_cases([0.5, math.nan, 0.9, 0.1, 0.7]) == {
        "best": 2, "median": 4, "worst": 3}
    assert metrics.rank_cases([math.nan]) is None
