"""``segtie evaluate``: score a trained checkpoint on a split.

    segtie evaluate --checkpoint runs/<run>/best.keras
    segtie evaluate --checkpoint runs:/<mlflow_run_id>/model [--config ...] [--set ...]
    segtie evaluate --checkpoint models:/<name>/<version>     (or @<alias>, or models:/m-<id>)
    segtie evaluate --checkpoint runs/<run>/export/model_int8.tflite   (an export, as on the device)

Writes per_case.csv, summary.json, overlay PNGs (first cases; best, median and worst
by Dice) and a Dice box plot to ``<eval.output_dir>/<run name>/``, logs them to an
MLflow evaluation run tagged with the training run it evaluates (and the training
run with it), and prints the summary table. ``--promote`` then registers the model
and moves the alias ``champion`` to it if it beats the current champion on the same
test set (``segtie promote --help``). The config is the training run's own (beside the ``.keras`` file, or
the MLflow run's ``config.yaml``) unless ``--config`` is given. Inference (sliding
window, mirroring TTA, largest component), spacing (``eval.spacing``, else the
dataset's ``data.spacing``; pixels when neither is set), NSD tolerance and the
bootstrap come from the ``eval`` group; the number of classes from
``model.num_classes`` (multi-class: argmax, per-class metrics).

An exported model (a ``.tflite`` file or a SavedModel folder written by ``segtie
export``) is scored the same way, through the LiteRT interpreter or TensorFlow: the
config is the ``config.yaml`` the export wrote beside it unless ``--config`` is given; a
LiteRT model takes its fixed input size (whole frames resized to it, or sliding windows
of it) and one image per call. Its evaluation run is tagged ``segtie.model_format``
(``litert`` or ``saved_model``), ``segtie.weights_dtype`` (a LiteRT file's
``int8``, ``float16`` or ``float32``) and with the training run its ``export.json`` names;
``--promote`` is for ``.keras`` checkpoints only.

Cases that carry a field of view (DRIVE) are scored inside it, against the first
observer, with AUC/AP and accuracy; a second observer's annotation adds the human
reference as a second table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segtie.cli.common import add_config_arguments, run_command, setup_logging
from segtie.cli.promote import add_promote_options, promote_and_report
from segtie.data.splits import SPLITS

HELP = "score a checkpoint on the test split"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``evaluate`` on the ``segtie`` command's subparsers."""
    parser = subparsers.add_parser("evaluate", help=HELP, description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True,
                        help="a .keras file, runs:/<run_id>/model, models:/m-<model_id>, "
                             "models:/<name>/<version>, models:/<name>@<alias>, or an "
                             "export: a .tflite file or a SavedModel folder")
    add_config_arguments(parser, config_help="a YAML config file or recipe name (default: "
                                             "the training run's own config)")
    parser.add_argument("--split", default="test", choices=SPLITS,
                        help="the split to score (default: test)")
    parser.add_argument("--promote", action="store_true",
                        help="then register the model and make it champion if it beats "
                             "the current one on the same test set (see segtie promote)")
    add_promote_options(parser, name_flag="--model-name")
    parser.set_defaults(run=run)
    return parser


def print_table(summary: dict, source: str, out_dir: Path) -> None:
    """Print the summary table, and the second observer's when there is one."""
    from segtie.reports import format_table

    print("\n" + format_table(summary, summary["metrics"]))
    observer = summary.get("second_observer")
    if observer:
        print(f"\nsecond observer vs first, the human reference ({observer['num_cases']} "
              f"cases):\n" + format_table(observer, observer["metrics"]))
    pooled = summary.get("pooled")
    if pooled:
        values = "  ".join(f"{m} {pooled[m]:.4f}" for m in pooled["metrics"])
        print(f"\npooled over the {pooled['num_pixels']:,} pixels of all "
              f"{pooled['num_cases']} cases (one pool of pixels, not a mean over "
              f"cases):\n{values}")
    roi = summary.get("num_cases_with_roi", 0)
    where = f"inside the ROI (field of view) for {roi} cases; " if roi else ""
    units = summary.get("distance_units", "pixels")
    print(f"\n{where}hd95 and assd in {units}; nsd at {summary.get('nsd_tolerance')} "
          f"{units}; {source}; reports in {out_dir}")


def run(args: argparse.Namespace) -> int:
    """Load the checkpoint and its config, score the split, print the table."""
    from segtie.data.pipeline import build_eval_dataset
    from segtie.evaluation import run_evaluation
    from segtie.export.loading import is_export, load_predictor

    setup_logging()
    if args.promote and is_export(args.checkpoint):
        print(f"error: --promote registers a .keras checkpoint; {args.checkpoint} is an "
              f"export (evaluate it without --promote)", file=sys.stderr)
        return 2

    def load():
        predictor = load_predictor(args.checkpoint, args.config, args.overrides)
        if predictor.kind != "keras" and predictor.config.model.spatial_dims == 3:
            raise ValueError(f"{args.checkpoint}: exported models are 2-D; evaluate a "
                             f"3-D model's .keras checkpoint")
        return predictor, build_eval_dataset(predictor.config.data, args.split)

    loaded = []
    status = run_command(lambda: loaded.append(load()) or 0)
    if status:
        return status
    predictor, dataset = loaded[0]
    config = predictor.config
    result = run_evaluation(predictor.model, config, dataset, args.split, args.checkpoint,
                            options=predictor.options, train_run_id=predictor.train_run_id,
                            model_format=predictor.kind,
                            members=predictor.ensemble_members)
    if result.ensemble_runs and not result.train_run_id:
        source = f"training runs {', '.join(result.ensemble_runs)} (an ensemble)"
    else:
        source = f"training run {result.train_run_id or 'unknown'}"
    print_table(result.summary, source, result.out_dir)
    if args.promote:
        if not result.mlflow_run_id:
            print("error: --promote needs the evaluation run in MLflow (tracking is off "
                  "or failed)", file=sys.stderr)
            return 2
        return run_command(lambda: promote_and_report(
            result.mlflow_run_id, args.model_name, args.metric,
            config.tracking.tracking_uri))
    return 0
