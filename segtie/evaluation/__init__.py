"""Evaluation: per-case scoring and the evaluation run.

- :mod:`~segtie.evaluation.scoring`: one case's row of metrics (binary, per class,
  second observer) over :mod:`segtie.metrics`; a new metric is added in
  :mod:`segtie.metrics` and named in :func:`~segtie.evaluation.scoring.metric_names`;
- :mod:`~segtie.evaluation.evaluator`: :func:`evaluate`, the loop that predicts
  (:mod:`segtie.inference`), scores and writes the reports;
- :mod:`~segtie.evaluation.run`: :func:`run_evaluation`, the same as an MLflow
  evaluation run linked to its training run (what ``segtie evaluate`` runs).
"""

from segtie.evaluation.evaluator import evaluate
from segtie.evaluation.run import (EvaluationResult, has_field_of_view, inference_options,
                                   run_evaluation)
from segtie.evaluation.scoring import metric_names, score_observer, score_prediction

__all__ = ["EvaluationResult", "evaluate", "has_field_of_view", "inference_options",
           "metric_names", "run_evaluation", "score_observer", "score_prediction"]
