"""The peer rows of ``bench_frontier.py``: keras-unet-collection's U-Net and R2U-Net
at the widest base width whose parameters fit a budget.

The peers (``bench_kvasir.PEERS``, built by ``bench_tying.peer_builders``) double
their width per level like segtie's recipes and use batch norm; ``peer_r2_unet``
applies a new kernel at each of its ``num_iterations`` recurrent steps (nothing
tied), ``peer_unet`` is the plain double-convolution U-Net. segtie's
``model.param_budget`` sizes only segtie models, so a peer's width is found here by
counting the parameters of the built peer (they grow with the width).
"""

from __future__ import annotations

import dataclasses

import bench_kvasir

from segtie import config as cfg

# family -> (bench_kvasir model key, the recipe's num_iterations it reads)
PEER_FAMILIES = {"peer_unet": ("peer_unet", 1), "peer_r2_unet": ("peer_r2_unet", 2)}


def peer_params(key: str, config: cfg.Config, width: int) -> int:
    """Parameters of peer ``key`` built at base width ``width`` (the config's depth)."""
    import keras

    keras.backend.clear_session()
    model_config = dataclasses.replace(config.model, base_filters=width)
    model = bench_kvasir.build(key, dataclasses.replace(config, model=model_config))[0]
    return model.count_params()


def peer_width(key: str, config: cfg.Config, budget: int, widest: int = 256) -> int:
    """The widest base width in ``[1, widest]`` whose peer ``key`` has <= ``budget``
    parameters (bisection: the count grows with the width).

    Raises:
        ValueError: even width 1 has more than ``budget`` parameters.
    """
    smallest = peer_params(key, config, 1)
    if smallest > budget:
        raise ValueError(f"{key} at base width 1 has {smallest:,} parameters, more than "
                         f"the budget {budget:,}")
    low, high = 1, widest  # invariant: low fits
    while low < high:
        mid = (low + high + 1) // 2
        if peer_params(key, config, mid) <= budget:
            low = mid
        else:
            high = mid - 1
    return low
