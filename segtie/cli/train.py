"""``segtie train``: train the tied recurrent U-Net of a recipe.

    segtie train --config kvasir_seg [--set group.key=value ...]

Writes a run folder ``<train.output_dir>/<dataset>-<time>/`` (``config.yaml``,
``best.keras`` by validation Dice, ``history.csv``, ``run_info.json``,
``val_overlays.png``; ``<train.output_dir>/latest`` points at it) and an MLflow run
with the params, per-epoch curves, overlays and the best model. Datasets are read
from the publisher's archive in ``$SEGTIE_MANUAL_DIR`` or ``data.manual_dir``.
"""

from __future__ import annotations

import argparse

from segtie.cli.common import add_config_arguments, load_config, run_command, setup_logging

HELP = "train a model from a recipe"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``train`` on the ``segtie`` command's subparsers."""
    parser = subparsers.add_parser("train", help=HELP, description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Train, then print where everything went."""
    from segtie.training import train  # TensorFlow Datasets only when training

    setup_logging()

    def body() -> int:
        result = train(load_config(args.config, args.overrides))
        print(f"\nrun folder      {result.run_dir}")
        print(f"checkpoint      {result.checkpoint}")
        print(f"best val Dice   {result.best_val_dice:.4f}")
        print(f"epochs          {result.epochs_run}")
        print(f"parameters      {result.num_params:,}")
        print(f"train time      {result.seconds / 60:.1f} min")
        print(f"MLflow run      {result.mlflow_run_id}")
        return 0

    return run_command(body)
