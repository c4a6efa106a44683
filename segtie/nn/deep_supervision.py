"""Deep supervision of the recurrent U-Net: train on every pass, predict with the last.

The model of :func:`segtie.nn.build_model` always has one output, the logits of
the last pass, so evaluation, ``.keras`` checkpoints and exports are the same for
every ``num_recurrences``. To train on every pass, :func:`build_training_model`
wraps it in a :class:`DeepSupervisionModel` that shares all its layers (no copy)
and whose only differences are:

- ``call`` returns the list of the passes' logits (read from the identity layers
  ``pass_1 .. pass_R`` of the graph, so one forward pass computes them all);
- ``compute_loss`` is ``sum_r w_r * loss(y, logits_r)`` with the weights of
  :func:`recurrence_weights` (they sum to 1, so the loss stays on the scale of the
  compiled loss and regularization losses are counted once);
- metrics and ``predict`` use the last pass only;
- ``save`` saves the inference model, so a checkpoint callback writes the
  single-output model that evaluation loads.

``model.fit`` and ``model.evaluate`` then work unchanged, with the compiled loss
and metrics. With ``num_recurrences: 1`` the model itself is returned.

``model.deep_supervision: true`` is the other kind, over scales (nnU-Net's; Isensee
et al., "nnU-Net", Nature Methods 2021; Lee et al., "Deeply-Supervised Nets", AISTATS
2015): :class:`ScaleSupervisionModel` gives each coarser decoder output
``decoder_output_<i>`` (resolution ``2 ** -i``) a 1x1 head of its own and trains on
``sum_i w_i * loss(y subsampled by 2 ** i, logits_i)``, ``w_i`` of
:func:`scale_weights`. The heads belong to the training model only (they are in its
resumable backup, not in ``best.keras``).
"""

from __future__ import annotations

import keras

from segtie.nn.dims import layer_class


def recurrence_weights(num_recurrences: int, decay: float) -> list:
    """Loss weights of the passes: ``w_r`` proportional to ``decay ** (R - r)``, sum 1.

    ``decay = 1`` weights every pass equally; ``decay = 0`` supervises the last
    pass only; in between, earlier passes count geometrically less.

    Raises:
        ValueError: ``num_recurrences`` < 1 or ``decay`` outside [0, 1].
    """
    if not isinstance(num_recurrences, int) or num_recurrences < 1:
        raise ValueError(f"`num_recurrences` must be an integer >= 1, received "
                         f"{num_recurrences!r}")
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"`recurrence_loss_decay` must be in [0, 1], received {decay!r}")
    raw = [decay ** (num_recurrences - r) for r in range(1, num_recurrences + 1)]
    return [w / sum(raw) for w in raw]


class _WeightedOutputs(keras.Model):
    """A training model whose call returns several logits, trained on their weighted loss.

    Subclasses set ``inference_model`` (what ``save`` writes), ``metric_output`` (the
    index of the output that metrics and ``predict`` see) and ``output_weights``
    (one float per output), and may map the labels per output (``output_labels``).
    """

    metric_output = -1
    output_weights: list

    def output_labels(self, y, index: int):
        """The labels output ``index`` is scored against (``y`` itself by default)."""
        return y

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = 0.0
        for i, (weight, logits) in enumerate(zip(self.output_weights, y_pred)):
            total += weight * super().compute_loss(x, self.output_labels(y, i), logits,
                                                   sample_weight, training=training)
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y, y_pred[self.metric_output], sample_weight)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(x, training=False)[self.metric_output]

    def save(self, filepath, *args, **kwargs):
        """Save the inference model (single output: the logits it predicts with)."""
        return self.inference_model.save(filepath, *args, **kwargs)


class DeepSupervisionModel(_WeightedOutputs):
    """Trains ``model`` on the weighted loss of all its passes (see the module doc).

    Args:
        model: a recurrent U-Net from :func:`segtie.nn.unet.build_unet` with
            ``num_recurrences`` = ``len(weights)``.
        weights: list of floats, the loss weight of each pass, first to last.

    Raises:
        ValueError: ``model`` lacks the layers ``pass_1 .. pass_R``.
    """

    def __init__(self, model: keras.Model, weights, **kwargs):
        super().__init__(name=kwargs.pop("name", f"{model.name}_deep_supervision"), **kwargs)
        names = [f"pass_{r}" for r in range(1, len(weights) + 1)]
        missing = [n for n in names if n not in {layer.name for layer in model.layers}]
        if missing:
            raise ValueError(f"`model` must have the pass layers {names} of a recurrent "
                             f"U-Net with num_recurrences = {len(weights)}; missing {missing}")
        self.inference_model = model
        self.passes = keras.Model(model.inputs, [model.get_layer(n).output for n in names],
                                  name=f"{model.name}_passes")
        self.pass_weights = [float(w) for w in weights]
        self.built = True  # every layer is the built model's

    @property
    def output_weights(self):
        return self.pass_weights

    def call(self, inputs, training=None):
        return self.passes(inputs, training=training)


def scale_weights(depth: int) -> list:
    """Loss weights of decoder levels ``0 .. depth - 3`` (full resolution first).

    nnU-Net's: level ``i`` (resolution ``2 ** -i``) weighs ``2 ** -i``, the coarsest
    decoder level (``depth - 2``) 0 and is left out, normalised to sum 1. Depth 4:
    ``[2/3, 1/3]``; depth 5: ``[4/7, 2/7, 1/7]``.

    Raises:
        ValueError: ``depth`` < 4 (no level between the finest and the coarsest).
    """
    if not isinstance(depth, int) or depth < 4:
        raise ValueError(f"deep supervision needs `depth` >= 4, received {depth!r}")
    raw = [2.0 ** -i for i in range(depth - 2)]
    return [w / sum(raw) for w in raw]


def subsample(labels, factor: int):
    """Labels ``(batch, *spatial, channels)`` at ``1 / factor`` of the resolution.

    Nearest neighbour, as nnU-Net downsamples its segmentations: element ``factor // 2``
    of each ``factor``-wide block along every spatial axis (the block's centre, or the
    one after it for even ``factor``). Every spatial size must be divisible by
    ``factor`` (the U-Net's rule already is). Any dtype (float binary masks, integer
    class maps).
    """
    start = factor // 2
    spatial = (slice(start, None, factor),) * (len(labels.shape) - 2)
    return labels[(slice(None),) + spatial + (slice(None),)]


class ScaleSupervisionModel(_WeightedOutputs):
    """Trains ``model`` on its full-resolution and coarser decoder outputs (module doc).

    Args:
        model: a U-Net from :func:`segtie.nn.unet.build_unet` with
            ``deep_supervision=True`` (layers ``decoder_output_1 .. _<depth - 3>``).
        weights: list of floats, ``[w_0, w_1, ...]`` of :func:`scale_weights`: the
            full-resolution logits' and then each marked level's.

    The heads are 1x1 convolutions ``(F_i -> num_classes)``, float32 like the model's
    own; their weights are the only ones this model adds.

    Raises:
        ValueError: ``model`` lacks one of the layers ``decoder_output_<i>``.
    """

    def __init__(self, model: keras.Model, weights, **kwargs):
        super().__init__(name=kwargs.pop("name", f"{model.name}_scale_supervision"), **kwargs)
        names = [f"decoder_output_{i}" for i in range(1, len(weights))]
        missing = [n for n in names if n not in {layer.name for layer in model.layers}]
        if missing:
            raise ValueError(f"`model` must be built with deep_supervision=True and have "
                             f"the layers {names}; missing {missing}")
        spatial_dims = len(model.output.shape) - 2
        classes = model.output.shape[-1]
        self.inference_model = model
        self.heads = [layer_class("conv", spatial_dims)(classes, 1, name=f"head_{n}",
                                                        dtype="float32") for n in names]
        outputs = [model.output] + [head(model.get_layer(n).output)
                                    for head, n in zip(self.heads, names)]
        self.scales = keras.Model(model.inputs, outputs, name=f"{model.name}_scales")
        self.scale_weights = [float(w) for w in weights]
        self.built = True  # the heads are built by the call above

    metric_output = 0  # the full-resolution logits

    @property
    def output_weights(self):
        return self.scale_weights

    def output_labels(self, y, index: int):
        return y if index == 0 else subsample(y, 2 ** index)

    def call(self, inputs, training=None):
        return self.scales(inputs, training=training)


def saved_model_of(model: keras.Model) -> keras.Model:
    """The model that ``model.save`` writes: a training wrapper's inference model, or itself."""
    return getattr(model, "inference_model", model)


def build_training_model(model: keras.Model, model_config) -> keras.Model:
    """The model to compile and fit: ``model`` itself, or its deep supervision.

    Args:
        model: from :func:`segtie.nn.build_model`.
        model_config: the config's ``model`` group (``num_recurrences``,
            ``recurrence_loss_decay``, ``deep_supervision``, ``depth``).

    Returns:
        a :class:`ScaleSupervisionModel` with ``deep_supervision``, a
        :class:`DeepSupervisionModel` with ``num_recurrences > 1``, else ``model``.
    """
    if model_config.deep_supervision:
        return ScaleSupervisionModel(model, scale_weights(model_config.depth))
    if model_config.num_recurrences == 1:
        return model
    weights = recurrence_weights(model_config.num_recurrences,
                                 model_config.recurrence_loss_decay)
    return DeepSupervisionModel(model, weights)
