"""The U-Net's rules: level widths, input channels, and which tying combinations are possible.

:func:`check_unet_arguments` is the one home of the tying rules (a new scheme adds
its rule here); :func:`check_batch_norm_sharing` refuses a batch norm shared by the
uses of a tied kernel where its statistics would mix. :func:`segtie.nn.unet.build_unet`
and the config checks (:func:`segtie.nn.builder.check_model`) both call them, so an
impossible model is refused with the ``model.<key>`` it breaks, before anything is built.
"""

from __future__ import annotations

from segtie.nn.checks import check_int
from segtie.nn.dims import check_spatial_dims
from segtie.nn.norms import NORMS

__all__ = ["check_batch_norm_sharing", "check_unet_arguments", "image_channels",
           "level_widths"]


def level_widths(base_filters: int, width_multiplier: int, depth: int) -> list:
    """``[F_0, ..., F_{depth-1}]`` with ``F_i = base_filters * width_multiplier ** i``."""
    return [base_filters * width_multiplier ** i for i in range(depth)]


def image_channels(in_channels: int, num_classes: int, num_recurrences: int) -> int:
    """Channels entering level 0: the image, plus the fed-back prediction if recurrent."""
    return in_channels + (num_classes if num_recurrences > 1 else 0)


def check_unet_arguments(in_channels, num_classes, base_filters, depth, num_iterations,
                         width_multiplier, num_recurrences, norm, tie_levels, tie_decoder,
                         level_projection, sized_by_budget=False, prefix="", spatial_dims=2,
                         num_templates=0, tied=True, **_):
    """Reject impossible combinations: the one home of the tying rules.

    Every key is named as ``{prefix}{key}``, so the config's check
    (:func:`segtie.nn.check_model`, ``prefix="model."``) and :func:`build_unet`
    (``prefix=""``) say the same thing.

    Args:
        sized_by_budget: bool, ``base_filters`` will be chosen by a parameter or
            memory budget (so it cannot be promised to match the image's channels).
        prefix: str put in front of every key in the messages.

    Raises:
        ValueError: a count < 1, an unknown ``norm``, tying that the widths forbid, or a
            bank without ``tied`` or with more templates than a block's uses; the
            message names the key, the rule and the value received.
    """
    counts = dict(in_channels=in_channels, num_classes=num_classes,
                  base_filters=base_filters, depth=depth, num_iterations=num_iterations,
                  width_multiplier=width_multiplier, num_recurrences=num_recurrences)
    for key, value in counts.items():
        check_int(prefix + key, value, 1)
    check_spatial_dims(spatial_dims, prefix + "spatial_dims")
    if norm not in NORMS:
        raise ValueError(f"`{prefix}norm` must be one of {list(NORMS)}, received {norm!r}")
    for key, on in (("tie_levels", tie_levels), ("tie_decoder", tie_decoder)):
        if on and width_multiplier != 1 and depth > 1:
            raise ValueError(
                f"`{prefix}{key}: true` needs every level to have the same width so that "
                f"one kernel fits all of them: `{prefix}width_multiplier` must be 1, "
                f"received {width_multiplier}")
    first = image_channels(in_channels, num_classes, num_recurrences)
    if tie_levels and not level_projection and (first != base_filters or sized_by_budget):
        fed = f" + `{prefix}num_classes` = {num_classes} fed back" if num_recurrences > 1 else ""
        width = ("a width chosen by the budget (`param_budget`/`memory_budget_mb`)"
                 if sized_by_budget else f"`{prefix}base_filters` = {base_filters}")
        raise ValueError(
            f"`{prefix}tie_levels: true` without `{prefix}level_projection` needs level "
            f"0's input to have {width} channels like every other level, received "
            f"{first} (`{prefix}in_channels` = {in_channels}{fed}); set "
            f"`{prefix}level_projection: true` to add a 1x1 projection at the level entry")
    check_int(prefix + "num_templates", num_templates, 0)
    if num_templates and not tied:
        raise ValueError(f"`{prefix}num_templates` = {num_templates} mixes the kernels of "
                         f"a block's uses from one bank, which replaces the tied kernel: it "
                         f"needs `{prefix}tied: true`, received `{prefix}tied: false`")
    sites = [depth if tie_levels else 1] + [depth - 1 if tie_decoder else 1] * (depth > 1)
    uses = num_iterations * min(sites)  # the uses of the block with the fewest
    if num_templates > uses:
        raise ValueError(
            f"`{prefix}num_templates` must be at most the {uses} kernel uses of the "
            f"smallest bank (`{prefix}num_iterations` = {num_iterations} per block and "
            f"level; `{prefix}tie_levels`/`{prefix}tie_decoder` share a block across "
            f"levels): more templates than uses only add weights, received {num_templates}")


def check_batch_norm_sharing(norm, num_iterations, norm_per_iteration, num_recurrences,
                             tie_levels=False, tie_decoder=False, norm_per_level=True,
                             prefix="", **_):
    """Refuse a batch norm shared by several uses of a tied kernel (the config's rule).

    A batch norm called at several uses (iterations of a block, passes of the
    network, tied levels without their own norms) sees a different distribution at
    each use, but keeps one moving mean and variance, their average: in inference
    every use is normalised with statistics that are none of its own. Measured:
    after 30 steps on one batch, eval-mode predictions of ``num_iterations: 3`` with
    one shared batch norm agreed with the train-mode ones at Dice 0.56 (instance
    norm: 1.00). Instance norm has no running statistics, and
    ``norm_per_iteration: true`` gives each iteration its own batch norm.

    :func:`build_unet` itself does not apply this rule (the benchmarks measure the
    shared form on purpose); :func:`segtie.nn.check_model`, i.e. every config, does.

    Raises:
        ValueError: naming the keys and what to set instead.
    """
    if norm != "batch":
        return
    shared = []
    if num_iterations > 1 and not norm_per_iteration:
        shared.append(f"the {num_iterations} iterations of each block "
                      f"(`{prefix}num_iterations` = {num_iterations}, "
                      f"`{prefix}norm_per_iteration: false`)")
    if num_recurrences > 1:
        shared.append(f"the {num_recurrences} passes (`{prefix}num_recurrences` = "
                      f"{num_recurrences})")
    if (tie_levels or tie_decoder) and not norm_per_level:
        shared.append(f"the tied levels (`{prefix}norm_per_level: false`)")
    if shared:
        raise ValueError(
            f"`{prefix}norm: batch` would share one batch norm across {' and '.join(shared)}"
            f": its moving statistics would average uses with different statistics, so "
            f"inference would not match training; use `{prefix}norm: instance`"
            + ("" if num_recurrences > 1 else f", or `{prefix}norm_per_iteration: true`"))
