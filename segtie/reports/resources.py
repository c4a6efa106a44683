"""The printed resource report of ``segtie report`` (figures from
:mod:`segtie.training.resources`)."""

from __future__ import annotations

import keras

from segtie.nn import base_width
from segtie.training.resources import train_size

__all__ = ["format_report"]


def format_report(config, model: keras.Model, figures: dict, recompute: dict,
                  how: str = "", measured: dict = None) -> str:
    """The printed report; ``measured``: :func:`measured_recompute_comparison`'s dict."""
    m, (h, w), b = config.model, train_size(config), config.data.batch_size
    lines = [
        f"Resource report: {model.name}, image {h}x{w}, batch {b}",
        f"  tying: num_iterations={m.num_iterations} tie_levels={m.tie_levels} "
        f"tie_decoder={m.tie_decoder} num_recurrences={m.num_recurrences} "
        f"recompute={m.recompute} base_filters={base_width(model)}",
        f"  unique parameters       {figures['unique_params']:>14,}  "
        f"(trainable {figures['trainable_params']:,})",
        f"  effective parameters    {figures['effective_params']:>14,}  (every use counted)",
        f"  model file (.keras)     {figures['model_file_bytes']:>14,}  bytes (weights, "
        f"no optimizer state; a run's best.keras also holds the optimizer's)",
        f"  FLOPs per image         {figures['flops_per_image']:>14,}  (2 x conv MACs)",
        f"  activation memory est.  {figures['activation_mb_estimate']:>14.1f}  MB at batch "
        f"{b} (recompute off {recompute[False]:.1f} MB, on {recompute[True]:.1f} MB)",
        f"  training step est.      {figures['training_step_mb_estimate']:>14.1f}  MB "
        f"(weights, gradients, optimizer slots, activations)",
    ]
    if "measured_step_peak_mb" in figures:
        versus = ""
        if measured:
            versus = (f"recompute off {measured[False]:.1f} MB, on {measured[True]:.1f} MB "
                      f"= {measured[True] / measured[False]:.0%}; ")
        lines.append(f"  measured step peak      {figures['measured_step_peak_mb']:>14.1f}  MB "
                     f"({versus}{how})")
    elif how:
        lines.append(f"  measured step peak      {'-':>14}  ({how})")
    return "\n".join(lines)
