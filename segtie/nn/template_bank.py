"""Soft sharing: every use's kernel is a learned mixture of one small bank of templates.

:class:`TemplateBank` is a 3x3 (3x3x3) convolution called at ``num_uses`` uses; use
``u`` convolves with its own kernel ``W_u = sum_j alpha[u, j] T_j``, mixed from the
``J = num_templates`` templates ``T`` that all uses share. ``J`` is the dial between
tying and not: ``J = 1`` is one tied kernel with a learned scale per use; ``J =
num_uses`` can give every use any kernel (an untied layer, with a few more weights).

Tying is real in the same sense as in :mod:`segtie.nn.recurrent_conv_block`: the
layer owns one ``templates`` and one ``coefficients`` variable that every call reads,
so backpropagation gives each one gradient, the sum over its uses::

    dL/dT_j        = sum_u alpha[u, j] * dL/dW_u
    dL/dalpha[u,j] = <dL/dW_u, T_j>          (sum over every kernel element)

References:
    Savarese & Maire, "Learning Implicitly Recurrent CNNs Through Parameter
    Sharing", ICLR 2019 (soft parameter sharing through a template bank).
"""

from __future__ import annotations

import keras
from keras import ops

from segtie.nn.checks import check_int
from segtie.nn.per_use import PerUseConvolution


def he_normal_templates(shape, dtype=None):
    """``J`` independent he_normal kernels, ``shape = (J, *k, C_in, F)``.

    Drawn as one he_normal kernel ``(*k, C_in, J * F)`` (its fan-in is ``k^d C_in``,
    the fan-in of one template; Keras would count ``J k^d C_in`` for the 5-D shape)
    whose output channels are then split into the ``J`` templates.
    """
    num, *kernel, c_in, filters = shape
    drawn = keras.initializers.HeNormal()((*kernel, c_in, num * filters), dtype=dtype)
    drawn = ops.reshape(drawn, (*kernel, c_in, num, filters))
    return ops.moveaxis(drawn, -2, 0)


def unit_orthogonal_rows(shape, dtype=None):
    """A random orthogonal ``(num_uses, J)`` matrix whose rows are scaled to length 1.

    With ``num_uses <= J`` the rows are orthonormal, so at initialisation the mixed
    kernels of different uses are uncorrelated, as untied he_normal kernels are;
    with more uses than templates the columns are orthonormal and the rows as
    little aligned as ``J`` dimensions allow (``J = 1``: every coefficient is +-1).
    """
    drawn = keras.initializers.Orthogonal()(shape, dtype=dtype)
    return drawn / ops.sqrt(ops.sum(ops.square(drawn), axis=-1, keepdims=True))


@keras.saving.register_keras_serializable(package="segtie")
class TemplateBank(PerUseConvolution):
    """A convolution whose kernel at each use is mixed from a shared bank of templates.

    Use ``u`` computes, with ``*`` a ``kernel_size``-wide convolution (stride 1,
    padding ``same``, channels last)::

        W_u = sum_j coefficients[u, j] * templates[j]        (ops.tensordot)
        y   = x * W_u + bias

    Initialisation: the templates are independent he_normal kernels (variance
    ``2 / (k^d C_in)``) and the coefficient rows have length 1
    (:func:`unit_orthogonal_rows`). Since ``Var(W_u) = sum_j alpha[u,j]^2 Var(T) =
    Var(T)``, each mixed kernel starts with he_normal variance, like the kernel of a
    ``Conv2D``, and ``Cov(W_u, W_v) = <alpha_u, alpha_v> Var(T)`` is 0 for the
    orthonormal rows of ``num_uses <= J``: the uses start distinct.

    Under a per-channel normalization after the use (segtie's blocks: instance norm,
    or batch norm on batch statistics), a use's output depends on the direction of
    ``alpha_u``, not on its length (up to the norm's epsilon): with ``J = 1`` the
    norm divides the per-use scale out again, and the block computes the tied block
    with each use's kernel signed by its coefficient (measured: scales 0.5 and 2
    moved a block's output by 1e-3 of its range; the scale is a dial only with
    ``norm: none``). ``J >= 2`` is what gives the uses different kernels.

    Bias: one ``bias`` of ``F`` values shared by every use (a normalization follows
    every use in segtie's blocks, which removes it; it is kept so that ``norm:
    none`` models have one, and so that ``J = 1`` is exactly a tied ``Conv2D`` with
    a per-use scale).

    Precision: the variables are float32 and read without autocasting; the kernel
    is mixed in float32 and cast once to the compute dtype (bfloat16 under
    ``mixed_bfloat16``), so a use's 16-bit kernel is the rounding of its exact
    mixture, as a ``Conv2D`` kernel is the rounding of its float32 variable.

    Parameter count (``k = kernel_size ** spatial_dims``, ``C_in`` input channels,
    ``F = filters``, ``J = num_templates``, ``U = num_uses``)::

        templates J k C_in F  +  coefficients U J  +  bias F

    Args:
        filters: int >= 1, output channels ``F``.
        num_templates: int >= 1, templates ``J`` in the bank.
        num_uses: int >= 1, uses ``U``; each call passes ``use=0 .. U - 1``.
        kernel_size: int >= 1, odd, default 3.
        spatial_dims: 2 (default; images) or 3 (volumes).
        use_bias: bool, default True: one bias shared by every use.

    Shapes:
        input ``(batch, *spatial, C_in)`` -> output ``(batch, *spatial, F)``, with
        ``spatial`` of ``spatial_dims`` axes; ``templates`` ``(J, *k, C_in, F)``,
        ``coefficients`` ``(U, J)``, ``bias`` ``(F,)``, all float32.

    Raises:
        ValueError: a count < 1, an even ``kernel_size``, ``spatial_dims`` not 2 or
            3, or a ``use`` outside ``[0, num_uses)``.
    """

    def __init__(self, filters, num_templates, num_uses=1, kernel_size=3, spatial_dims=2,
                 use_bias=True, **kwargs):
        super().__init__(filters, num_uses=num_uses, kernel_size=kernel_size,
                         spatial_dims=spatial_dims, use_bias=use_bias, **kwargs)
        check_int("num_templates", num_templates, 1)
        self.num_templates = num_templates

    def build(self, input_shape):
        self.kernel_shape = ((self.kernel_size,) * self.spatial_dims
                             + (int(input_shape[-1]), self.filters))
        self.templates = self.add_weight(
            name="templates", shape=(self.num_templates, *self.kernel_shape),
            initializer=he_normal_templates, autocast=False)
        self.coefficients = self.add_weight(
            name="coefficients", shape=(self.num_uses, self.num_templates),
            initializer=unit_orthogonal_rows, autocast=False)
        self.add_shared_bias()
        self.built = True

    def kernel_for(self, use=0):
        """``W_use``, float32 ``(*k, C_in, F)``: the kernel that ``use`` convolves with."""
        return ops.tensordot(self.coefficients[self.check_use(use)], self.templates, axes=1)

    def call(self, inputs, use=0):
        return self.add_bias(self.convolve(inputs, self.kernel_for(use)))

    def get_config(self):
        config = super().get_config()
        config.update(num_templates=self.num_templates)
        return config
