"""The U-Net's rules: level widths, input channels, and which tying combinations are possible.

:func:`check_unet_arguments` is the one home of the tying rules (a new scheme adds
its rule here); :func:`check_batch_norm_sharing` refuses a batch norm shared by the
uses of a tied kernel where its statistics would mix; :func:`check_block_arguments`
holds the rules of one block. :func:`segtie.nn.unet.build_unet`
and the config checks (:func:`segtie.nn.builder.check_model`) both call them, so an
impossible model is refused with the ``model.<key>`` it breaks, before anything is built.
"""

from __future__ import annotations

from segtie.nn.checks import check_int, check_nonnegative
from segtie.nn.dims import check_spatial_dims
from segtie.nn.norms import NORMS

__all__ = ["basis_filters", "check_batch_norm_sharing", "check_block_arguments",
           "check_conv_bias", "check_unet_arguments", "image_channels", "level_widths"]


def level_widths(base_filters: int, width_multiplier: int, depth: int) -> list:
    """``[F_0, ..., F_{depth-1}]`` with ``F_i = base_filters * width_multiplier ** i``."""
    return [base_filters * width_multiplier ** i for i in range(depth)]


def image_channels(in_channels: int, num_classes: int, num_recurrences: int) -> int:
    """Channels entering level 0: the image, plus the fed-back prediction if recurrent."""
    return in_channels + (num_classes if num_recurrences > 1 else 0)


def basis_filters(width: int, basis_size: int = 0, basis_ratio: float = 0.0) -> int:
    """The shared basis filters ``s`` of a block of ``width`` channels (0: no basis).

    ``basis_size`` when set, else ``max(1, round_half_up(basis_ratio * width))``, so a
    ratio keeps the basis a fixed fraction of every block's width (and of the width a
    budget picks); 0 when both are 0.
    """
    if basis_size:
        return basis_size
    return max(1, int(basis_ratio * width + 0.5)) if basis_ratio else 0


def _check_basis(prefix, base_filters, num_templates, tied, basis_size, basis_unique,
                 basis_ratio, sized_by_budget, spatial_dims, basis_orthogonality=0.0):
    """The filter basis's rules (``basis_size``/``basis_ratio``/``basis_unique``)."""
    check_int(prefix + "basis_size", basis_size, 0)
    check_int(prefix + "basis_unique", basis_unique, 0)
    check_nonnegative(prefix + "basis_ratio", basis_ratio)
    check_nonnegative(prefix + "basis_orthogonality", basis_orthogonality)
    if basis_size and basis_ratio:
        raise ValueError(f"`{prefix}basis_size` = {basis_size} and `{prefix}basis_ratio` = "
                         f"{basis_ratio} both size the filter basis: set one of them, the "
                         f"other to 0")
    on = f"`{prefix}basis_size` = {basis_size}" if basis_size else (
        f"`{prefix}basis_ratio` = {basis_ratio}")
    for key, value, what in (("basis_unique", basis_unique, "adds per-use filters to"),
                             ("basis_orthogonality", basis_orthogonality, "regularises")):
        if value and not (basis_size or basis_ratio):
            raise ValueError(f"`{prefix}{key}` = {value} {what} a shared filter basis: it "
                             f"needs `{prefix}basis_size` >= 1 or `{prefix}basis_ratio` > 0, "
                             f"received neither")
    if not (basis_size or basis_ratio):
        return
    if num_templates:
        raise ValueError(f"{on} and `{prefix}num_templates` = {num_templates} both replace "
                         f"the tied kernel (a filter basis, a template bank): set one of "
                         f"them, the other to 0")
    if not tied:
        raise ValueError(f"{on} mixes the kernels of a block's uses from one shared filter "
                         f"basis, which replaces the tied kernel: it needs `{prefix}tied: "
                         f"true`, received `{prefix}tied: false`")
    span = 3 ** spatial_dims * base_filters  # the dimensions of a kernel's fan-in
    size = basis_filters(base_filters, basis_size, basis_ratio)
    if not sized_by_budget and size + basis_unique > span:
        raise ValueError(f"{on} with `{prefix}basis_unique` = {basis_unique} gives "
                         f"{size + basis_unique} basis filters, more than the {span} "
                         f"dimensions of a kernel's fan-in ({3 ** spatial_dims} x "
                         f"`{prefix}base_filters` = {base_filters}): they would only add "
                         f"weights; use at most {span}")


def check_unet_arguments(in_channels, num_classes, base_filters, depth, num_iterations,
                         width_multiplier, num_recurrences, norm, tie_levels, tie_decoder,
                         level_projection, sized_by_budget=False, prefix="", spatial_dims=2,
                         num_templates=0, tied=True, basis_size=0, basis_unique=0,
                         basis_ratio=0.0, basis_orthogonality=0.0, deep_supervision=False,
                         conv_bias=True, **_):
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
            bank without ``tied`` or with more templates than a block's uses, a filter
            basis without ``tied``, with a bank, with both ``basis_size`` and
            ``basis_ratio``, or with more filters than a kernel's fan-in
            (``3 ** spatial_dims * base_filters``), ``basis_unique`` or
            ``basis_orthogonality`` without a basis, a negative ``basis_orthogonality``,
            ``deep_supervision`` with ``depth`` < 4 or ``num_recurrences`` > 1,
            ``conv_bias`` false with ``norm`` none; the message names the key, the rule
            and the value received.
    """
    counts = dict(in_channels=in_channels, num_classes=num_classes,
                  base_filters=base_filters, depth=depth, num_iterations=num_iterations,
                  width_multiplier=width_multiplier, num_recurrences=num_recurrences)
    for key, value in counts.items():
        check_int(prefix + key, value, 1)
    check_spatial_dims(spatial_dims, prefix + "spatial_dims")
    if norm not in NORMS:
        raise ValueError(f"`{prefix}norm` must be one of {list(NORMS)}, received {norm!r}")
    check_conv_bias(conv_bias, norm, prefix)
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
    _check_basis(prefix, base_filters, num_templates, tied, basis_size, basis_unique,
                 basis_ratio, sized_by_budget, spatial_dims, basis_orthogonality)
    if deep_supervision and depth < 4:
        raise ValueError(
            f"`{prefix}deep_supervision: true` trains the decoder levels between the "
            f"finest and the coarsest (nnU-Net weights the coarsest 0): it needs "
            f"`{prefix}depth` >= 4, received {depth}")
    if deep_supervision and num_recurrences > 1:
        raise ValueError(
            f"`{prefix}deep_supervision: true` and `{prefix}num_recurrences` > 1 cannot "
            f"be combined (the passes are supervised already), received "
            f"num_recurrences={num_recurrences}")


def check_conv_bias(conv_bias, norm, prefix=""):
    """Refuse convolutions without bias where no norm follows to cancel it.

    Raises:
        ValueError: ``conv_bias`` false with ``norm`` ``"none"``.
    """
    if not conv_bias and norm == "none":
        raise ValueError(f"`{prefix}conv_bias: false` relies on the norm after each "
                         f"convolution to cancel the bias; with `{prefix}norm: none` the "
                         f"bias is needed: set `{prefix}conv_bias: true` or a norm "
                         f"(`batch`, `instance`)")


def check_block_arguments(filters, num_iterations, norm, tied, dropout, num_uses,
                          spatial_dims, num_templates, basis_size, basis_unique,
                          basis_orthogonality, conv_bias=True):
    """The rules of one :class:`~segtie.nn.RecurrentConvBlock` (its keyword names).

    Raises:
        ValueError: see the block's docstring; the message names the argument.
    """
    check_int("filters", filters, 1)
    check_int("num_iterations", num_iterations, 1)
    check_int("num_uses", num_uses, 1)
    check_spatial_dims(spatial_dims)
    check_int("num_templates", num_templates, 0)
    if num_templates and not tied:
        raise ValueError(f"`num_templates` >= 1 replaces the tied kernel by a template "
                         f"bank and needs `tied=True`, received num_templates="
                         f"{num_templates} with tied={tied!r}")
    check_int("basis_size", basis_size, 0)
    check_int("basis_unique", basis_unique, 0)
    for key, value in (("basis_unique", basis_unique),
                       ("basis_orthogonality", basis_orthogonality)):
        if value and not basis_size:
            raise ValueError(f"`{key}` = {value} acts on a shared filter basis and "
                             f"needs `basis_size` >= 1, received basis_size=0")
    if basis_size and (not tied or num_templates):
        raise ValueError(f"`basis_size` >= 1 replaces the tied kernel by a filter basis "
                         f"and needs `tied=True` and `num_templates=0`, received "
                         f"basis_size={basis_size} with tied={tied!r}, "
                         f"num_templates={num_templates}")
    if norm not in NORMS:
        raise ValueError(f"`norm` must be one of {list(NORMS)}, received {norm!r}")
    check_conv_bias(conv_bias, norm)
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1), received {dropout!r}")


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
