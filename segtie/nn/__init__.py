"""The network: tied layers, normalizations, the U-Net builder, its size and its budget.

``build_model(config.model)`` returns a functional :class:`keras.Model` mapping images
``(batch, height, width, in_channels)`` float32 to logits
``(batch, height, width, num_classes)`` float32. Where to look:

- :mod:`~segtie.nn.recurrent_conv_block`: :class:`RecurrentConvBlock`, the tied block;
- :mod:`~segtie.nn.template_bank`: :class:`TemplateBank`, soft sharing: each use's
  kernel mixed from a shared bank of templates (``num_templates``);
- :mod:`~segtie.nn.filter_basis`: :class:`FilterBasis`, a filter basis shared by
  every use, mixed by each use's own 1x1 coefficients (``basis_size``); both are
  :class:`~segtie.nn.per_use.PerUseConvolution` (the use check, bias, config);
- :mod:`~segtie.nn.recurrence`: :class:`ConvGRUCell` and :class:`ZeroState`, the
  bottleneck state of ``num_recurrences > 1``;
- :mod:`~segtie.nn.norms`: :class:`FusedBatchNormalization`,
  :class:`InstanceNormalization` and :func:`make_norm`;
- :mod:`~segtie.nn.dims`: ``spatial_dims`` (2 images, 3 volumes) picks the layer
  classes of the one graph (``Conv2D``/``Conv3D``, pooling, up-convolution);
- :mod:`~segtie.nn.unet`: the graph of every tying scheme; a new tying scheme goes
  there, and its rule in :mod:`~segtie.nn.unet_rules`
  (:func:`~segtie.nn.unet_rules.check_unet_arguments`, the one home of the tying
  rules);
- :mod:`~segtie.nn.builder`: the config's model (:func:`build_model`,
  :func:`check_model`);
- :mod:`~segtie.nn.size`, :mod:`~segtie.nn.budget`, :mod:`~segtie.nn.profile`: the
  parameter formula, parameter/memory budgets, and what a model does per image;
- :mod:`~segtie.nn.deep_supervision`: training a recurrent U-Net on every pass, or
  on its coarser decoder levels as well (nnU-Net's deep supervision).

Nothing here reads the config file or MLflow: the builder takes the ``model`` group's
plain values.
"""

from segtie.nn.builder import build_model, check_model, unet_arguments
from segtie.nn.deep_supervision import (DeepSupervisionModel, ScaleSupervisionModel,
                                        build_training_model, recurrence_weights,
                                        saved_model_of, scale_weights)
from segtie.nn.filter_basis import FilterBasis
from segtie.nn.norms import NORMS, FusedBatchNormalization, InstanceNormalization, make_norm
from segtie.nn.recurrence import ConvGRUCell, ZeroState
from segtie.nn.recurrent_conv_block import RecurrentConvBlock
from segtie.nn.size import parameter_count
from segtie.nn.template_bank import TemplateBank
from segtie.nn.unet import base_width, build_unet

__all__ = ["NORMS", "ConvGRUCell", "DeepSupervisionModel", "FilterBasis",
           "FusedBatchNormalization",
           "InstanceNormalization", "RecurrentConvBlock", "ScaleSupervisionModel", "TemplateBank", "ZeroState",
           "base_width", "build_model", "build_training_model", "build_unet", "check_model", "make_norm", "parameter_count", "recurrence_weights",
           "saved_model_of", "scale_weights", "unet_arguments"]
