"""An ensemble of trained segmentation models as one Keras model: the mean of their logits.

nnU-Net ensembles the models of its five folds (and of its configurations) by averaging
their softmax probabilities (Isensee et al., "nnU-Net", Nature Methods 2021); segtie
averages the *logits*, as its mirroring TTA does (:func:`segtie.inference.predict_logits`),
so the ensemble is again a model that maps images to logits and every path that takes a
checkpoint (evaluate, predict, export, serve) takes it unchanged. For one class the mean
of the logits is the logit of the geometric mean of the members' odds.

The members keep their own variables (nothing is copied or re-initialised): the
ensemble's weights are exactly the members' weights, its parameter count their sum.
"""

from __future__ import annotations

from typing import Sequence

import keras

__all__ = ["build_ensemble"]


def _signature(model: keras.Model) -> tuple:
    """``(input rank, input channels, output channels)`` of a one-input, one-output model."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"Ensemble members must have one input and one output, model "
                         f"{model.name!r} has {len(model.inputs)} and {len(model.outputs)}")
    image, logits = model.inputs[0].shape, model.outputs[0].shape
    return len(image), image[-1], logits[-1]


def build_ensemble(members: Sequence[keras.Model], name: str = "ensemble") -> keras.Model:
    """One functional model whose output is the mean of the members' logits.

    Each member becomes a nested functional model ``member_<i>`` over the member's own
    layers (so two copies of one architecture, both named ``recurrent_unet``, can sit
    side by side); its variables are the member's, shared, not copied.

    Args:
        members: two or more Keras models with one input ``(batch, *spatial, C)`` and
            one output of logits ``(batch, *spatial, K)``, all with the same rank, ``C``
            and ``K`` (e.g. the same recipe trained with different seeds).
        name: the ensemble model's name.

    Shapes:
        input ``(batch, height, width, C)`` float32 (``(batch, depth, height, width, C)``
        for volumes), output the mean logits ``(batch, height, width, K)`` float32.

    Returns:
        A ``keras.Model``; ``count_params()`` is the members' sum.

    Raises:
        ValueError: fewer than two members, or members that differ in input rank,
            input channels or number of classes (names the member and both values).
    """
    members = list(members)
    if len(members) < 2:
        raise ValueError(f"An ensemble needs at least 2 members, received {len(members)}")
    first = _signature(members[0])
    for i, member in enumerate(members[1:], start=1):
        other = _signature(member)
        for what, a, b in zip(("input rank", "input channels", "output classes"), first, other):
            if a != b:
                raise ValueError(f"Ensemble member {i} ({member.name!r}) has {what} {b}, "
                                 f"member 0 ({members[0].name!r}) has {a}")
    rank, channels, _ = first
    image = keras.Input((None,) * (rank - 2) + (channels,), name="image")
    logits = [keras.Model(m.inputs[0], m.outputs[0], name=f"member_{i}")(image)
              for i, m in enumerate(members)]
    mean = keras.layers.Average(name="mean_logits", dtype="float32")(logits)
    return keras.Model(image, mean, name=name)
