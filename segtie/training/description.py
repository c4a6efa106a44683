"""What a training run says about itself in MLflow: its description and filter tags.

The description (MLflow's run note, tag ``mlflow.note.content``, Markdown, shown at
the top of the run page) gives the recipe (data, size, epochs, loss, optimizer), the
tying scheme in words (:mod:`segtie.nn.describe`) and the unique vs effective
parameters (the weights stored vs every use of a tied weight counted, as
``segtie report`` gives them). The tags are what a user filters the runs table on::

    tags.`segtie.scheme` = 'iter2' and tags.`segtie.dataset` = 'kvasir_seg'

``segtie.scheme`` (:func:`segtie.nn.describe.scheme_name`; the model's name for a
model built elsewhere), ``segtie.dataset``, ``segtie.num_iterations``,
``segtie.param_bucket`` (:func:`segtie.nn.describe.param_bucket` of the unique count)
and ``segtie.params`` (the unique count).
"""

from __future__ import annotations

from segtie.nn import unet_arguments
from segtie.nn.budget import fit_base_filters
from segtie.nn.describe import describe_scheme, param_bucket, scheme_name

__all__ = ["run_description", "run_tags"]



def _resolved_arguments(config) -> dict:
    """``build_unet`` arguments of ``config.model``, with a budget's base width."""
    args, c = unet_arguments(config.model), config.model
    if c.param_budget is not None or c.memory_budget_mb is not None:
        args["base_filters"] = fit_base_filters(
            args, c.param_budget, c.memory_budget_mb,
            config.data.patch_size or config.data.image_size, config.data.batch_size)
    return args


def run_tags(config, source: str, unique: int, config_model: bool) -> dict:
    """The filter tags of a training run (module docstring).

    Args:
        config: the whole config.
        source: the ``segtie.model_source`` (``"config"`` or a supplied model's name).
        unique: int, the model's ``count_params()``.
        config_model: whether the model was built from ``config.model``.
    """
    scheme = scheme_name(unet_arguments(config.model)) if config_model else source
    return {"segtie.scheme": scheme, "segtie.dataset": config.data.name,
            "segtie.num_iterations": config.model.num_iterations if config_model else "n/a",
            "segtie.param_bucket": param_bucket(unique), "segtie.params": unique}


def run_description(config, source: str, unique: int, effective: int,
                    config_model: bool) -> str:
    """The Markdown run description (module docstring).

    Args:
        effective: int, the parameters with every use counted
            (:func:`segtie.nn.profile.effective_parameters`); others as :func:`run_tags`.
    """
    d, t = config.data, config.train
    size = d.patch_size or d.image_size
    lines = [f"**Recipe**: {d.name}, {'patches ' if d.patch_size else ''}"
             f"{size[0]}x{size[1]}, batch {d.batch_size}, {t.epochs} epochs, "
             f"{t.optimizer} at peak learning rate {t.learning_rate:g}, loss "
             f"{t.dice_weight:g} x Dice + {t.bce_weight:g} x cross-entropy.", ""]
    if config_model:
        args = _resolved_arguments(config)
        lines += [f"**Model**: tied recurrent U-Net, depth {args['depth']}, base width "
                  f"{args['base_filters']}, {args['norm']} norm; "
                  f"{describe_scheme(args)}", "",
                  f"**Parameters**: {unique:,} unique (stored), {effective:,} effective "
                  f"(every use of a tied weight counted): {effective / unique:.2f}x."]
    else:
        lines += [f"**Model**: `{source}`, built by the caller (not from `config.model`); "
                  f"{unique:,} unique parameters, {effective:,} effective."]
    return "\n".join(lines)
