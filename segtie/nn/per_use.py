"""What the layers with a kernel per use share: :class:`PerUseConvolution`.

:class:`~segtie.nn.template_bank.TemplateBank` and
:class:`~segtie.nn.filter_basis.FilterBasis` are both one layer object called at
``num_uses`` uses (``layer(x, use=u)``), each use convolving with a kernel built from
variables that all uses share. This base holds their common arguments and checks,
the ``use`` check, the same-padding convolution in the compute dtype, the shared
bias, the output shape and the common config keys; the subclasses create their
variables and say how a use's kernel is made.
"""

from __future__ import annotations

from keras import layers, ops

from segtie.nn.checks import check_int
from segtie.nn.dims import check_spatial_dims


class PerUseConvolution(layers.Layer):
    """Base of a ``kernel_size``-wide, stride-1, ``same``-padded convolution with uses.

    Args:
        filters: int >= 1, output channels ``F``.
        num_uses: int >= 1, uses ``U``; each call passes ``use=0 .. U - 1``.
        kernel_size: int >= 1, odd.
        spatial_dims: 2 (images) or 3 (volumes).
        use_bias: bool: one bias of ``F`` values shared by every use (float32 ``(F,)``,
            created by :meth:`add_shared_bias`).

    Raises:
        ValueError: a count below 1, an even ``kernel_size``, ``spatial_dims`` not 2
            or 3 (and, from :meth:`check_use`, a ``use`` outside ``[0, num_uses)``).
    """

    def __init__(self, filters, num_uses=1, kernel_size=3, spatial_dims=2, use_bias=True,
                 **kwargs):
        super().__init__(**kwargs)
        check_int("filters", filters, 1)
        check_int("num_uses", num_uses, 1)
        check_int("kernel_size", kernel_size, 1)
        if kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be odd, received {kernel_size}")
        check_spatial_dims(spatial_dims)
        self.filters = filters
        self.num_uses = num_uses
        self.kernel_size = kernel_size
        self.spatial_dims = spatial_dims
        self.use_bias = use_bias

    def add_shared_bias(self):
        """Create ``self.bias`` (zeros, float32 ``(F,)``) when ``use_bias``, else None."""
        self.bias = (self.add_weight(name="bias", shape=(self.filters,),
                                     initializer="zeros", autocast=False)
                     if self.use_bias else None)

    def check_use(self, use) -> int:
        """Return ``use`` if it is an integer in ``[0, num_uses)``; else ``ValueError``."""
        if not isinstance(use, int) or isinstance(use, bool) or not 0 <= use < self.num_uses:
            raise ValueError(f"`use` must be an integer in [0, {self.num_uses}), received "
                             f"{use!r} of type {type(use).__name__}")
        return use

    def convolve(self, x, kernel):
        """``x`` convolved with float32 ``kernel`` cast to the compute dtype (same padding)."""
        return ops.conv(x, ops.cast(kernel, self.compute_dtype), strides=1, padding="same",
                        data_format="channels_last")

    def add_bias(self, outputs):
        """``outputs`` plus the shared bias (when the layer has one)."""
        if self.bias is None:
            return outputs
        return outputs + ops.cast(self.bias, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, num_uses=self.num_uses,
                      kernel_size=self.kernel_size, spatial_dims=self.spatial_dims,
                      use_bias=self.use_bias)
        return config
