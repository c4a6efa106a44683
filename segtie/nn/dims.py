"""The one switch between 2-D and 3-D networks: ``spatial_dims`` picks the layer classes.

As in MONAI (``spatial_dims`` of its networks), the model is written once; each
layer that depends on the number of spatial axes is taken from :func:`layer_class`,
so a 3-D U-Net is the 2-D graph with ``Conv3D`` for ``Conv2D``, ``MaxPooling3D`` for
``MaxPooling2D`` and so on. Images are channels-last: ``(batch, H, W, C)`` for 2-D,
``(batch, D, H, W, C)`` for 3-D.
"""

from __future__ import annotations

from keras import layers

SPATIAL_DIMS = (2, 3)
_CLASSES = {
    "conv": {2: layers.Conv2D, 3: layers.Conv3D},
    "up": {2: layers.Conv2DTranspose, 3: layers.Conv3DTranspose},
    "pool": {2: layers.MaxPooling2D, 3: layers.MaxPooling3D},
    "dropout": {2: layers.SpatialDropout2D, 3: layers.SpatialDropout3D},
}
CONV_CLASSES = tuple(_CLASSES["conv"].values())
UP_CLASSES = tuple(_CLASSES["up"].values())

__all__ = ["CONV_CLASSES", "SPATIAL_DIMS", "UP_CLASSES", "check_spatial_dims", "layer_class"]


def check_spatial_dims(spatial_dims, name: str = "spatial_dims") -> int:
    """Return ``spatial_dims`` if it is 2 or 3.

    Raises:
        ValueError: naming ``name``, the valid values and the value received.
    """
    if isinstance(spatial_dims, bool) or spatial_dims not in SPATIAL_DIMS:
        raise ValueError(f"`{name}` must be one of {list(SPATIAL_DIMS)}, received "
                         f"{spatial_dims!r} of type {type(spatial_dims).__name__}")
    return spatial_dims


def layer_class(kind: str, spatial_dims: int) -> type:
    """The Keras layer class of ``kind`` (``conv``, ``up``, ``pool``, ``dropout``) in
    ``spatial_dims`` dimensions.

    Raises:
        ValueError: an unknown ``kind`` or ``spatial_dims``.
    """
    if kind not in _CLASSES:
        raise ValueError(f"`kind` must be one of {sorted(_CLASSES)}, received {kind!r}")
    return _CLASSES[kind][check_spatial_dims(spatial_dims)]
