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
"""

from __future__ import annotations

import keras


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


class DeepSupervisionModel(keras.Model):
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

    def call(self, inputs, training=None):
        return self.passes(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        total = 0.0
        for weight, logits in zip(self.pass_weights, y_pred):
            total += weight * super().compute_loss(x, y, logits, sample_weight,
                                                   training=training)
        return total

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y, y_pred[-1], sample_weight)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(x, training=False)[-1]

    def save(self, filepath, *args, **kwargs):
        """Save the inference model (single output: the last pass's logits)."""
        return self.inference_model.save(filepath, *args, **kwargs)


def build_training_model(model: keras.Model, model_config) -> keras.Model:
    """The model to compile and fit: ``model`` itself, or its deep supervision.

    Args:
        model: from :func:`segtie.nn.build_model`.
        model_config: the config's ``model`` group (``num_recurrences``,
            ``recurrence_loss_decay``).

    Returns:
        ``model`` when ``num_recurrences == 1``, else a :class:`DeepSupervisionModel`.
    """
    if model_config.num_recurrences == 1:
        return model
    weights = recurrence_weights(model_config.num_recurrences,
                                 model_config.recurrence_loss_decay)
    return DeepSupervisionModel(model, weights)
