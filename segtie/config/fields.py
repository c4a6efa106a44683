"""Field helpers of the config groups: a field's validation rule, size and spacing checks.

Each field made by :func:`field` carries ``low``, ``high`` and ``choices`` in its
``metadata``, checked by :mod:`segtie.config.checks` when a config is built.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

__all__ = ["check_size", "check_spacing", "field", "is_number"]


def is_number(value: Any) -> bool:
    """An int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_spacing(key: str, value: Any) -> None:
    """``value`` must be null or ``[row, col]`` of two numbers > 0 (mm per pixel).

    Raises:
        ValueError: naming ``key`` and the value received.
    """
    if value is not None and not (isinstance(value, (list, tuple)) and len(value) == 2
                                  and all(is_number(v) and v > 0 for v in value)):
        raise ValueError(f"`{key}` must be [row, col] of two numbers > 0 (mm per pixel) "
                         f"or null, received {value!r}")


def check_size(key: str, value: Any, optional: bool = False, limit: Any = None) -> None:
    """``value`` must be ``[height, width]`` of two positive ints, or ``[depth, height,
    width]`` of three for volumes (each <= ``limit``, of the same length).

    Raises:
        ValueError: naming ``key``, the rule and the value received.
    """
    if value is None and optional:
        return
    limit = limit or (None, None, None)
    if not (isinstance(value, (list, tuple)) and len(value) in (2, 3)
            and (limit[0] is None or len(limit) == len(value)) and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0
            and (high is None or v <= high) for v, high in zip(value, limit))):
        bound = f" no larger than {list(limit)!r}" if limit[0] is not None else ""
        raise ValueError(f"`{key}` must be [height, width] of two positive integers (or "
                         f"[depth, height, width] for volumes){bound}"
                         f"{', or null' if optional else ''}, received {value!r}")


def field(default: Any, *, low: Optional[float] = None, high: Optional[float] = None,
           choices: Optional[tuple] = None, factory: bool = False):
    """A dataclass field carrying its validation rule in ``metadata``."""
    meta = {"low": low, "high": high, "choices": choices}
    if factory:
        return dataclasses.field(default_factory=default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)
