"""Config loading: defaults, overrides, and errors that name the key."""

import pytest

from segtie.config import DEFAULT_CONFIG, Config, apply_overrides, from_dict, load_config


def test_default_config_file_loads():
    config = load_config()
    assert isinstance(config, Config)
    assert config.data.name == "kvasir_seg"


def test_overrides_are_parsed_as_yaml():
    config = load_config(DEFAULT_CONFIG, ["train.epochs=3", "data.image_size=[64, 96]",
                                          "train.learning_rate=0.01", "tracking.enabled=false"])
    assert config.train.epochs == 3
    assert config.data.image_size == [64, 96]
    assert config.train.learning_rate == 0.01
    assert config.tracking.enabled is False


def test_int_is_accepted_for_float_and_not_bool_for_int():
    assert from_dict({"train": {"learning_rate": 1}}).train.learning_rate == 1.0
    with pytest.raises(TypeError, match="`train.epochs` must be of type int"):
        from_dict({"train": {"epochs": True}})


@pytest.mark.parametrize("raw, exc, message", [
    ({"model": {"num_iterations": 0}}, ValueError, r"`model.num_iterations` must be >= 1, received 0"),
    ({"model": {"num_iteration": 2}}, ValueError, r"Unknown key `model.num_iteration`"),
    ({"train": {"epochs": "ten"}}, TypeError, r"`train.epochs` must be of type int, received 'ten'"),
    ({"train": {"optimizer": "lamb"}}, ValueError, r"`train.optimizer` must be one of"),
    ({"data": {"image_size": [100, 128]}}, ValueError, r"divisible by 2\*\*\(model.depth - 1\) = 8"),
    ({"data": {"image_size": [128]}}, ValueError, r"`data.image_size` must be \[height, width\]"),
    ({"data": 3}, TypeError, r"`data` must be a mapping"),
])
def test_bad_values_name_key_expected_and_received(raw, exc, message):
    with pytest.raises(exc, match=message):
        from_dict(raw)


def test_bad_override_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="group.key=value"):
        apply_overrides({}, ["train.epochs"])
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  depth: 99\n")
    with pytest.raises(ValueError, match=r"bad.yaml: `model.depth` must be <= 8"):
        load_config(bad)


def test_an_invalid_override_is_blamed_not_the_valid_file(tmp_path):
    with pytest.raises(ValueError, match=r"^--set train.precision=float8: `train.precision` "
                                         r"must be one of"):
        load_config(DEFAULT_CONFIG, ["train.epochs=2", "train.precision=float8"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  depth: 99\n")
    with pytest.raises(ValueError, match=r"bad.yaml \(with --set train.epochs=2\): "
                                         r"`model.depth`"):
        load_config(bad, ["train.epochs=2"])
