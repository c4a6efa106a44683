"""Each shipped recipe's header states the parameter count of the model it builds."""

import re

import pytest

from segtie import config as cfg
from segtie.nn.builder import build_model

# The first "<count> parameters" of the header is the recipe's own model.
_COUNT = re.compile(r"(\d{1,3}(?:,\d{3})+) parameters")


@pytest.mark.parametrize("name", cfg.recipe_names())
def test_the_header_states_the_built_models_parameters(name):
    lines = (cfg.RECIPES_DIR / f"{name}.yaml").read_text().splitlines()
    header = "\n".join(line for line in lines[:next(i for i, line in enumerate(lines)
                                                     if not line.startswith("#"))])
    stated = _COUNT.search(header)
    assert stated, f"{name}.yaml: its header states no parameter count"
    model = build_model(cfg.load_config(name).model)
    assert model.count_params() == int(stated.group(1).replace(",", "")), name
