"""The U-Net graph with every tying scheme: iterations, levels, decoder, recurrences.

:func:`build_unet` returns a functional :class:`keras.Model` mapping images
``(batch, H, W, in_channels)`` float32 to logits ``(batch, H, W, num_classes)``
float32 (no activation); ``H`` and ``W`` must be divisible by ``2 ** (depth - 1)``.
Level ``i`` has ``F_i = base_filters * width_multiplier ** i`` channels. With
``spatial_dims=3`` the same graph is built from 3-D layers (:mod:`segtie.nn.dims`):
volumes ``(batch, D, H, W, in_channels)`` -> ``(batch, D, H, W, num_classes)``,
every tying scheme below included.

Tying is always "one layer object, many calls" (never copied weights):

- ``num_iterations``: each :class:`~segtie.nn.recurrent_conv_block.RecurrentConvBlock` uses its 3x3
  kernel ``num_iterations`` times (R2U-Net recurrence).
- ``tie_levels``: one block object is called at every encoder level. One kernel
  must fit every level, so the widths must be constant (``width_multiplier: 1``)
  and level 0's input (the image) must already have ``base_filters`` channels,
  or ``level_projection`` adds a 1x1 convolution at each level entry whose input
  width differs from the level's width. ``norm_per_level`` gives each level its
  own normalization (default; a shared batch norm would average the statistics of
  all levels into its moving mean and variance).
- ``tie_decoder``: one up-convolution and one block for every decoder level
  (constant width as well).
- ``num_templates`` (``J >= 1``): soft sharing in place of each block's tied kernel:
  every use (iteration and call site: with ``tie_levels`` every level) mixes its
  kernel from the block's one bank of ``J`` templates (:mod:`segtie.nn.template_bank`).
- ``basis_size`` (``s >= 1``, or ``basis_ratio``: ``s`` a fraction of each block's
  width): a shared filter basis in place of each block's tied kernel: every use
  convolves with the block's one basis of ``s`` filters (plus ``basis_unique`` of
  its own) and mixes them with its own 1x1 coefficients
  (:mod:`segtie.nn.filter_basis`); with ``tie_levels`` one basis serves every
  level, Kang et al.'s setting.
- ``num_recurrences``: the network is run that many times with the same layers;
  pass ``r`` sees ``[image, probabilities of pass r-1]`` (zeros for the first) and
  a :class:`~segtie.nn.recurrence.ConvGRUCell` carries a hidden state across passes in
  the bottleneck (Wang et al. 2019). Pass ``r``'s logits go through an identity
  layer named ``pass_<r>`` (for deep supervision, see
  :mod:`segtie.nn.deep_supervision`); the model's output is the last pass.
  Normalization layers are shared by the passes like everything else, so a batch
  norm's moving statistics average over the passes.
- ``deep_supervision`` (not tying): decoder level ``i``'s output (``1 <= i <= depth -
  3``) goes through an identity layer ``decoder_output_<i>``, which the training model
  gives a 1x1 head of its own (nnU-Net's deep supervision; the inference model is
  unchanged, with the same weights).

``num_iterations=1, tie_levels=False, num_recurrences=1`` (and the defaults of the
other keys) is the plain U-Net of Ronneberger et al. with batch normalization.
``tied=False`` (``model.tied: false``) and ``tie_recurrences=False`` (not a config
key) build the untied references: the same graph with a separate layer per use.
The rules of which combinations are possible are in :mod:`segtie.nn.unet_rules`.

References:
    Ronneberger et al., "U-Net", MICCAI 2015.
    Alom et al., "R2U-Net", arXiv:1802.06955, 2018.
    Wang et al., "Recurrent U-Net for Resource-Constrained Segmentation", ICCV 2019.
    Savarese & Maire, "Learning Implicitly Recurrent CNNs Through Parameter
    Sharing", ICLR 2019.
    Kang, Kim & Lee, "Learning Deeply Shared Filter Bases for Efficient ConvNets",
    NeurIPS 2020.
"""

from __future__ import annotations

import keras
from keras import layers

from segtie.nn.dims import layer_class
from segtie.nn.recurrent_conv_block import RecurrentConvBlock
from segtie.nn.recurrence import ConvGRUCell, ZeroState
from segtie.nn.unet_rules import (basis_filters, check_batch_norm_sharing,  # noqa: F401
                                  check_unet_arguments, image_channels, level_widths)


class _Net:
    """The layer objects of one pass of the network (shared by all passes if tied)."""

    def __init__(self, args: dict, widths: list, suffix: str):
        depth, dims = args["depth"], args["spatial_dims"]
        conv, up, pool = (layer_class(kind, dims) for kind in ("conv", "up", "pool"))
        block = dict(num_iterations=args["num_iterations"], norm=args["norm"],
                     norm_per_iteration=args["norm_per_iteration"], tied=args["tied"],
                     dropout=args["dropout"], recompute=args["recompute"],
                     spatial_dims=dims, num_templates=args["num_templates"],
                     basis_unique=args["basis_unique"],
                     basis_orthogonality=args["basis_orthogonality"],
                     conv_bias=args["conv_bias"])

        def basis(width):  # the shared basis filters of a block of this width
            return basis_filters(width, args["basis_size"], args["basis_ratio"])

        inputs = [image_channels(args["in_channels"], args["num_classes"],
                                 args["num_recurrences"])] + widths[:-1]
        self.project = [conv(f, 1, name=f"project_{i}{suffix}")
                        if args["level_projection"] and c != f else None
                        for i, (c, f) in enumerate(zip(inputs, widths))]
        if args["tie_levels"]:
            shared = RecurrentConvBlock(widths[0], num_uses=depth,
                                        norm_per_use=args["norm_per_level"],
                                        basis_size=basis(widths[0]),
                                        name=f"encoder{suffix}", **block)
            self.encoder = [shared] * depth
        else:
            self.encoder = [RecurrentConvBlock(f, name=f"encoder_{i}{suffix}",
                                               basis_size=basis(f), **block)
                            for i, f in enumerate(widths)]
        self.pool = [pool(2, name=f"pool_{i}{suffix}")
                     for i in range(depth - 1)]
        if args["tie_decoder"] and depth > 1:
            shared_up = up(widths[0], 2, strides=2, name=f"up{suffix}")
            shared = RecurrentConvBlock(widths[0], num_uses=depth - 1,
                                        norm_per_use=args["norm_per_level"],
                                        basis_size=basis(widths[0]),
                                        name=f"decoder{suffix}", **block)
            self.up, self.decoder = [shared_up] * (depth - 1), [shared] * (depth - 1)
        else:
            self.up = [up(f, 2, strides=2, name=f"up_{i}{suffix}")
                       for i, f in enumerate(widths[:-1])]
            self.decoder = [RecurrentConvBlock(f, name=f"decoder_{i}{suffix}",
                                               basis_size=basis(f), **block)
                            for i, f in enumerate(widths[:-1])]
        self.gru = (ConvGRUCell(widths[-1], spatial_dims=dims, name=f"bottleneck_gru{suffix}")
                    if args["num_recurrences"] > 1 else None)
        self.state_init = ZeroState(widths[-1], name=f"state_init{suffix}")
        self.head = conv(args["num_classes"], 1, name=f"logits{suffix}", dtype="float32")
        # deep supervision: the coarser decoder outputs, named for the training model
        self.marks = {i: layers.Identity(name=f"decoder_output_{i}")
                      for i in range(1, depth - 2)} if args["deep_supervision"] else {}
        self.tie_levels, self.tie_decoder = args["tie_levels"], args["tie_decoder"]

    def __call__(self, x, state=None):
        """One pass: ``x`` -> (logits, new bottleneck state or None).

        ``state=None`` on the first pass starts the hidden state at zeros.
        """
        skips = []
        for i, block in enumerate(self.encoder):
            if self.project[i] is not None:
                x = self.project[i](x)
            x = block(x, use=i) if self.tie_levels else block(x)
            if i < len(self.pool):
                skips.append(x)
                x = self.pool[i](x)
        if self.gru is not None:
            if state is None:
                state = self.state_init(x)
            x = state = self.gru([x, state])
        for i in reversed(range(len(self.decoder))):
            x = [self.up[i](x), skips[i]]  # concatenated inside the block
            x = self.decoder[i](x, use=i) if self.tie_decoder else self.decoder[i](x)
            if i in self.marks:
                x = self.marks[i](x)
        return self.head(x), state


def build_unet(in_channels=3, num_classes=1, base_filters=16, depth=4, num_iterations=2,
               norm="batch", norm_per_iteration=False, dropout=0.0, tied=True,
               width_multiplier=2, tie_levels=False, tie_decoder=False,
               level_projection=False, norm_per_level=True, num_recurrences=1,
               recompute=False, tie_recurrences=True, spatial_dims=2, num_templates=0,
               basis_size=0, basis_unique=0, basis_ratio=0.0, basis_orthogonality=0.0,
               deep_supervision=False, conv_bias=True, name="recurrent_unet"):
    """Build the (recurrent, tied) U-Net; see the module docstring for the schemes.

    Args:
        in_channels: int, image channels.
        num_classes: int, output channels (1 = binary, sigmoid on the logits).
        base_filters: int, width ``F_0`` of the first level.
        depth: int, number of resolution levels (``depth - 1`` poolings).
        num_iterations: int, uses of each block's tied kernel (1 = plain U-Net).
        norm, norm_per_iteration, dropout, tied, recompute: see
            :class:`~segtie.nn.recurrent_conv_block.RecurrentConvBlock`.
        width_multiplier: int, ``F_i = base_filters * width_multiplier ** i``.
        tie_levels: bool, one encoder block for every level.
        tie_decoder: bool, one up-convolution and decoder block for every level.
        level_projection: bool, 1x1 projection where a level's input width differs.
        norm_per_level: bool, tied levels keep their own normalization.
        num_recurrences: int, passes of the whole network (1 = no recurrence).
        tie_recurrences: bool, share the layers across passes (False: the untied
            reference, one set of layers per pass, names suffixed ``_p<r>``).
        spatial_dims: 2 (default, images) or 3 (volumes): which layers the one
            graph is built from (:mod:`segtie.nn.dims`).
        num_templates: int, 0 (default: tied kernels) or ``J >= 1``, the template
            bank of every block (needs ``tied``; at most the uses of any block).
        basis_size: int, 0 (default: tied kernels) or ``s >= 1``, the shared filter
            basis of every block (needs ``tied``, no bank; at most ``3 **
            spatial_dims * base_filters`` filters with ``basis_unique``).
        basis_unique: int >= 0, default 0: each use's own basis filters ``r``.
        basis_ratio: float >= 0, default 0 (off): instead of ``basis_size``, a block
            of width ``F`` gets ``max(1, round(basis_ratio * F))`` basis filters
            (:func:`~segtie.nn.unet_rules.basis_filters`).
        basis_orthogonality: float >= 0, default 0 (off): weight of every basis's
            orthogonality regulariser (:meth:`~segtie.nn.FilterBasis.similarity`),
            added to the model's losses in training.
        deep_supervision: bool, default False: name the outputs of decoder levels
            ``1 .. depth - 3`` with identity layers ``decoder_output_<i>`` (no weights,
            no compute) for :class:`~segtie.nn.deep_supervision.ScaleSupervisionModel`;
            needs ``depth >= 4`` and ``num_recurrences == 1``.
        conv_bias: bool, default True; False drops the convolution biases that a
            norm cancels (every block's, see
            :class:`~segtie.nn.recurrent_conv_block.RecurrentConvBlock`; projections,
            up-convolutions and the head keep theirs).
        name: model name.

    Returns:
        keras.Model: images ``(batch, H, W, in_channels)`` -> logits
        ``(batch, H, W, num_classes)`` of the last pass; with ``spatial_dims=3``,
        ``(batch, D, H, W, in_channels)`` -> ``(batch, D, H, W, num_classes)``.

    Raises:
        ValueError: see :func:`segtie.nn.unet_rules.check_unet_arguments`.
    """
    args = dict(locals())
    check_unet_arguments(**args)
    widths = level_widths(base_filters, width_multiplier, depth)
    passes = num_recurrences
    nets = ([_Net(args, widths, "")] * passes if tie_recurrences
            else [_Net(args, widths, f"_p{r + 1}") for r in range(passes)])

    image = keras.Input((None,) * spatial_dims + (in_channels,), name="image")
    if passes == 1:
        logits, _ = nets[0](image)
        return keras.Model(image, logits, name=name)
    to_probabilities = "sigmoid" if num_classes == 1 else "softmax"
    prediction = ZeroState(num_classes, name="prediction_init")(image)
    state = None
    for r, net in enumerate(nets, start=1):
        x = layers.Concatenate(name=f"pass_input_{r}")([image, prediction])
        logits, state = net(x, state)
        # float32 like the head: under a mixed policy the logits must not be rounded.
        logits = layers.Identity(name=f"pass_{r}", dtype="float32")(logits)
        if r < passes:
            prediction = layers.Activation(to_probabilities, name=f"probabilities_{r}")(logits)
    return keras.Model(image, logits, name=name)


def base_width(model: keras.Model) -> int:
    """``F_0``: the width of the first encoder block of a segtie U-Net.

    Raises:
        ValueError: ``model`` has no layer ``encoder`` (tied levels) or ``encoder_0``.
    """
    names = {layer.name for layer in model.layers}
    for name in ("encoder", "encoder_0"):
        if name in names:
            return model.get_layer(name).filters
    raise ValueError(f"`model` must be a segtie U-Net with a layer `encoder` or "
                     f"`encoder_0`, received {model.name!r} without either")
