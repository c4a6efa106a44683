"""The recipes' models that benchmark tables name (no TensorFlow import: children stay light)."""

RECIPE = "kvasir_seg"

# The smallest tied recipe: the Kvasir-SEG recipe with every level and the decoder tied
# to one width-16 kernel per block role (``--set`` overrides of ``kvasir_seg``).
SMALLEST_TIED = ["model.tie_levels=true", "model.tie_decoder=true",
                 "model.level_projection=true", "model.width_multiplier=1",
                 "model.base_filters=16"]

# Table row name -> overrides of RECIPE.
RECIPE_MODELS = {"segtie default recipe (kvasir_seg: instance norm, N=2)": [],
                 "segtie default recipe, conv_bias: false": ["model.conv_bias=false"],
                 "segtie smallest tied recipe (tie_levels+tie_decoder, width 16)": SMALLEST_TIED}
