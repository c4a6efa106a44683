"""Mixed precision: build a model under a Keras dtype policy."""

from __future__ import annotations

import contextlib

import keras

__all__ = ["dtype_policy"]


@contextlib.contextmanager
def dtype_policy(name: str):
    """Build layers under Keras' global dtype policy ``name``; restore the old one after.

    Layers keep the policy they were built with (it is saved in ``.keras`` files),
    so only construction needs to happen inside.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
