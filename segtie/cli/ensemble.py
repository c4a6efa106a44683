"""``segtie ensemble``: two or more trained checkpoints -> one checkpoint (mean logits).

    segtie ensemble --checkpoint runs/<run A>/best.keras --checkpoint runs/<run B>/best.keras
    segtie evaluate --checkpoint runs/ensemble-<time>/ensemble.keras

nnU-Net ensembles its folds; segtie ensembles any checkpoints trained for the same task
(same dataset, image and patch size, channels and classes; typically one recipe with
different ``train.seed``). The output folder (``--output``, default
``<train.output_dir>/ensemble-<time>/``) holds ``ensemble.keras`` (one Keras model whose
logits are the mean of the members' logits), member 0's ``config.yaml`` and
``ensemble.json`` (the members and their training runs). ``segtie evaluate``,
``predict`` and ``export`` take ``ensemble.keras`` as any checkpoint. Its parameter
count, printed and listed, is the members' sum. See :mod:`segtie.nn.ensemble`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from segtie.cli.common import run_command, setup_logging

HELP = "combine trained checkpoints into one (the mean of their logits)"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``ensemble`` on the ``segtie`` command's subparsers."""
    parser = subparsers.add_parser("ensemble", help=HELP, description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", dest="checkpoints", action="append", required=True,
                        metavar="CHECKPOINT",
                        help="a member: a .keras file or an MLflow model URI (give two or more)")
    parser.add_argument("--output", default=None, metavar="DIR",
                        help="the folder to write (default: <train.output_dir>/ensemble-<time>/)")
    parser.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="the MLflow store of runs:/ and models:/ members (default: "
                             "the default config's, tracking.tracking_uri)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an ensemble already in --output")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the ensemble folder and print what it holds."""
    from segtie import config as cfg
    from segtie.training.ensembles import ENSEMBLE_FILE, MEMBERS_FILE, write_ensemble

    setup_logging()

    def body() -> int:
        out = Path(args.output) if args.output else (
            Path(cfg.load_config(None).train.output_dir)
            / f"ensemble-{time.strftime('%Y%m%d-%H%M%S')}")
        if (out / ENSEMBLE_FILE).exists() and not args.overwrite:
            raise FileExistsError(f"{out / ENSEMBLE_FILE} exists; give another --output "
                                  f"or --overwrite")
        path, listing = write_ensemble(args.checkpoints, out, args.tracking_uri)
        print(f"ensemble of {len(args.checkpoints)} checkpoints, "
              f"{listing['parameters']:,} parameters -> {path}\n"
              f"members: {path.with_name(MEMBERS_FILE)}\n"
              f"evaluate it: segtie evaluate --checkpoint {path}")
        return 0

    return run_command(body)
