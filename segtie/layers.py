"""The tied layers: one convolution kernel, many uses.

Tying is done the Keras way, by calling one sublayer several times: a
:class:`keras.layers.Conv2D` built once owns exactly one ``kernel`` (and ``bias``)
variable, and every call of it reads that variable. Backpropagation through the
unrolled calls therefore gives that variable one gradient, the sum of the gradients
of its uses; an optimizer step updates it once and every use sees the update; saving
stores it once. No weights are copied and no ``.kernel`` attribute is reassigned.

References:
    Alom et al., "Recurrent Residual Convolutional Neural Network based on U-Net
    (R2U-Net) for Medical Image Segmentation", arXiv:1802.06955, 2018.
    Liang & Hu, "Recurrent Convolutional Neural Network for Object Recognition",
    CVPR 2015 (the recurrent convolutional layer).
"""

from __future__ import annotations

import keras
from keras import layers

NORMS = ("batch", "none")


def _check_int(name: str, value, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}, received {value!r} "
                         f"of type {type(value).__name__}")


@keras.saving.register_keras_serializable(package="segtie")
class RecurrentConvBlock(layers.Layer):
    """A U-Net block whose second convolution is one kernel used ``num_iterations`` times.

    The block maps ``x`` to ``filters`` channels with an entry 3x3 convolution, then
    applies the tied 3x3 convolution ``K`` recurrently, adding the block's input back
    before each reuse (the recurrent convolutional layer of R2U-Net)::

        x0 = act(norm_e(conv_entry(x)))
        h  = act(norm_1(K(x0)))
        h  = act(norm_t(K(x0 + h)))      for t = 2 .. num_iterations

    With ``num_iterations=1`` this is exactly the plain U-Net double convolution.
    With ``tied=False`` each use gets its own kernel (the untied baseline and the
    reference for the tying tests); the computation is otherwise identical.

    Parameter count (``norm="batch"``, kernel 3x3, ``C_in`` input channels,
    ``F = filters``; batch-norm counts its 4 per-channel variables, 2 trainable)::

        entry: 9*C_in*F + F + 4F
        tied : 9*F*F + F                      (independent of num_iterations)
        norms: 4F                             (norm_per_iteration=False)
               4F * num_iterations            (norm_per_iteration=True)
        untied (tied=False): (9*F*F + F) * num_iterations

    Args:
        filters: int, output channels ``F``.
        num_iterations: int >= 1, uses of the tied kernel.
        norm: ``"batch"`` or ``"none"``.
        norm_per_iteration: bool, one normalization per use (True) or one shared by
            all uses (False, default; as in the R2U-Net reference code, and the
            parameter count is then exactly independent of ``num_iterations``).
        tied: bool, share one kernel across uses (default True).
        dropout: float in [0, 1), spatial dropout after the block.

    Shapes:
        input ``(batch, height, width, C_in)`` -> output ``(batch, height, width, F)``.

    Raises:
        ValueError: ``filters`` or ``num_iterations`` < 1, unknown ``norm``.
    """

    def __init__(self, filters, num_iterations=2, norm="batch", norm_per_iteration=False,
                 tied=True, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        _check_int("filters", filters, 1)
        _check_int("num_iterations", num_iterations, 1)
        if norm not in NORMS:
            raise ValueError(f"`norm` must be one of {list(NORMS)}, received {norm!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), received {dropout!r}")
        self.filters = filters
        self.num_iterations = num_iterations
        self.norm = norm
        self.norm_per_iteration = norm_per_iteration
        self.tied = tied
        self.dropout = float(dropout)

    def _make_norm(self, name):
        if self.norm == "batch":
            return layers.BatchNormalization(name=name)
        return layers.Identity(name=name)

    def build(self, input_shape):
        conv = dict(kernel_size=3, padding="same", kernel_initializer="he_normal")
        self.entry_conv = layers.Conv2D(self.filters, name="entry_conv", **conv)
        self.entry_norm = self._make_norm("entry_norm")
        n_convs = 1 if self.tied else self.num_iterations
        self.convs = [layers.Conv2D(self.filters, name=f"tied_conv_{i}", **conv)
                      for i in range(n_convs)]
        n_norms = self.num_iterations if self.norm_per_iteration else 1
        self.norms = [self._make_norm(f"norm_{i}") for i in range(n_norms)]
        self.drop = layers.SpatialDropout2D(self.dropout) if self.dropout else None

        self.entry_conv.build(input_shape)
        inner = tuple(input_shape[:-1]) + (self.filters,)
        self.entry_norm.build(inner)
        for layer in self.convs + self.norms:
            layer.build(inner)
        self.built = True

    def conv_for(self, iteration):
        """The convolution layer used at ``iteration`` (the same object for all if tied)."""
        return self.convs[0] if self.tied else self.convs[iteration]

    def call(self, inputs, training=None):
        x0 = keras.ops.relu(self.entry_norm(self.entry_conv(inputs), training=training))
        h = None
        for t in range(self.num_iterations):
            conv = self.conv_for(t)
            norm = self.norms[t if self.norm_per_iteration else 0]
            h = conv(x0 if h is None else x0 + h)
            h = keras.ops.relu(norm(h, training=training))
        if self.drop is not None:
            h = self.drop(h, training=training)
        return h

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, num_iterations=self.num_iterations,
                      norm=self.norm, norm_per_iteration=self.norm_per_iteration,
                      tied=self.tied, dropout=self.dropout)
        return config
