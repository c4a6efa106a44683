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
    with pytest.raises(ValueError, match=r"`data.image_size`: the value '\[64,' is not valid YAML"):
        apply_overrides({}, ["data.image_size=[64,"])
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


def test_inherits_from_merges_the_file_over_its_base(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "data:\n  image_size: [64, 64]\n  augment:\n    flip_prob: 0.25\n    rotate_prob: 0.5\n"
        "train:\n  epochs: 7\n  learning_rate: 0.01\n")
    child = tmp_path / "sub" / "child.yaml"
    child.parent.mkdir()
    child.write_text("inherits_from: ../base.yaml\ndata:\n  image_size: [32, 48]\n"
                     "  augment:\n    rotate_prob: 0.0\ntrain:\n  epochs: 3\n")
    config = load_config(child)
    assert config.data.image_size == [32, 48]          # a list replaces the base's
    assert config.data.augment.rotate_prob == 0.0      # the child's value
    assert config.data.augment.flip_prob == 0.25       # the base's, kept by the merge
    assert config.train.epochs == 3
    assert config.train.learning_rate == 0.01
    assert config.model.base_filters == 16             # neither file: the default


def test_a_shipped_variant_recipe_resolves_through_its_chain():
    # kvasir_seg_1m -> kvasir_seg_long -> kvasir_seg: each level's own values survive
    config = load_config("kvasir_seg_1m")
    assert config.model.base_filters == 23             # kvasir_seg_1m
    assert config.train.epochs == 60                   # kvasir_seg_long
    assert config.data.augment.contrast_prob == 0.3    # kvasir_seg_long
    assert config.train.learning_rate == 0.002         # kvasir_seg
    assert config.data.name == "kvasir_seg"
    basis = load_config("drive_basis_long")            # -> drive_basis -> drive
    assert (basis.train.epochs, basis.eval.tta_mirror, basis.model.base_filters,
            basis.data.patch_size, basis.eval.overlap) == (90, True, 53, [96, 96], 0.5)
    members = load_config("kvasir_seg_ensemble")       # -> kvasir_seg_long -> kvasir_seg
    assert (members.eval.tta_mirror, members.train.epochs, members.model.base_filters,
            members.train.seed) == (True, 60, 16, 42)


def test_a_user_file_inherits_from_a_recipe_by_name(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("inherits_from: drive\ntrain:\n  epochs: 2\n")
    config = load_config(mine)
    assert (config.data.name, config.train.epochs) == ("drive", 2)


def test_an_inherits_from_cycle_is_refused_with_its_chain(tmp_path):
    (tmp_path / "a.yaml").write_text("inherits_from: b.yaml\n")
    (tmp_path / "b.yaml").write_text("inherits_from: a.yaml\n")
    with pytest.raises(ValueError, match=r"a.yaml: `inherits_from` makes a cycle: .*b.yaml -> "
                                         r".*a.yaml -> .*b.yaml"):
        load_config(tmp_path / "b.yaml")


@pytest.mark.parametrize("text, exc, message", [
    ("inherits_from: gone.yaml\n", FileNotFoundError, r"`inherits_from: gone.yaml` names no file"),
    ("inherits_from: 3\n", TypeError, r"`inherits_from` must be a recipe name or a YAML path, "
                                      r"received 3"),
    ("inherits_from: kvasir_seg\nmodel:\n  depth: 99\n", ValueError, r"`model.depth` must be <= 8"),
])
def test_bad_inherits_from_names_the_file(tmp_path, text, exc, message):
    child = tmp_path / "child.yaml"
    child.write_text(text)
    with pytest.raises(exc, match=r"child.yaml: " + message):
        load_config(child)
