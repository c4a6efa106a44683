"""What every subcommand shares: the ``--config``/``--set`` arguments, loading and
checking the config, logging, and turning a user's mistake into one line and exit 2."""

from __future__ import annotations

import argparse
import logging
import sys
import zipfile
from typing import Callable

from segtie import config as cfg
from segtie.nn import check_model

__all__ = ["USER_ERRORS", "add_config_arguments", "load_config", "run_command", "setup_logging"]

USER_ERRORS = (ValueError, TypeError, OSError, zipfile.BadZipFile)
"""Errors that mean bad input or a bad environment (a config value, a path, a file that
cannot be read or decoded, a damaged archive, an unreachable store): one line, exit 2.
Anything else is a bug and keeps its traceback."""
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_config_arguments(parser: argparse.ArgumentParser, config_help: str = "") -> None:
    """Add ``--config`` and the repeatable ``--set GROUP.KEY=VALUE`` to ``parser``."""
    recipes = ", ".join(cfg.recipe_names())
    parser.add_argument(
        "--config", default=None, metavar="YAML_OR_RECIPE",
        help=config_help or f"a YAML config file, or the name of a shipped recipe "
                            f"({recipes}); default: kvasir_seg")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="GROUP.KEY=VALUE",
        help="override one config value, parsed as YAML (repeatable), e.g. "
             "--set train.epochs=5 --set data.image_size=[96,96]")


def load_config(path, overrides) -> cfg.Config:
    """The validated config: the file or recipe, the overrides, then the model's rules.

    Raises:
        FileNotFoundError, ValueError, TypeError: see :func:`segtie.config.load_config`
            and :func:`segtie.nn.check_model` (an impossible tying scheme).
    """
    config = cfg.load_config(path, overrides)
    check_model(config.model)
    return config


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr with times, as the command lines do."""
    logging.basicConfig(level=level, format=LOG_FORMAT)


def run_command(body: Callable[[], int]) -> int:
    """Run a subcommand; a :data:`USER_ERRORS` becomes ``error: <message>`` and exit 2."""
    try:
        return body()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
