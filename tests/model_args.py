"""The small model arguments the model tests share (``build_unet(**TINY)`` etc.).

Batch norm (the builder's default) unless a test says otherwise; ``SIZE`` is the image
side those tests train or call at, ``SIZE_3D`` a volume's.
"""

TINY = dict(base_filters=4, depth=3, num_iterations=2)
LEVELS = dict(TINY, width_multiplier=1, tie_levels=True, level_projection=True)
UNTIE = dict(tied=False, tie_levels=False, tie_decoder=False, tie_recurrences=False)
VOLUME = dict(spatial_dims=3, in_channels=1, num_classes=3)  # a 3-D model, Hippocampus-like
SIZE, SIZE_3D = [16, 16], [8, 8, 8]
