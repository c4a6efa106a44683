"""Argument checks shared by the layers and the U-Net builder."""

from __future__ import annotations


def check_int(name: str, value, low: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an int (not a bool) >= ``low``.

    Raises:
        ValueError: naming ``name``, the bound and the value received with its type.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}, received {value!r} "
                         f"of type {type(value).__name__}")


def check_nonnegative(name: str, value) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite int or float (not a bool) >= 0.

    Raises:
        ValueError: naming ``name`` and the value received with its type.
    """
    if (not isinstance(value, (int, float)) or isinstance(value, bool)
            or not 0 <= value < float("inf")):
        raise ValueError(f"`{name}` must be a number >= 0, received {value!r} "
                         f"of type {type(value).__name__}")
