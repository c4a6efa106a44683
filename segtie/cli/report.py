"""``segtie report``: what a configured model costs, measured and estimated.

    segtie report --config kvasir_seg [--set model.tie_levels=true] [--no-measure]

prints, for the config's model at its training batch and image size: unique and
effective parameters (every use of a tied weight counted), the ``.keras`` file size,
FLOPs per image, the activation and training-step memory estimates with
``recompute`` off and on, and the measured peak memory of one training step with
``recompute`` off and on (TensorFlow's allocator; the command asks for its BFC CPU
allocator so that this works on every CPU, and says so when it falls back to the
process's peak RSS). See :mod:`segtie.training.resources`.
"""

from __future__ import annotations

import argparse
import logging

from segtie.cli.common import add_config_arguments, load_config, run_command, setup_logging

HELP = "print a model's parameters, FLOPs and memory"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``report`` on the ``segtie`` command's subparsers."""
    parser = subparsers.add_parser("report", help=HELP, description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--no-measure", action="store_true",
                        help="skip measuring one training step (estimates only)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Build the config's model, measure it, print the report."""
    from segtie.nn import base_width, build_model
    from segtie.reports.resources import format_report
    from segtie.training import resources

    setup_logging(logging.WARNING)

    def body() -> int:
        config = load_config(args.config, args.overrides)
        size = resources.train_size(config)
        model = build_model(config.model, size, config.data.batch_size)
        figures = resources.resource_figures(model, config, measure=False)
        how, measured, width = "", None, base_width(model)
        if not args.no_measure:
            measured, how = resources.measured_recompute_comparison(config, width)
            if measured:
                figures["measured_step_peak_mb"] = measured[config.model.recompute]
        compared = resources.recompute_comparison(config, width)
        print(format_report(config, model, figures, compared, how, measured))
        return 0

    return run_command(body)
