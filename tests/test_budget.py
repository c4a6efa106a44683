"""segtie.nn.budget: `param_budget` and `memory_budget_mb` pick the widest base width that
fits (checked against the parameter formula and the traced activations), and say why
when nothing fits."""

import pytest

from segtie import config as cfg
from segtie.nn import build_model, build_unet, parameter_count, profile, unet_arguments
from segtie.nn.budget import activation_line, fit_base_filters

from model_args import SIZE, TINY


def test_param_budget_sizes_a_template_bank_model():
    budget = 30_000
    config = cfg.from_dict({"model": {"width_multiplier": 1, "tie_levels": True,
                                      "tie_decoder": True, "level_projection": True,
                                      "num_templates": 3, "param_budget": budget}})
    model = build_model(config.model)
    width = model.get_layer("encoder").filters
    args = unet_arguments(config.model)
    assert model.count_params() == parameter_count(**{**args, "base_filters": width}) <= budget
    assert parameter_count(**{**args, "base_filters": width + 1}) > budget
    assert [w.path for w in model.weights].count("encoder/template_bank/templates") == 1


def test_param_budget_picks_the_widest_width_that_fits():
    budget = 20_000
    config = cfg.from_dict({"model": {"width_multiplier": 1, "tie_levels": True,
                                      "level_projection": True, "param_budget": budget}})
    args = unet_arguments(config.model)
    width = fit_base_filters(args, param_budget=budget)
    assert parameter_count(**{**args, "base_filters": width}) <= budget
    assert parameter_count(**{**args, "base_filters": width + 1}) > budget
    model = build_model(config.model)
    assert model.get_layer("encoder").filters == width
    assert model.count_params() <= budget


def test_memory_budget_uses_a_line_that_matches_the_traced_activations():
    args = dict(TINY, num_recurrences=2)
    line = activation_line(args, SIZE)
    traced = profile.activation_elements(profile.trace_uses(
        build_unet(**{**args, "base_filters": 5}), SIZE))
    assert line(5) == traced
    width = fit_base_filters(args, memory_budget_mb=2.0, image_size=SIZE, batch_size=4)
    memory = [profile.training_memory_bytes(parameter_count(**{**args, "base_filters": w}),
                                            line(w), 4) / 2**20 for w in (width, width + 1)]
    assert memory[0] <= 2.0 < memory[1]


@pytest.mark.parametrize("budgets, message", [
    (dict(param_budget=10), r"`param_budget` = 10 is too small: the narrowest model "
                            r"\(base_filters = 1\) needs"),
    (dict(memory_budget_mb=0.001, image_size=SIZE, batch_size=2),
     r"`memory_budget_mb` = 0.001 is too small"),
    (dict(memory_budget_mb=10.0), r"`memory_budget_mb` needs the image size"),
])
def test_a_budget_nothing_fits_says_why(budgets, message):
    with pytest.raises(ValueError, match=message):
        fit_base_filters(dict(TINY), **budgets)
