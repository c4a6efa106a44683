"""Evaluation: inference at the original resolution, scoring and reports.

:func:`predict_probabilities` runs a model on one image (resize or sliding window,
optional mirroring TTA; see :mod:`segtie.inference`); :func:`evaluate` scores every
case with :mod:`segtie.metrics` at its original size and writes the reports of
:mod:`segtie.reports`. No config objects and no MLflow here: the caller passes plain
values.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence

import keras
import numpy as np

from segtie import inference, metrics, reports
from segtie.inference import InferenceOptions
from segtie.reports import save_overlay_grid

__all__ = ["predict_probabilities", "evaluate", "save_overlay_grid", "InferenceOptions"]

logger = logging.getLogger(__name__)


def predict_probabilities(model, image: np.ndarray, image_size: Sequence[int],
                          options: Optional[InferenceOptions] = None) -> np.ndarray:
    """Foreground probabilities of one image at its original size.

    With the default ``options`` the image is preprocessed with
    :func:`segtie.pipeline.preprocess_image` (resized to ``image_size``, scaled to
    [0, 1]), the model gives logits at ``image_size``, and the *logits* are resized
    bilinearly to the original size before the sigmoid (as nnU-Net v2). Resizing a
    thresholded mask instead would give blocky edges; resizing probabilities gives a
    softer edge than the model's. ``options`` selects sliding-window inference and
    mirroring TTA (:func:`segtie.inference.predict_logits`).

    Args:
        model: a Keras model mapping ``(n, H, W, 3)`` float32 to logits
            ``(n, H, W, 1)``.
        image: the original image, uint8.
        image_size: ``[H, W]`` the model was trained at.
        options: inference options; ``None`` = resize, no TTA. Its ``image_size``
            is replaced by ``image_size``.

    Shapes:
        ``image``: ``(H0, W0, 3)``. Returns ``(H0, W0)``.

    Returns:
        float32 probabilities in [0, 1] at the original size.

    Raises:
        ValueError: ``image`` is not ``(H0, W0, 3)`` or the model output is not
            one-channel logits of its input's size.
        TypeError: ``image`` is not uint8.
    """
    options = options or InferenceOptions(image_size=image_size)
    if list(options.image_size) != list(image_size):
        options = dataclasses.replace(options, image_size=list(image_size))
    logits = inference.predict_logits(model, image, options)
    return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)


def _check_case(case: dict, index: int) -> tuple[str, np.ndarray, np.ndarray]:
    if not isinstance(case, dict) or not {"id", "image", "mask"} <= set(case):
        keys = sorted(case) if isinstance(case, dict) else type(case).__name__
        raise ValueError(f"Case {index} must be a dict with keys 'id', 'image', 'mask' "
                         f"(optional 'roi', 'spacing'), received {keys}")
    case_id = str(case["id"])
    image, mask = np.asarray(case["image"]), np.asarray(case["mask"])
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if image.shape[:2] != mask.shape:
        raise ValueError(f"Case {case_id!r}: image {image.shape} and mask {mask.shape} "
                         "must have the same height and width")
    return case_id, image, mask


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80] or "case"


def _predict(model, case_id: str, image: np.ndarray, options: InferenceOptions,
             threshold: float, keep_largest: bool):
    probabilities = predict_probabilities(model, image, options.image_size, options)
    if np.isnan(probabilities).any():
        raise ValueError(f"Case {case_id!r}: the model returned NaN probabilities for "
                         f"{int(np.isnan(probabilities).sum())} pixels")
    prediction = probabilities > threshold
    if keep_largest:
        prediction = inference.largest_component(prediction)
    return probabilities, prediction


def evaluate(model, cases: Iterable[dict], image_size: Sequence[int], threshold: float,
             output_dir: str | Path, num_overlays: int,
             spacing: Optional[Sequence[float]] = None, log_every: int = 50, *,
             inference_options: Optional[InferenceOptions] = None,
             nsd_tolerance: float = 1.0, largest_component: bool = False,
             keep_probabilities: bool = False, bootstrap_samples: int = 0,
             confidence_level: float = 0.95, seed: int = 0, progress: bool = False,
             num_cases: Optional[int] = None) -> tuple[list[dict], dict]:
    """Predict, score and report every case at its original resolution.

    A pixel is foreground when its probability is strictly greater than
    ``threshold`` (as ``keras.metrics.BinaryAccuracy``), then optionally only the
    largest connected component is kept. Metrics follow the conventions of
    :mod:`segtie.metrics` (NaN for an empty reference, skipped and counted by the
    summary); a case's ``roi`` restricts them to a region of interest and its
    ``spacing`` overrides ``spacing``.

    Writes under ``output_dir``:

    * ``per_case.csv``: ``id``, every metric, ``height, width``, one row per case;
    * ``summary.json``: per metric ``mean, median, std, count, num_nan`` (and
      ``ci_low, ci_high``, the bootstrap interval of the mean, when
      ``bootstrap_samples > 0``), plus ``num_cases``, ``threshold``, ``image_size``,
      ``distance_units`` and ``hd95_units`` (``"mm"`` with a spacing, else
      ``"pixels"``), ``nsd_tolerance`` and the inference options; NaN -> ``null``;
    * ``overlays/NNN_<id>.png`` for the first ``num_overlays`` cases, and
      ``best_median_worst.png`` (cases ranked by Dice) and ``dice_boxplot.png``.

    Args:
        model: Keras model outputting logits ``(n, H, W, 1)``.
        cases: iterable of ``{"id": str, "image": uint8 (H0, W0, 3), "mask": uint8
            (H0, W0) in {0, 1}}``, optionally with ``"roi"`` (H0, W0) and
            ``"spacing"`` (row, col) mm; may be a generator.
        image_size: ``[H, W]`` the model runs at.
        threshold: probability threshold in [0, 1].
        output_dir: folder for the reports (created).
        num_overlays: how many of the first cases get an overlay PNG (>= 0).
        spacing: ``(row, col)`` mm per pixel; ``None`` = pixels.
        log_every: log a progress line every this many cases.
        inference_options: resize/sliding window and TTA; ``None`` = resize.
        nsd_tolerance: NSD tolerance in the distance unit.
        largest_component: keep only the largest predicted component.
        keep_probabilities: also compute AUC and average precision.
        bootstrap_samples, confidence_level, seed: the summary's interval.
        progress: show a Keras progress bar (``num_cases`` is its target).
        num_cases: the number of cases, if known, for the progress bar.

    Returns:
        ``(rows, summary)``: the per-case rows as written to the CSV, and the summary
        as written to the JSON (with NaN instead of ``null``).

    Raises:
        ValueError: no cases, a malformed case, a mask not in {0, 1}, NaN
            probabilities, a bad spacing (each message names the case); cases with
            and without a spacing mixed; ``threshold`` outside [0, 1] or
            ``num_overlays < 0``.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"`threshold` must be in [0, 1], received {threshold!r}")
    if num_overlays < 0:
        raise ValueError(f"`num_overlays` must be >= 0, received {num_overlays!r}")
    options = inference_options or InferenceOptions(image_size=list(image_size))
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    names = metrics.METRIC_NAMES + (metrics.RANKING_NAMES if keep_probabilities else ())
    rows, thumbs, units = [], [], set()
    bar = keras.utils.Progbar(num_cases, stateful_metrics=["dice"]) if progress else None
    start = time.perf_counter()
    for index, case in enumerate(cases):
        case_id, image, mask = _check_case(case, index)
        case_spacing = case.get("spacing", spacing)
        units.add("mm" if case_spacing is not None else "pixels")
        if len(units) > 1:
            raise ValueError(f"Case {case_id!r}: cases with and without a spacing cannot "
                             "be summarised together (mm and pixels)")
        probabilities, prediction = _predict(model, case_id, image, options, threshold,
                                             largest_component)
        scores = metrics.score_case(
            mask, prediction, case_spacing, roi=case.get("roi"), tolerance=nsd_tolerance,
            probabilities=probabilities if keep_probabilities else None, case_id=case_id)
        rows.append({"id": case_id, **scores,
                     "height": int(mask.shape[0]), "width": int(mask.shape[1])})
        thumbs.append(reports.thumbnail(image, mask, prediction))
        if index < num_overlays:
            save_overlay_grid(
                [image], [mask], [prediction],
                output_dir / "overlays" / f"{index:03d}_{_safe_name(case_id)}.png",
                titles=[f"{case_id}  dice={scores['dice']:.3f}"])
        if bar is not None:
            bar.update(index + 1, values=[("dice", _mean_dice(rows))])
        elif (index + 1) % max(1, log_every) == 0:
            _log_progress(rows, start)
    if not rows:
        raise ValueError("`cases` is empty: there is nothing to evaluate")
    (unit,) = units
    summary = {
        **metrics.summarize({n: [r[n] for r in rows] for n in names},
                            bootstrap_samples, confidence_level, seed),
        "num_cases": len(rows), "threshold": float(threshold),
        "image_size": [int(s) for s in image_size],
        "distance_units": unit, "hd95_units": unit, "nsd_tolerance": float(nsd_tolerance),
        "confidence_level": float(confidence_level) if bootstrap_samples else None,
        "bootstrap_samples": int(bootstrap_samples),
        "inference": {**vars(options), "largest_component": bool(largest_component)},
    }
    _write_reports(rows, summary, thumbs, names, output_dir)
    logger.info("Evaluation of %d cases in %.1f s: dice %.4f, hd95 %.2f %s; reports in %s",
                len(rows), time.perf_counter() - start, summary["dice"]["mean"],
                summary["hd95"]["mean"], unit, output_dir)
    return rows, summary


def _write_reports(rows, summary, thumbs, names, output_dir: Path) -> None:
    reports.write_per_case_csv(rows, output_dir / "per_case.csv",
                               columns=("id", *names, "height", "width"))
    reports.write_summary_json(summary, output_dir / "summary.json")
    ranked = metrics.rank_cases([r["dice"] for r in rows])
    if ranked is not None:
        picks = [(label, ranked[label]) for label in ("best", "median", "worst")]
        reports.save_thumbnail_grid(
            [thumbs[i] for _, i in picks], output_dir / "best_median_worst.png",
            titles=[f"{label}: {rows[i]['id']}  dice={rows[i]['dice']:.3f}"
                    for label, i in picks])
    reports.save_boxplot({"dice": [r["dice"] for r in rows]},
                         output_dir / "dice_boxplot.png", title="Per-case Dice")


def _mean_dice(rows: list[dict]) -> float:
    values = [r["dice"] for r in rows if not math.isnan(r["dice"])]
    return sum(values) / len(values) if values else math.nan


def _log_progress(rows: list[dict], start: float) -> None:
    logger.info("Evaluated %d cases in %.1f s, running mean dice %.4f",
                len(rows), time.perf_counter() - start, _mean_dice(rows))
