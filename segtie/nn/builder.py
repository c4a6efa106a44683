"""``build_model(config.model)``: the config's model, sized by its budget if it has one."""

from __future__ import annotations

import logging
from typing import Optional, Sequence

import keras

from segtie.nn.budget import fit_base_filters
from segtie.nn.unet import build_unet, check_batch_norm_sharing, check_unet_arguments

logger = logging.getLogger(__name__)

UNET_KEYS = ("in_channels", "num_classes", "base_filters", "depth", "num_iterations",
             "norm", "norm_per_iteration", "tied", "dropout", "width_multiplier", "tie_levels",
             "tie_decoder", "level_projection", "norm_per_level", "num_recurrences",
             "recompute", "spatial_dims", "num_templates", "basis_size", "basis_unique",
             "basis_ratio", "basis_orthogonality", "deep_supervision", "conv_bias")


def unet_arguments(model_config) -> dict:
    """The :func:`~segtie.nn.unet.build_unet` arguments of a ``ModelConfig``."""
    return {key: getattr(model_config, key) for key in UNET_KEYS}


def check_model(model_config, prefix: str = "model.") -> None:
    """Check a ``ModelConfig`` against the U-Net's rules, naming ``model.<key>``.

    The command lines call it when they load a config, so an impossible model is
    reported before any data is prepared.

    Raises:
        ValueError: see :func:`~segtie.nn.unet.check_unet_arguments` and
            :func:`~segtie.nn.unet.check_batch_norm_sharing`.
    """
    sized = model_config.param_budget is not None or model_config.memory_budget_mb is not None
    args = unet_arguments(model_config)
    check_unet_arguments(**args, sized_by_budget=sized, prefix=prefix)
    check_batch_norm_sharing(**args, prefix=prefix)


def build_model(model_config, image_size: Optional[Sequence[int]] = None,
                batch_size: Optional[int] = None) -> keras.Model:
    """Build the model described by a ``segtie.config.ModelConfig``.

    With ``param_budget`` or ``memory_budget_mb`` set, ``base_filters`` is replaced
    by the widest base width within both (see :mod:`segtie.nn.budget`).

    Args:
        model_config: the ``model`` group of the config.
        image_size: ``[H, W]`` of the training images; needed by ``memory_budget_mb``.
        batch_size: training batch size; needed by ``memory_budget_mb``.

    Returns:
        keras.Model: images ``(batch, H, W, in_channels)`` -> logits
        ``(batch, H, W, num_classes)`` (the last pass's when ``num_recurrences > 1``).

    Raises:
        ValueError: an impossible combination or a budget nothing fits; the message
            names the key, the rule and the value.
    """
    args = unet_arguments(model_config)
    c = model_config
    if c.param_budget is not None or c.memory_budget_mb is not None:
        args["base_filters"] = fit_base_filters(args, c.param_budget, c.memory_budget_mb,
                                                image_size, batch_size)
        logger.info("Budget (param_budget=%s, memory_budget_mb=%s): base_filters = %d",
                    c.param_budget, c.memory_budget_mb, args["base_filters"])
    return build_unet(**args)
