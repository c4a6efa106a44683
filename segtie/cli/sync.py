"""``segtie sync``: send what a training run folder holds to MLflow.

    segtie sync RUN_FOLDER [--tracking-uri URI]

Training keeps everything it tracks in the run folder first (``tracking.jsonl``:
params, every epoch's metrics, tags, artifacts, models, status) and mirrors it to
MLflow as it goes. When the store could not be reached, this command sends what the
MLflow run lacks (creating it if needed): each metric step once, however often it
is run. ``--tracking-uri`` sends it to another store; ``run_info.json`` then names it.
Once everything was sent, ``run_info.json`` says ``"tracking_synced": true``.
"""

from __future__ import annotations

import argparse
import sys

from segtie.cli.common import run_command, setup_logging

HELP = "send a run folder's tracking data to MLflow (after the store was unreachable)"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``sync`` on the ``segtie`` command's subparsers."""
    parser = subparsers.add_parser("sync", help=HELP, description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_FOLDER",
                        help="a folder written by segtie train (runs/<dataset>-<time>)")
    parser.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="the MLflow store (default: the one in run_info.json)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Sync, then print what was sent; an unreachable store is exit code 1."""
    from segtie.training.recorder import sync_run_folder

    setup_logging()

    def body() -> int:
        try:
            sent = sync_run_folder(args.run_dir, args.tracking_uri)
        except (FileNotFoundError, ValueError):
            raise  # a bad folder: one line, exit 2
        except Exception as err:  # noqa: BLE001 - the store: say so, keep the folder
            print(f"error: could not reach the MLflow store ({type(err).__name__}: {err}); "
                  f"nothing lost, run it again later", file=sys.stderr)
            return 1
        print(f"MLflow run      {sent['run_id']} ({sent['tracking_uri']})")
        print("sent            " + ", ".join(f"{sent[k]} {k}" for k in
                                             ("params", "metrics", "tags", "artifacts",
                                              "models")))
        return 0

    return run_command(body)
