"""The tied block: one convolution kernel, many uses.

:class:`RecurrentConvBlock` is the U-Net block, tied across its iterations and
callable at several sites of a model. The recurrent U-Net's bottleneck state
(``num_recurrences > 1``) is in :mod:`segtie.nn.recurrence`, the normalizations in
:mod:`segtie.nn.norms`.

Tying is done the Keras way, by calling one sublayer several times: a
:class:`keras.layers.Conv2D` (``Conv3D`` for volumes) built once owns exactly one ``kernel`` (and ``bias``)
variable, and every call of it reads that variable. Backpropagation through the
unrolled calls therefore gives that variable one gradient, the sum of the gradients
of its uses; an optimizer step updates it once and every use sees the update; saving
stores it once. No weights are copied and no ``.kernel`` attribute is reassigned.
With ``num_templates = J >= 1`` the tied kernel is replaced by soft sharing: every
(call site, iteration) use convolves with its own mixture of one bank of ``J``
templates (:class:`~segtie.nn.template_bank.TemplateBank`, Savarese & Maire 2019),
one layer object called at every use like the tied convolution. With
``basis_size = s >= 1`` it is replaced by a shared filter basis instead
(:class:`~segtie.nn.filter_basis.FilterBasis`, Kang et al. 2020): every use mixes
the ``s`` filters of the block's one basis (and ``basis_unique`` of its own) with
its own 1x1 coefficients.

References:
    Alom et al., "Recurrent Residual Convolutional Neural Network based on U-Net
    (R2U-Net) for Medical Image Segmentation", arXiv:1802.06955, 2018.
    Liang & Hu, "Recurrent Convolutional Neural Network for Object Recognition",
    CVPR 2015 (the recurrent convolutional layer).
    Savarese & Maire, "Learning Implicitly Recurrent CNNs Through Parameter
    Sharing", ICLR 2019 (the template bank of ``num_templates``).
    Kang, Kim & Lee, "Learning Deeply Shared Filter Bases for Efficient ConvNets",
    NeurIPS 2020 (the filter basis of ``basis_size``).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from segtie.nn.dims import layer_class
from segtie.nn.filter_basis import FilterBasis
from segtie.nn.norms import make_norm
from segtie.nn.template_bank import TemplateBank
from segtie.nn.unet_rules import check_block_arguments


def _concatenated_shape(input_shape) -> tuple:
    """The shape of a tensor, or of a list of tensors concatenated on the last axis."""
    if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(
            input_shape[0], (list, tuple)):
        channels = [shape[-1] for shape in input_shape]
        total = None if None in channels else sum(channels)
        return tuple(input_shape[0][:-1]) + (total,)
    return tuple(input_shape)


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

    The block object itself can also be called at several sites of a model (one
    block for every encoder level, ``tie_levels``): all its convolutions are then
    shared by every site; with ``norm_per_use=True`` each site keeps its own
    normalization, so each level keeps its own batch statistics.

    Parameter count (``norm="batch"``, kernel 3x3 or 3x3x3 with ``k = 3 **
    spatial_dims`` weights per channel pair (9 or 27), ``C_in`` input channels,
    ``F = filters``; batch-norm counts its 4 per-channel variables, 2 trainable)::

        entry: k*C_in*F + F + 4F
        tied : k*F*F + F                      (independent of num_iterations)
        norms: 4F                             (norm_per_iteration=False)
               4F * num_iterations            (norm_per_iteration=True)
        untied (tied=False): (k*F*F + F) * num_iterations
        bank (num_templates=J): J*k*F*F + num_uses*num_iterations*J + F   (replaces tied)
        basis (basis_size=s, basis_unique=r), V = num_uses*num_iterations:
               k*F*s + V*(k*F*r + (s + r)*F) + F                         (replaces tied)
        norm_per_use=True: every norm above (entry and per-iteration) times num_uses
        conv_bias=False: each convolution above without its + F

    Args:
        filters: int, output channels ``F``.
        num_iterations: int >= 1, uses of the tied kernel.
        norm: ``"batch"`` (:class:`~segtie.nn.norms.FusedBatchNormalization`),
            ``"instance"`` (``GroupNormalization(groups=-1)``, 2F weights, no
            running statistics) or ``"none"``; see :func:`segtie.nn.norms.make_norm`. Instance norm is the
            default of segtie's configs: a batch norm shared by the uses of a tied
            kernel averages their different statistics into one moving mean, so
            inference differs from training (measured: erratic validation Dice on
            Kvasir-SEG); instance norm has no such state.
        norm_per_iteration: bool, one normalization per use (True) or one shared by
            all uses (False, default; as in the R2U-Net reference code, and the
            parameter count is then exactly independent of ``num_iterations``).
        tied: bool, share one kernel across uses (default True).
        dropout: float in [0, 1), spatial dropout after the block.
        num_uses: int >= 1, call sites of this one block in a model (``tie_levels``
            calls one block at every encoder level). Each call passes
            ``use=0 .. num_uses - 1``.
        num_templates: int >= 0, default 0 (a tied kernel). ``J >= 1`` replaces the
            tied kernel by a :class:`~segtie.nn.template_bank.TemplateBank` of ``J``
            templates with ``num_uses * num_iterations`` uses: site ``s``, iteration
            ``t`` is use ``s * num_iterations + t``, with its own coefficients.
            Needs ``tied=True``.
        basis_size: int >= 0, default 0. ``s >= 1`` replaces the tied kernel by a
            :class:`~segtie.nn.filter_basis.FilterBasis` of ``s`` shared filters with
            ``num_uses * num_iterations`` uses, indexed as the bank's
            (:meth:`bank_use`). Needs ``tied=True`` and ``num_templates=0``.
        basis_unique: int >= 0, default 0: basis filters of each use's own (needs
            ``basis_size >= 1``).
        basis_orthogonality: float >= 0, default 0: the basis's orthogonality
            regulariser weight (``FilterBasis(orthogonality=...)``).
        norm_per_use: bool, give every call site its own normalizations (default
            False: all call sites share them). Convolutions are shared either way.
            Adds ``(num_uses - 1)`` times the norms above.
        recompute: bool, recompute the block's activations in the backward pass
            (``keras.remat``, which is ``tf.recompute_grad`` on TensorFlow) instead of
            storing them: less activation memory, one more forward pass of the block.
            Batch-norm moving statistics are then updated twice per training step
            (forward and recomputation).
        spatial_dims: 2 (default; ``Conv2D``, images ``(batch, H, W, C)``) or 3
            (``Conv3D``, volumes ``(batch, D, H, W, C)``): one code path for both,
            see :mod:`segtie.nn.dims`.
        conv_bias: bool, default True. False drops the bias of every convolution of
            the block (entry, tied, bank, basis): each is followed by a batch or
            instance norm, which subtracts the per-channel mean and so cancels a
            per-channel bias exactly (Ioffe & Szegedy 2015, section 3.2): the same
            functions, ``F`` fewer weights per convolution, no bias add or bias
            gradient per use. Needs ``norm`` other than ``"none"``.

    Shapes:
        input ``(batch, *spatial, C_in)`` -> output ``(batch, *spatial, F)``, with
        ``spatial`` of ``spatial_dims`` axes.
        ``C_in`` must be the same at every call site. The input may also be a list of
        tensors (a decoder's up-sampled features and its skip connection), which the
        block concatenates on the channel axis inside the recomputed region, so that
        with ``recompute`` the concatenation is not stored either.

    Raises:
        ValueError: ``filters``, ``num_iterations`` or ``num_uses`` < 1, unknown
            ``norm``, ``spatial_dims`` not 2 or 3, a ``use`` outside ``[0, num_uses)``,
            ``num_templates`` < 0 or >= 1 with ``tied=False``, a basis with
            ``tied=False`` or a bank, ``basis_unique`` or ``basis_orthogonality``
            without ``basis_size``, ``conv_bias=False`` with ``norm="none"``.
    """

    def __init__(self, filters, num_iterations=2, norm="batch", norm_per_iteration=False,
                 tied=True, dropout=0.0, num_uses=1, norm_per_use=False, recompute=False,
                 spatial_dims=2, num_templates=0, basis_size=0, basis_unique=0,
                 basis_orthogonality=0.0, conv_bias=True, **kwargs):
        super().__init__(**kwargs)
        check_block_arguments(filters, num_iterations, norm, tied, dropout, num_uses,
                              spatial_dims, num_templates, basis_size, basis_unique,
                              basis_orthogonality, conv_bias)
        self.conv_bias = bool(conv_bias)
        self.filters = filters
        self.num_iterations = num_iterations
        self.norm = norm
        self.norm_per_iteration = norm_per_iteration
        self.tied = tied
        self.dropout = float(dropout)
        self.num_uses = num_uses
        self.norm_per_use = norm_per_use
        self.recompute = recompute
        self.spatial_dims = spatial_dims
        self.num_templates = num_templates
        self.basis_size = basis_size
        self.basis_unique = basis_unique
        self.basis_orthogonality = float(basis_orthogonality)

    def _make_norm(self, name):
        return make_norm(self.norm, name, dtype=self.dtype_policy)

    def build(self, input_shape):
        input_shape = _concatenated_shape(input_shape)
        # Sublayers share the block's dtype policy (mixed precision survives loading).
        conv = dict(kernel_size=3, padding="same", kernel_initializer="he_normal",
                    use_bias=self.conv_bias, dtype=self.dtype_policy)
        conv_class = layer_class("conv", self.spatial_dims)
        self.entry_conv = conv_class(self.filters, name="entry_conv", **conv)
        self.entry_norm = self._make_norm("entry_norm")
        shared = self.num_templates or self.basis_size
        n_convs = 0 if shared else 1 if self.tied else self.num_iterations
        self.convs = [conv_class(self.filters, name=f"tied_conv_{i}", **conv)
                      for i in range(n_convs)]
        self.bank = (TemplateBank(self.filters, self.num_templates,
                                  num_uses=self.num_uses * self.num_iterations,
                                  spatial_dims=self.spatial_dims, use_bias=self.conv_bias,
                                  dtype=self.dtype_policy, name="template_bank")
                     if self.num_templates else None)
        self.basis = (FilterBasis(self.filters, self.basis_size,
                                  num_uses=self.num_uses * self.num_iterations,
                                  unique_size=self.basis_unique,
                                  orthogonality=self.basis_orthogonality,
                                  spatial_dims=self.spatial_dims, use_bias=self.conv_bias,
                                  dtype=self.dtype_policy, name="filter_basis")
                      if self.basis_size else None)
        n_norms = self.num_iterations if self.norm_per_iteration else 1
        self.norms = [self._make_norm(f"norm_{i}") for i in range(n_norms)]
        # Call sites 1 .. num_uses-1 with their own norms; site 0 uses the two above
        # (so a single-use block keeps the variable layout of earlier checkpoints).
        extra = range(1, self.num_uses if self.norm_per_use else 1)
        self.use_entry_norms = [self._make_norm(f"entry_norm_use{u}") for u in extra]
        self.use_norms = [[self._make_norm(f"norm_use{u}_{i}") for i in range(n_norms)]
                          for u in extra]
        dropout_class = layer_class("dropout", self.spatial_dims)
        self.drop = (dropout_class(self.dropout, dtype=self.dtype_policy)
                     if self.dropout else None)

        self.entry_conv.build(input_shape)
        inner = tuple(input_shape[:-1]) + (self.filters,)
        all_norms = [self.entry_norm] + self.norms + self.use_entry_norms
        banks = [b for b in (self.bank, self.basis) if b is not None]
        for layer in self.convs + banks + all_norms + [n for ns in self.use_norms for n in ns]:
            layer.build(inner)
        self.built = True

    def conv_for(self, iteration):
        """The convolution layer used at ``iteration`` (the same object for all if tied).

        Raises:
            ValueError: the block has a template bank or a filter basis (see
                :meth:`bank_use`) instead.
        """
        if self.bank is not None or self.basis is not None:
            what = (f"a template bank (num_templates={self.num_templates}): use `block.bank`"
                    if self.bank is not None else
                    f"a filter basis (basis_size={self.basis_size}): use `block.basis`")
            raise ValueError(f"Block {self.name!r} mixes its kernels from {what} and "
                             f"`block.bank_use(use, iteration)`, not `conv_for`")
        return self.convs[0] if self.tied else self.convs[iteration]

    def bank_use(self, use, iteration):
        """The bank's (or basis's) use index of call site ``use`` at ``iteration``."""
        return use * self.num_iterations + iteration

    def _tied_conv(self, x, use, iteration):
        if self.bank is not None:
            return self.bank(x, use=self.bank_use(use, iteration))
        if self.basis is not None:
            return self.basis(x, use=self.bank_use(use, iteration))
        return self.conv_for(iteration)(x)

    def norms_for(self, use=0):
        """``(entry_norm, [norm per iteration])`` of call site ``use``."""
        if not isinstance(use, int) or not 0 <= use < self.num_uses:
            raise ValueError(f"`use` must be an integer in [0, {self.num_uses}), received "
                             f"{use!r}")
        if use == 0 or not self.norm_per_use:
            return self.entry_norm, self.norms
        return self.use_entry_norms[use - 1], self.use_norms[use - 1]

    def call(self, inputs, training=None, use=0):
        entry_norm, norms = self.norms_for(use)

        def forward(*parts):
            x = parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)
            x0 = keras.ops.relu(entry_norm(self.entry_conv(x), training=training))
            h = None
            for t in range(self.num_iterations):
                norm = norms[t if self.norm_per_iteration else 0]
                h = self._tied_conv(x0 if h is None else x0 + h, use, t)
                h = keras.ops.relu(norm(h, training=training))
            return h

        parts = tuple(inputs) if isinstance(inputs, (list, tuple)) else (inputs,)
        h = keras.remat(forward)(*parts) if self.recompute else forward(*parts)
        if self.drop is not None:
            h = self.drop(h, training=training)
        return h

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        # Keras (3.15, TensorFlow backend) hands tf.saved_model only its top-level
        # tracked lists as plain lists; the inner lists of `use_norms` stayed Keras
        # TrackedLists, which TensorFlow does not track, so `tf.saved_model.save`
        # refused every per-use norm as an untracked resource. Give it plain lists
        # all the way down (the `.keras` format walks attributes, unaffected).
        children = super()._trackable_children(save_type, **kwargs)
        if save_type == "savedmodel" and self.use_norms:
            children["use_norms"] = [list(norms) for norms in self.use_norms]
        return children

    def compute_output_shape(self, input_shape):
        return tuple(_concatenated_shape(input_shape)[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, num_iterations=self.num_iterations,
                      norm=self.norm, norm_per_iteration=self.norm_per_iteration,
                      tied=self.tied, dropout=self.dropout, num_uses=self.num_uses,
                      norm_per_use=self.norm_per_use, recompute=self.recompute,
                      spatial_dims=self.spatial_dims, num_templates=self.num_templates,
                      basis_size=self.basis_size, basis_unique=self.basis_unique,
                      basis_orthogonality=self.basis_orthogonality,
                      conv_bias=self.conv_bias)
        return config
