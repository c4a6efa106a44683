"""The bottleneck state of the recurrent U-Net (``num_recurrences > 1``).

The passes of the network see the image and the previous pass's probabilities,
while :class:`ConvGRUCell` carries a hidden state from pass to pass in the
bottleneck (Wang et al. 2019). The first pass starts from zeros made by
:class:`ZeroState`, so the model stays a functional graph without ``Lambda``
layers, loadable in Keras' safe mode. Both layers are called once per pass and
are one object each, so their kernels are tied across passes.

References:
    Wang, Gao, Lepetit, Fua, "Recurrent U-Net for Resource-Constrained
    Segmentation", ICCV 2019.
    Ballas et al., "Delving Deeper into Convolutional Networks for Learning Video
    Representations", ICLR 2016 (the convolutional GRU).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from segtie.nn.checks import check_int
from segtie.nn.dims import check_spatial_dims, layer_class


@keras.saving.register_keras_serializable(package="segtie")
class ConvGRUCell(layers.Layer):
    """One step of a convolutional GRU: the gated hidden state of the bottleneck::

        z, r = split(sigmoid(conv_gates([x, h])))      update and reset gates
        c    = tanh(conv_candidate([x, r * h]))
        h'   = (1 - z) * h + z * c

    The layer is called once per pass of the network; it is one layer object, so
    its two kernels are tied across passes like every other layer of the model.

    Parameter count (``C_x`` input channels, ``F = filters``, kernel ``k`` along each
    of the ``d = spatial_dims`` axes)::

        gates:     k^d*(C_x + F)*2F + 2F
        candidate: k^d*(C_x + F)*F  + F
        (= 6 * 3^d F*F + 3F for k = 3 and C_x = F, the U-Net bottleneck:
           54 F*F + 3F in 2-D, 162 F*F + 3F in 3-D)

    Args:
        filters: int >= 1, channels ``F`` of the hidden state.
        kernel_size: int >= 1, odd, default 3.
        spatial_dims: 2 (default) or 3 (``Conv3D``), see :mod:`segtie.nn.dims`.

    Shapes:
        inputs ``[x, h]``: ``x`` ``(batch, *spatial, C_x)``, ``h`` ``(batch, *spatial,
        F)``. Returns the new state ``(batch, *spatial, F)``.

    Raises:
        ValueError: ``filters`` < 1, an even or non-positive ``kernel_size``,
            ``spatial_dims`` not 2 or 3.
    """

    def __init__(self, filters, kernel_size=3, spatial_dims=2, **kwargs):
        super().__init__(**kwargs)
        check_int("filters", filters, 1)
        check_int("kernel_size", kernel_size, 1)
        if kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be odd, received {kernel_size}")
        self.filters = filters
        self.kernel_size = kernel_size
        self.spatial_dims = check_spatial_dims(spatial_dims)

    def build(self, input_shape):
        x_shape, h_shape = input_shape
        conv = dict(kernel_size=self.kernel_size, padding="same", dtype=self.dtype_policy)
        conv_class = layer_class("conv", self.spatial_dims)
        self.gates = conv_class(2 * self.filters, name="gates", **conv)
        self.candidate = conv_class(self.filters, name="candidate", **conv)
        joint = tuple(x_shape[:-1]) + (x_shape[-1] + self.filters,)
        self.gates.build(joint)
        self.candidate.build(joint)
        self.built = True

    def call(self, inputs):
        x, h = inputs
        gates = ops.sigmoid(self.gates(ops.concatenate([x, h], axis=-1)))
        z, r = gates[..., :self.filters], gates[..., self.filters:]
        c = ops.tanh(self.candidate(ops.concatenate([x, r * h], axis=-1)))
        return (1.0 - z) * h + z * c

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size,
                      spatial_dims=self.spatial_dims)
        return config


@keras.saving.register_keras_serializable(package="segtie")
class ZeroState(layers.Layer):
    """Zeros shaped like ``reference`` but with ``channels`` channels (an initial state).

    Args:
        channels: int >= 1.

    Shapes:
        ``(batch, *spatial, C)`` -> ``(batch, *spatial, channels)``, zeros in the layer's
        compute dtype (float32; bfloat16 or float16 under a mixed-precision policy).
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        check_int("channels", channels, 1)
        self.channels = channels

    def call(self, reference):
        zeros = ops.zeros_like(reference[..., :1])
        return zeros + ops.zeros((self.channels,), dtype=zeros.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.channels,)

    def get_config(self):
        config = super().get_config()
        config.update(channels=self.channels)
        return config
