"""The ``segtie`` command line: ``segtie train|evaluate|ensemble|promote|predict|export|report|sync``.

One subcommand per module (:mod:`~segtie.cli.train`, :mod:`~segtie.cli.evaluate`,
:mod:`~segtie.cli.ensemble`, :mod:`~segtie.cli.promote`, :mod:`~segtie.cli.predict`, :mod:`~segtie.cli.export`,
:mod:`~segtie.cli.report`, :mod:`~segtie.cli.sync`),
each with ``add_parser`` and ``run``; the shared
``--config``/``--set`` arguments and error handling are :mod:`~segtie.cli.common`.
A new subcommand is a new module listed in :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

import segtie
from segtie.cli import ensemble, evaluate, export, predict, promote, report, sync, train

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

SUBCOMMANDS = (train, evaluate, ensemble, promote, predict, export, report, sync)


def build_parser() -> argparse.ArgumentParser:
    """The ``segtie`` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="segtie", description="Medical-image segmentation with a tied recurrent "
        "U-Net: train, evaluate and measure models. `segtie <command> --help` for more.")
    parser.add_argument("--version", action="version", version=f"segtie {segtie.__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="<command>")
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``segtie`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    return args.run(args)
