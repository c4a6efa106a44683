"""``segtie train``: train the tied recurrent U-Net of a recipe.

    segtie train --config kvasir_seg [--set group.key=value ...] [--resume | --run-dir DIR]

Writes a run folder ``<train.output_dir>/<dataset>-<time>/`` (``config.yaml``,
``best.keras`` by validation Dice, ``history.csv``, ``run_info.json``,
``tracking.jsonl``, ``val_overlays.png``; ``<train.output_dir>/latest`` points at it)
and an MLflow run with the params, per-epoch curves, overlays and the best model.
Datasets are read from the publisher's archive in ``$SEGTIE_MANUAL_DIR`` or
``data.manual_dir``.

Resuming: after a kill, a Ctrl-C, a SIGTERM or a crash, the same command with
``--resume`` continues the newest unfinished run folder whose config equals this one
from its last completed epoch, in the same MLflow run (no folder: a new run starts;
the newest one finished: an error, a finished run is never resumed). ``--run-dir DIR``
resumes that folder. Ctrl-C or SIGTERM stops after the current step, keeps the best
checkpoint and the backup, and exits 130 or 143; a NaN or infinite loss stops at once
with exit code 1.

Several workers: ``--workers N`` starts N local worker processes on 127.0.0.1, each
with its own generated ``TF_CONFIG`` and ``train.distribute: multi_worker``, and
streams their output prefixed ``[worker i]`` (:mod:`segtie.cli.launcher`); worker 0
writes the run. With ``--set train.distribute=multi_worker`` and a ``TF_CONFIG`` of
its own, ``segtie train`` is one worker of a cluster of machines.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from segtie.cli.common import add_config_arguments, load_config, run_command, setup_logging

HELP = "train a model from a recipe (--resume continues an unfinished run)"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``train`` on the ``segtie`` command's subparsers."""
    parser = subparsers.add_parser("train", help=HELP, description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--resume", action="store_true",
                       help="continue the newest unfinished run folder under "
                            "train.output_dir trained with this config (a new run if none)")
    where.add_argument("--run-dir", default=None, metavar="DIR",
                       help="continue this unfinished run folder (same config)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="start N local worker processes on 127.0.0.1 "
                             "(train.distribute: multi_worker, one TF_CONFIG each)")
    parser.set_defaults(run=run)
    return parser


def _launch(args: argparse.Namespace) -> int:
    """``--workers N``: check the config once here, then start the workers."""
    from segtie.cli.launcher import launch

    def body() -> int:
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, received {args.workers}")
        config = load_config(args.config, args.overrides + ["train.distribute=multi_worker"])
        run_dir = args.run_dir
        if args.resume:  # decided once, so that every worker resumes the same folder
            from segtie.training.runs import find_resumable

            run_dir = find_resumable(config)
        worker_args = ["--config", args.config] if args.config else []
        for item in args.overrides:
            worker_args += ["--set", item]
        worker_args += ["--run-dir", str(run_dir)] if run_dir else []
        return launch(worker_args, args.workers)

    return run_command(body)


def resume_command(args: argparse.Namespace) -> str:
    """The command line that resumes the run ``args`` started."""
    parts = ["segtie", "train"]
    if args.config:
        parts += ["--config", args.config]
    for item in args.overrides:
        parts += ["--set", item]
    parts += ["--run-dir", args.run_dir] if args.run_dir else ["--resume"]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    """Train (or resume), then print where everything went."""
    from segtie.training import NonFiniteLoss, TrainingInterrupted, train
    from segtie.training.runs import find_resumable

    setup_logging()
    if args.workers is not None:
        return _launch(args)

    def body() -> int:
        config = load_config(args.config, args.overrides)
        resume_from = args.run_dir
        if args.resume:
            resume_from = find_resumable(config)
            if resume_from is None:
                print("--resume: no unfinished run with this config under "
                      f"{config.train.output_dir}; starting a new run", file=sys.stderr)
        try:
            result = train(config, resume_from=resume_from)
        except TrainingInterrupted as err:
            print(f"\n{err}; stopped after the last completed step.\nrun folder      "
                  f"{err.run_dir}\nresume with: {resume_command(args)}", file=sys.stderr)
            return err.exit_code
        except NonFiniteLoss as err:
            print(f"error: {err}\nrun folder: {err.run_dir}", file=sys.stderr)
            return 1
        if not result.is_chief:
            print(f"\nworker done ({result.epochs_run} epochs, best val Dice "
                  f"{result.best_val_dice:.4f}); the chief wrote the run folder")
            return 0
        if result.resumed_from_epoch is not None:
            at = result.resumed_from_epoch
            print("\nresumed         " + (f"at epoch {at + 1}" if at < result.epochs_run else
                                         f"after its last epoch ({at} done): finished the run"))
        print(f"\nrun folder      {result.run_dir}")
        print(f"checkpoint      {result.checkpoint}")
        print(f"best val Dice   {result.best_val_dice:.4f}")
        print(f"epochs          {result.epochs_run} ({result.stop_reason})")
        print(f"parameters      {result.num_params:,}")
        print(f"train time      {result.seconds / 60:.1f} min")
        print(f"MLflow run      {result.mlflow_run_id}")
        if result.stop_reason.startswith("time budget"):
            print(f"WARNING: {result.stop_reason}: fewer epochs than the config asks for, "
                  f"a weaker model than the recipe's", file=sys.stderr)
        if result.tracking_synced is False:
            print(f"WARNING: the MLflow store could not be reached; everything is in "
                  f"{result.run_dir}; send it with: segtie sync {result.run_dir}",
                  file=sys.stderr)
        return 0

    return run_command(body)
