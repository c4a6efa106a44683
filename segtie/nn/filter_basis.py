"""A shared filter basis: every use's kernel is its own mix of one small set of filters.

:class:`FilterBasis` is a 3x3 (3x3x3) convolution called at ``num_uses`` uses. Use
``u`` convolves its input with the ``s = basis_size`` filters of one basis ``B``
that every use shares (and, with ``r = unique_size``, with ``r`` filters ``B_u`` of
its own), then mixes those ``s + r`` maps into ``F`` outputs with its own 1x1
coefficients ``C_u``::

    y_u = conv1x1(concat(conv(x, B), conv(x, B_u)), C_u) + bias
        = conv(x, W_u) + bias,       W_u = concat(B, B_u) @ C_u    (over the basis axis)

so use ``u`` is a 3x3 convolution whose kernel lies in the span of the shared basis
(plus its own ``r`` filters): Kang et al.'s shared + non-shared basis. Unlike a
template bank (:mod:`segtie.nn.template_bank`), the cost of a use is also lower when
``s + r`` is small, since the two small convolutions need fewer multiplies than the
composite one.

Tying is real as in :mod:`segtie.nn.recurrent_conv_block`: one ``basis`` variable
read by every call, so backpropagation gives it one gradient, the sum over its uses
(``dL/dB = sum_u dL/dB^(u)`` for an untied copy ``B^(u)`` of ``B`` at each use).

References:
    Kang, Kim & Lee, "Learning Deeply Shared Filter Bases for Efficient ConvNets",
    NeurIPS 2020 (a filter basis shared by the layers of a stage, with a few
    non-shared basis filters per layer).
"""

from __future__ import annotations

import keras
from keras import ops

from segtie.nn.checks import check_int, check_nonnegative
from segtie.nn.per_use import PerUseConvolution
from segtie.nn.template_bank import he_normal_templates


def lecun_normal_per_use(shape, dtype=None):
    """``U`` independent lecun_normal matrices, ``shape = (U, s + r, F)``, fan-in ``s + r``.

    Drawn as one lecun_normal ``(s + r, U * F)`` matrix (Keras would count a fan-in
    of ``U (s + r)`` for the 3-D shape) whose columns are split into the uses.
    """
    num, fan_in, filters = shape
    drawn = keras.initializers.LecunNormal()((fan_in, num * filters), dtype=dtype)
    return ops.moveaxis(ops.reshape(drawn, (fan_in, num, filters)), 1, 0)


def factored_is_cheaper(kernel_elements: int, c_in: int, basis: int, filters: int) -> bool:
    """Whether the two small convolutions need fewer MACs per position than the composite.

    ``basis (K C_in + F) < K C_in F`` with ``K = kernel_elements`` (9 or 27) and
    ``basis = s + r``; with ``C_in = F`` that is ``s + r < K F / (K + 1)`` (0.9 F in 2-D).
    """
    return basis * (kernel_elements * c_in + filters) < kernel_elements * c_in * filters


@keras.saving.register_keras_serializable(package="segtie")
class FilterBasis(PerUseConvolution):
    """A convolution whose kernel at each use is its own mix of a shared filter basis.

    Use ``u`` (stride 1, padding ``same``, channels last) computes
    ``y = x * W_u + bias`` with ``W_u = concat(basis, unique[u]) @ coefficients[u]``
    (see the module docstring). Two ways, the same function: *factored* (``conv(x,
    basis)`` and ``conv(x, unique[u])``, concatenated, then a 1x1 convolution with
    ``coefficients[u]``: ``(s + r)(K C_in + F)`` MACs per output position, ``K =
    kernel_size ** spatial_dims``) or *composed* (``W_u`` formed, then one
    convolution: ``K C_in F`` MACs per position plus ``K C_in (s + r) F`` once per
    call to form it). ``factored=None`` picks whichever needs fewer MACs
    (:func:`factored_is_cheaper`). The shared and the unique filters are two
    convolutions, not one over a concatenated kernel, so that an exported model
    keeps one shared basis filter (a concatenation of constants would be folded into
    a filter per use).

    Initialisation: ``basis`` and every ``unique[u]`` are he_normal (variance
    ``2 / (K C_in)``), every ``coefficients[u]`` lecun_normal with fan-in ``s + r``
    (variance ``1 / (s + r)``), all independent with mean 0, so each entry of a
    composite kernel, ``W_u[i, f] = sum_j B[i, j] C_u[j, f]``, has variance
    ``(s + r) * 2 / (K C_in) * 1 / (s + r) = 2 / (K C_in)``: he_normal, like a
    ``Conv2D`` kernel. Uses start uncorrelated (``Cov(W_u, W_v) = 0``: independent
    coefficients), and no ReLU sits between the two factors, so gain 1 is right for
    the second.

    Bias: one ``bias`` of ``F`` values shared by every use (a normalization follows
    every use in segtie's blocks, as for :class:`~segtie.nn.template_bank.TemplateBank`).

    Precision: the variables are float32 and read without autocasting; the factored
    path casts them to the compute dtype (its ``s + r`` intermediate maps are then
    16-bit under a mixed policy), the composed path forms ``W_u`` in float32 and
    casts it once.

    Parameter count (``K = kernel_size ** spatial_dims``, ``C_in`` input channels,
    ``F = filters``, ``s = basis_size``, ``r = unique_size``, ``U = num_uses``)::

        basis K C_in s  +  unique U K C_in r  +  coefficients U (s + r) F  +  bias F

    Args:
        filters: int >= 1, output channels ``F``.
        basis_size: int >= 1, shared basis filters ``s``.
        num_uses: int >= 1, uses ``U``; each call passes ``use=0 .. U - 1``.
        unique_size: int >= 0, default 0: basis filters of each use's own ``r``.
        kernel_size: int >= 1, odd, default 3.
        spatial_dims: 2 (default; images) or 3 (volumes).
        use_bias: bool, default True: one bias shared by every use.
        factored: None (default: the cheaper way), True or False (see above).
        orthogonality: float >= 0, default 0: weight ``lambda`` of Kang et al.'s
            orthogonality regulariser (:meth:`similarity`). In training each call
            adds ``lambda / U * similarity()`` to the layer's losses, so a forward
            pass that calls every use once adds ``lambda * similarity()`` (Keras'
            ``fit`` adds ``model.losses`` to the loss it minimises).

    Shapes:
        input ``(batch, *spatial, C_in)`` -> output ``(batch, *spatial, F)``, with
        ``spatial`` of ``spatial_dims`` axes; ``basis`` ``(*k, C_in, s)``,
        ``unique`` ``(U, *k, C_in, r)`` (only when ``r >= 1``), ``coefficients``
        ``(U, s + r, F)``, ``bias`` ``(F,)``, all float32.

    Raises:
        ValueError: a count below its minimum, an even ``kernel_size``,
            ``spatial_dims`` not 2 or 3, ``factored`` not None/bool, a negative
            ``orthogonality``, or a ``use`` outside ``[0, num_uses)``.

    References:
        Kang, Kim & Lee, "Learning Deeply Shared Filter Bases for Efficient
        ConvNets", NeurIPS 2020.
    """

    def __init__(self, filters, basis_size, num_uses=1, unique_size=0, kernel_size=3,
                 spatial_dims=2, use_bias=True, factored=None, orthogonality=0.0, **kwargs):
        super().__init__(filters, num_uses=num_uses, kernel_size=kernel_size,
                         spatial_dims=spatial_dims, use_bias=use_bias, **kwargs)
        check_int("basis_size", basis_size, 1)
        check_int("unique_size", unique_size, 0)
        if factored not in (None, True, False):
            raise ValueError(f"`factored` must be None, True or False, received "
                             f"{factored!r} of type {type(factored).__name__}")
        check_nonnegative("orthogonality", orthogonality)
        self.basis_size = basis_size
        self.unique_size = unique_size
        self.factored = factored
        self.orthogonality = float(orthogonality)

    def build(self, input_shape):
        c_in, k = int(input_shape[-1]), (self.kernel_size,) * self.spatial_dims
        self.kernel_shape = (*k, c_in, self.filters)  # of the composite kernel W_u
        width = self.basis_size + self.unique_size
        self.basis = self.add_weight(name="basis", shape=(*k, c_in, self.basis_size),
                                     initializer="he_normal", autocast=False)
        self.unique = (self.add_weight(name="unique",
                                       shape=(self.num_uses, *k, c_in, self.unique_size),
                                       initializer=he_normal_templates, autocast=False)
                       if self.unique_size else None)
        self.coefficients = self.add_weight(
            name="coefficients", shape=(self.num_uses, width, self.filters),
            initializer=lecun_normal_per_use, autocast=False)
        self.add_shared_bias()
        self.runs_factored = (factored_is_cheaper(self.kernel_size ** self.spatial_dims,
                                                  c_in, width, self.filters)
                              if self.factored is None else self.factored)
        self.built = True

    def basis_for(self, use=0):
        """``concat(basis, unique[use])``, float32 ``(*k, C_in, s + r)``."""
        use = self.check_use(use)
        if self.unique is None:
            return self.basis
        return ops.concatenate([self.basis, self.unique[use]], axis=-1)

    def kernel_for(self, use=0):
        """``W_use``, float32 ``(*k, C_in, F)``: the composite kernel of ``use``."""
        return ops.tensordot(self.basis_for(use), self.coefficients[use], axes=1)

    def similarity(self):
        """Kang et al.'s basis similarity: how far the basis filters are from orthonormal.

        With every basis filter flattened to a row of ``G = K C_in`` weights (the
        ``s`` shared ones, then each use's ``r`` own ones: ``B``, ``(s + U r, G)``)
        and ``D = (B B^T - I) ** 2`` elementwise, the mean of ``D`` over the entries
        that pair a shared filter with any filter (``s (s + U r)`` of them) and
        those that pair two own filters of the same use (``U r ** 2``)::

            similarity = (sum D[:s, :] + sum_u sum D[u's block]) / (s (s + U r) + U r^2)

        0 exactly when those filters are orthonormal. Returns a float32 scalar.

        Reference: Kang, Kim & Lee, NeurIPS 2020, Sec. 3.2 (orthogonality
        regularisation of the shared and non-shared basis filters; their code
        averages these entries and weights the mean by ``lambda``).
        """
        s, r, u = self.basis_size, self.unique_size, self.num_uses
        rows = ops.transpose(ops.reshape(self.basis, (-1, s)))  # (s, G)
        if self.unique is not None:
            own = ops.reshape(ops.moveaxis(self.unique, -1, 1), (u * r, -1))  # (U r, G)
            rows = ops.concatenate([rows, own], axis=0)
        d = ops.square(ops.matmul(rows, ops.transpose(rows)) - ops.eye(s + u * r))
        total, count = ops.sum(d[:s]), s * (s + u * r)
        for use in range(u if r else 0):
            block = d[s + use * r:s + (use + 1) * r, s + use * r:s + (use + 1) * r]
            total, count = total + ops.sum(block), count + r * r
        return total / count

    def call(self, inputs, use=0, training=None):
        use = self.check_use(use)
        if training and self.orthogonality:
            self.add_loss(self.orthogonality / self.num_uses * self.similarity())
        if self.runs_factored:
            maps = self.convolve(inputs, self.basis)
            if self.unique is not None:
                maps = ops.concatenate([maps, self.convolve(inputs, self.unique[use])], axis=-1)
            mix = ops.reshape(self.coefficients[use], (1,) * self.spatial_dims
                              + tuple(self.coefficients.shape[1:]))
            outputs = self.convolve(maps, mix)
        else:
            outputs = self.convolve(inputs, self.kernel_for(use))
        return self.add_bias(outputs)

    def get_config(self):
        config = super().get_config()
        config.update(basis_size=self.basis_size, unique_size=self.unique_size,
                      factored=self.factored, orthogonality=self.orthogonality)
        return config
