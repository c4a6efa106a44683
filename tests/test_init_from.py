"""``train.init_from``: a new run starts from a trained checkpoint's weights."""

import keras
import numpy as np
import pytest

from segtie import config as cfg
from segtie.nn import build_model
from segtie.training import train
from segtie.training.checkpoints import initialize_from
from tiny_config import tiny_config


def _model(seed, **model):
    keras.utils.set_random_seed(seed)
    return build_model(cfg.from_dict({"model": {"base_filters": 4, "depth": 2, **model}})
                       .model, [32, 32])


def test_initialize_from_copies_every_variable_and_keeps_tying(tmp_path):
    source, target = _model(1), _model(2)
    path = tmp_path / "source.keras"
    source.save(path)
    before = [w.copy() for w in target.get_weights()]
    assert any(not np.array_equal(a, b) for a, b in zip(before, source.get_weights()))
    count = len(target.weights)
    initialize_from(target, str(path))
    assert len(target.weights) == count  # tied kernels: still one variable each
    for mine, theirs in zip(target.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    image = np.random.default_rng(0).random((1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(target(image), source(image), atol=1e-6)


def test_initialize_from_refuses_another_architecture(tmp_path):
    path = tmp_path / "source.keras"
    _model(1).save(path)
    with pytest.raises(ValueError, match=r"variable 0 .* shape \(3, 3, 3, 8\) in this "
                                         r"config's model but \(3, 3, 3, 4\)"):
        initialize_from(_model(1, base_filters=8), str(path))
    with pytest.raises(ValueError, match=r"its model has \d+ variables and this config's "
                                         r"model \d+; expected the same architecture"):
        initialize_from(_model(1, depth=3), str(path))
    with pytest.raises(FileNotFoundError, match="Checkpoint not found"):
        initialize_from(_model(1), str(tmp_path / "missing.keras"))


def test_config_key():
    assert cfg.from_dict({}).train.init_from is None
    assert cfg.from_dict({"train": {"init_from": "a.keras"}}).train.init_from == "a.keras"


@pytest.mark.slow
def test_a_run_starts_from_the_checkpoint(kvasir_data_config, tmp_path):
    """Real Kvasir-SEG frames, tiny model: at learning rate 0 the new run's best
    checkpoint is the source's weights exactly; without init_from it is not."""
    first = train(tiny_config(kvasir_data_config, tmp_path / "first"))
    frozen = {"epochs": 1, "learning_rate": 0.0, "seed": 7}
    started = train(tiny_config(kvasir_data_config, tmp_path / "second",
                                {**frozen, "init_from": str(first.checkpoint)}))
    fresh = train(tiny_config(kvasir_data_config, tmp_path / "fresh", frozen))
    weights = [keras.saving.load_model(r.checkpoint, safe_mode=True).get_weights()
               for r in (first, started, fresh)]
    for mine, theirs in zip(weights[1], weights[0]):
        np.testing.assert_array_equal(mine, theirs)
    assert any(not np.array_equal(a, b) for a, b in zip(weights[2], weights[0]))
    assert started.best_val_dice == pytest.approx(first.best_val_dice, abs=1e-6)
