"""Model builders: the recurrent U-Net with tied kernels (and the plain U-Net).

``build_model(config.model)`` returns a functional :class:`keras.Model` that maps
images ``(batch, height, width, in_channels)`` float32 to logits
``(batch, height, width, num_classes)`` float32 (no activation). Height and width
are free but must be divisible by ``2 ** (depth - 1)``.

Every encoder and decoder block is a :class:`segtie.layers.RecurrentConvBlock`:
with ``num_iterations > 1`` its 3x3 kernel is tied across iterations (R2U-Net
style recurrence), with ``num_iterations = 1`` the network is the plain U-Net of
Ronneberger et al. (MICCAI 2015) with batch normalization.

References:
    Ronneberger et al., "U-Net: Convolutional Networks for Biomedical Image
    Segmentation", MICCAI 2015.
    Alom et al., "R2U-Net", arXiv:1802.06955, 2018.
"""

from __future__ import annotations

import keras
from keras import layers

from segtie.layers import RecurrentConvBlock


def build_unet(in_channels=3, num_classes=1, base_filters=16, depth=4, num_iterations=2,
               norm="batch", norm_per_iteration=False, dropout=0.0, tied=True,
               name="recurrent_unet"):
    """Build the (recurrent, tied) U-Net.

    Args:
        in_channels: int, image channels.
        num_classes: int, output channels (1 = binary, sigmoid on the logits).
        base_filters: int, width of the first level; level ``i`` has
            ``base_filters * 2**i`` filters.
        depth: int, number of resolution levels (``depth - 1`` poolings).
        num_iterations: int, uses of each block's tied kernel (1 = plain U-Net).
        norm, norm_per_iteration, dropout, tied: see :class:`RecurrentConvBlock`.
        name: model name.

    Returns:
        keras.Model: images ``(batch, H, W, in_channels)`` -> logits
        ``(batch, H, W, num_classes)``.

    Raises:
        ValueError: a non-positive width, depth or iteration count (names the key).
    """
    for key, value in (("in_channels", in_channels), ("num_classes", num_classes),
                       ("base_filters", base_filters), ("depth", depth),
                       ("num_iterations", num_iterations)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{key}` must be an integer >= 1, received {value!r}")

    def block(filters, label):
        return RecurrentConvBlock(filters, num_iterations=num_iterations, norm=norm,
                                  norm_per_iteration=norm_per_iteration, tied=tied,
                                  dropout=dropout, name=label)

    inputs = keras.Input((None, None, in_channels), name="image")
    x = inputs
    skips = []
    for level in range(depth):
        x = block(base_filters * 2**level, f"encoder_{level}")(x)
        if level < depth - 1:
            skips.append(x)
            x = layers.MaxPooling2D(2, name=f"pool_{level}")(x)
    for level in reversed(range(depth - 1)):
        filters = base_filters * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"up_{level}")(x)
        x = layers.Concatenate(name=f"skip_{level}")([x, skips[level]])
        x = block(filters, f"decoder_{level}")(x)
    logits = layers.Conv2D(num_classes, 1, name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name=name)


def build_model(model_config):
    """Build the model described by a ``segtie.config.ModelConfig``.

    Args:
        model_config: the ``model`` group of the config.

    Returns:
        keras.Model producing logits; see :func:`build_unet`.
    """
    c = model_config
    return build_unet(in_channels=c.in_channels, num_classes=c.num_classes,
                      base_filters=c.base_filters, depth=c.depth,
                      num_iterations=c.num_iterations, norm=c.norm,
                      norm_per_iteration=c.norm_per_iteration, dropout=c.dropout)
