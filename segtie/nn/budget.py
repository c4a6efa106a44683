"""Parameter and memory budgets: the widest base width that fits.

A model's weight count is a quadratic and its activation count a linear function of
``base_filters`` (every width is a multiple of it). :func:`fit_base_filters` sizes
weights with the formula of :mod:`segtie.nn.size` and activations by tracing the
models of widths 1 and 2 at the real image size (:mod:`segtie.nn.profile`) and
extending the line, so no wide model is built to find out that it is too wide. The
memory figure is :func:`segtie.nn.profile.training_memory_bytes` with Adam's two
slots; one megabyte is ``2**20`` bytes. A filter basis sized by ``basis_ratio`` is
resolved at every candidate width by the formula itself
(:func:`~segtie.nn.unet_rules.basis_filters`), so it stays that fraction of the width
the search picks; a fixed ``basis_size`` stays fixed (its rule, at most ``3 ** d`` x
the width filters, is then checked by :func:`~segtie.nn.unet.build_unet` at the
chosen width).
"""

from __future__ import annotations

import inspect
from typing import Callable, Optional, Sequence

from segtie.nn import profile
from segtie.nn.size import parameter_count
from segtie.nn.unet import build_unet, check_unet_arguments

MAX_WIDTH = 2 ** 16


def widest(cost: Callable[[int], float], budget: float) -> Optional[int]:
    """The largest ``w >= 1`` with ``cost(w) <= budget`` (``cost`` non-decreasing), or None."""
    if cost(1) > budget:
        return None
    low, high = 1, 2
    while high <= MAX_WIDTH and cost(high) <= budget:
        low, high = high, high * 2
    while high - low > 1:  # cost(low) fits, cost(high) does not (or high is past the cap)
        mid = (low + high) // 2
        low, high = (mid, high) if cost(mid) <= budget else (low, mid)
    return low


def activation_line(args: dict, image_size: Sequence[int]) -> Callable[[int], int]:
    """Activation elements per image as a function of ``base_filters``."""
    counts = [profile.activation_elements(profile.trace_uses(
        build_unet(**{**args, "base_filters": w}), image_size)) for w in (1, 2)]
    slope = counts[1] - counts[0]
    return lambda w: counts[0] + slope * (w - 1)


def fit_base_filters(args: dict, param_budget: Optional[int] = None,
                     memory_budget_mb: Optional[float] = None,
                     image_size: Optional[Sequence[int]] = None,
                     batch_size: Optional[int] = None) -> int:
    """The widest ``base_filters`` within the budgets.

    Args:
        args: :func:`~segtie.nn.unet.build_unet` arguments (``base_filters`` is
            ignored).
        param_budget: int or None, the most weights (``count_params()``).
        memory_budget_mb: float or None, the most estimated training-step memory.
        image_size: ``[H, W]``, needed with ``memory_budget_mb``.
        batch_size: int, needed with ``memory_budget_mb``.

    Returns:
        int, the base width.

    Raises:
        ValueError: no width fits (the message gives the narrowest model's size), a
            memory budget without ``image_size``/``batch_size``, or arguments that
            :func:`~segtie.nn.unet.check_unet_arguments` rejects (a budget with
            ``tie_levels`` and no ``level_projection`` among them).
    """
    if param_budget is None and memory_budget_mb is None:
        raise ValueError("`param_budget` or `memory_budget_mb` must be set, received "
                         "neither")
    defaults = {name: parameter.default for name, parameter in
                inspect.signature(build_unet).parameters.items()}
    check_unet_arguments(**{**defaults, **args}, sized_by_budget=True)
    costs = []
    if param_budget is not None:
        costs.append(("param_budget", param_budget, "weights",
                      lambda w: parameter_count(**{**args, "base_filters": w})))
    if memory_budget_mb is not None:
        if image_size is None or batch_size is None:
            raise ValueError("`memory_budget_mb` needs the image size and batch size; "
                             f"received image_size={image_size!r}, batch_size={batch_size!r}")
        activations = activation_line(args, image_size)

        def memory(w):
            count = parameter_count(**{**args, "base_filters": w})
            estimate = profile.training_memory_bytes(count, activations(w), batch_size)
            return estimate / profile.MEGABYTE

        costs.append(("memory_budget_mb", memory_budget_mb, "MB", memory))
    width = MAX_WIDTH
    for key, budget, unit, cost in costs:
        fit = widest(cost, budget)
        if fit is None:
            raise ValueError(f"`{key}` = {budget} is too small: the narrowest model "
                             f"(base_filters = 1) needs {cost(1):,.6g} {unit}")
        width = min(width, fit)
    return width
