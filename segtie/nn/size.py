"""The parameter count of :func:`segtie.nn.unet.build_unet`, as a formula.

:func:`parameter_count` is written from the formula below, not from a built model,
so the tests that compare it with ``model.count_params()`` check the architecture
against its documentation; the budget search also uses it (a model need not be
built to be sized). Counts are of all weights, as ``count_params()`` gives them
(batch norm: 4 per channel, ``gamma``, ``beta`` trainable, the moving mean and
variance not).

Notation: ``F_i = base_filters * width_multiplier ** i``; ``n = num_iterations``;
``C = num_classes``; ``c_0 = in_channels + (C if num_recurrences > 1 else 0)``,
``c_i = F_{i-1}``; ``N(F)`` the weights of one normalization: ``4F`` for ``batch``,
``2F`` for ``instance`` (scale and offset, no running statistics), 0 for ``none``;
``k = 3 ** d`` and ``s = 2 ** d`` the weights per channel pair of a 3x3 (3x3x3) and a
2x2 (2x2x2) kernel in ``d = spatial_dims`` dimensions (9 and 4 in 2-D, 27 and 8 in
3-D); ``J = num_templates``; ``s = basis_filters(F)`` (``basis_size``, or
``basis_ratio`` times the block's width) and ``r = basis_unique``::

    block(c, F, u, v) = kcF + F                                entry 3x3(x3) convolution
                      + kernel(F, v)
                      + N(F) * (1 + (n if norm_per_iteration else 1)) * u
    kernel(F, v) = (kF^2 + F) * (1 if tied else n)             the tied 3x3(x3) kernel (J = 0)
                 = J kF^2 + v n J + F                          a bank of J templates (J >= 1):
                                                               coefficients for v sites x n uses
                 = kFs + v n (kFr + (s + r) F) + F             a filter basis of s (s >= 1):
                                                               shared basis, per-use unique
                                                               filters and 1x1 coefficients
    proj_i = c_i F_i + F_i   if level_projection and c_i != F_i, else 0
    e_i    = F_i if proj_i else c_i                            block input width

    encoder = sum_i proj_i + sum_i block(e_i, F_i, 1, 1)       (tie_levels: false)
            = sum_i proj_i + block(F, F, L, depth)              (tie_levels: true)
    decoder = sum_{i<depth-1} (s F_{i+1} F_i + F_i) + block(2F_i, F_i, 1, 1)
            = sF^2 + F + block(2F, F, L - 1, depth - 1)         (tie_decoder: true)
    gru     = 6k F_b^2 + 3 F_b    if num_recurrences > 1, F_b = F_{depth-1}
    head    = F_0 C + C
    total   = encoder + decoder + gru + head   (times num_recurrences if untied)

With ``conv_bias: false`` every ``+ F`` of ``block`` and ``kernel`` (a block
convolution's bias) is 0; projections, up-convolutions and the head keep theirs.
Here ``L = depth if norm_per_level else 1`` (tied levels share normalization only
when ``norm_per_level`` is false). The tied encoder's count is independent of
``depth`` when ``norm_per_level`` is false, and grows only by ``N(F)`` per norm
and level otherwise; every count is independent of ``num_iterations`` when tied
and of ``num_recurrences``. A bank adds ``J - 1`` kernels and ``v n J`` coefficients
to the tied count: ``J = 1`` is the tied kernel plus one scale per use. A basis
is *linear* in ``F`` where the tied kernel is quadratic: it saves weights when
``s (k + v n) + r v n (k + 1) < kF``, and a budget buys a wider model with it.

References:
    Savarese & Maire, "Learning Implicitly Recurrent CNNs Through Parameter
    Sharing", ICLR 2019 (the template bank).
    Kang, Kim & Lee, "Learning Deeply Shared Filter Bases for Efficient ConvNets",
    NeurIPS 2020 (the filter basis).
"""

from __future__ import annotations

from segtie.nn.unet import basis_filters, image_channels, level_widths

NORM_WEIGHTS_PER_CHANNEL = {"batch": 4, "instance": 2, "none": 0}


def block_count(c_in: int, filters: int, uses: int, num_iterations: int, norm: str,
                norm_per_iteration: bool, tied: bool = True, spatial_dims: int = 2,
                num_templates: int = 0, sites: int = 1, basis_size: int = 0,
                basis_unique: int = 0, conv_bias: bool = True) -> int:
    """Weights of one :class:`~segtie.nn.recurrent_conv_block.RecurrentConvBlock`.

    ``uses`` sets of norms; ``sites`` call sites (each with its ``num_iterations``
    bank coefficients when ``num_templates`` >= 1, or basis coefficients and unique
    filters when ``basis_size`` >= 1: here the block's own ``s``, already resolved).
    """
    norm_size = NORM_WEIGHTS_PER_CHANNEL[norm] * filters
    norms = 1 + (num_iterations if norm_per_iteration else 1)
    k = 3 ** spatial_dims
    b = filters if conv_bias else 0  # the bias of one convolution
    if basis_size:
        per_use = k * filters * basis_unique + (basis_size + basis_unique) * filters
        kernel = k * filters * basis_size + sites * num_iterations * per_use + b
    elif num_templates:
        kernel = (num_templates * k * filters * filters
                  + sites * num_iterations * num_templates + b)
    else:
        kernel = (k * filters * filters + b) * (1 if tied else num_iterations)
    return k * c_in * filters + b + kernel + norm_size * norms * uses


def parameter_count(in_channels=3, num_classes=1, base_filters=16, depth=4,
                    num_iterations=2, norm="batch", norm_per_iteration=False, tied=True,
                    width_multiplier=2, tie_levels=False, tie_decoder=False,
                    level_projection=False, norm_per_level=True, num_recurrences=1,
                    tie_recurrences=True, spatial_dims=2, num_templates=0, basis_size=0,
                    basis_unique=0, basis_ratio=0.0, conv_bias=True, **_) -> int:
    """The number of weights of ``build_unet(**same arguments)``, from the formula.

    Arguments that do not change the count (``dropout``, ``recompute``, ``name``)
    are accepted and ignored, so ``parameter_count(**unet_arguments(config))`` works.

    Returns:
        int, equal to ``build_unet(...).count_params()``.
    """
    widths = level_widths(base_filters, width_multiplier, depth)
    inputs = [image_channels(in_channels, num_classes, num_recurrences)] + widths[:-1]

    def block(c, f, uses, sites=1):
        return block_count(c, f, uses, num_iterations, norm, norm_per_iteration, tied,
                           spatial_dims, num_templates, sites,
                           basis_filters(f, basis_size, basis_ratio), basis_unique,
                           conv_bias)

    k, s = 3 ** spatial_dims, 2 ** spatial_dims

    projected = [level_projection and c != f for c, f in zip(inputs, widths)]
    total = sum(c * f + f for c, f, p in zip(inputs, widths, projected) if p)
    if tie_levels:
        entry = widths[0] if projected[0] else inputs[0]
        total += block(entry, widths[0], depth if norm_per_level else 1, depth)
    else:
        total += sum(block(f if p else c, f, 1)
                     for c, f, p in zip(inputs, widths, projected))
    if tie_decoder and depth > 1:
        f = widths[0]
        total += s * f * f + f + block(2 * f, f, depth - 1 if norm_per_level else 1,
                                       depth - 1)
    else:
        total += sum(s * widths[i + 1] * f + f + block(2 * f, f, 1)
                     for i, f in enumerate(widths[:-1]))
    if num_recurrences > 1:
        total += 6 * k * widths[-1] ** 2 + 3 * widths[-1]
    total += widths[0] * num_classes + num_classes
    return total * (1 if tie_recurrences else num_recurrences)
