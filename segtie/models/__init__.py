"""Model builders: the U-Net with tied kernels in all its tying schemes.

``build_model(config.model)`` returns a functional :class:`keras.Model` mapping images
``(batch, height, width, in_channels)`` float32 to logits
``(batch, height, width, num_classes)`` float32; see :mod:`segtie.models.unet` for
the tying schemes, :mod:`segtie.models.size` for the parameter-count formula,
:mod:`segtie.models.budget` for parameter and memory budgets and
:mod:`segtie.models.deep_supervision` for training a recurrent U-Net on every pass.
"""

from segtie.models.builder import build_model, unet_arguments
from segtie.models.deep_supervision import (DeepSupervisionModel, build_training_model,
                                            recurrence_weights)
from segtie.models.size import parameter_count
from segtie.models.unet import build_unet

__all__ = ["build_model", "build_unet", "build_training_model", "DeepSupervisionModel",
           "parameter_count", "recurrence_weights", "unet_arguments"]
