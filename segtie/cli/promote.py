"""``segtie promote``: make an evaluated model the registered ``champion`` if it wins.

    segtie promote EVAL_RUN_ID [--name NAME] [--metric METRIC] [--tracking-uri URI]
    segtie evaluate --checkpoint ... --promote [--model-name NAME]   (the same, after scoring)

Registers the training run's logged model as a new version of ``NAME`` (default
``segtie-<dataset>``) and moves the alias ``champion`` to it when there is no champion
yet, or when this evaluation beats the champion's on the same test set (the same
split digest: archive bytes, split, size, case limit) with the same metric (default
``<split>_dice_mean``; higher is better, lower for hd95/assd). Otherwise nothing is
registered and the reason is printed. Then::

    segtie evaluate --checkpoint models:/segtie-kvasir_seg@champion

Exit code 0 either way (1 is not used: "not better" is an answer, not an error); a
run that is not an evaluation, or a missing metric, is one line and exit 2.
"""

from __future__ import annotations

import argparse

from segtie.cli.common import run_command, setup_logging

HELP = "register an evaluated model; make it champion if it beats the current one"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``promote`` on the ``segtie`` command's subparsers."""
    parser = subparsers.add_parser("promote", help=HELP, description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("eval_run_id", metavar="EVAL_RUN_ID",
                        help="the MLflow run id of a segtie evaluate run")
    add_promote_options(parser, name_flag="--name")
    parser.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="the MLflow store (default: $MLFLOW_TRACKING_URI, else "
                             "./mlflow.db)")
    parser.set_defaults(run=run)
    return parser


def add_promote_options(parser: argparse.ArgumentParser, name_flag: str) -> None:
    """``--name``/``--model-name`` and ``--metric``, shared with ``segtie evaluate``."""
    parser.add_argument(name_flag, dest="model_name", default=None, metavar="NAME",
                        help="registered model name (default: segtie-<dataset>)")
    parser.add_argument("--metric", default=None, metavar="METRIC",
                        help="the evaluation metric that decides (default: "
                             "<split>_dice_mean)")


def report(result: dict) -> None:
    """Print what :func:`segtie.tracking.champion.promote` did."""
    if result["promoted"]:
        print(f"champion        models:/{result['name']}@champion = version "
              f"{result['version']} ({result['reason']})")
    else:
        print(f"not promoted    {result['reason']}")
    print(f"score           {result['metric']} = {result['score']:.4f} on split digest "
          f"{result['digest']}")


def promote_and_report(eval_run_id: str, name, metric, tracking_uri) -> int:
    """Promote (see the module docstring) and print the outcome; returns 0."""
    from segtie.tracking.champion import promote

    report(promote(eval_run_id, name, metric, tracking_uri))
    return 0


def run(args: argparse.Namespace) -> int:
    """Promote the evaluation run's model if it wins."""
    setup_logging()
    return run_command(lambda: promote_and_report(args.eval_run_id, args.model_name,
                                                  args.metric, args.tracking_uri))
