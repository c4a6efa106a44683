"""``data.train_on_validation`` (nnU-Net's ``fold all``) on the real DRIVE archive."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

from segtie.data.pipeline import build_dataset
from segtie.data.provenance import DIGEST_CHARS, describe_split


def _images(data_config, split):
    batches = build_dataset(data_config, split, training=False)
    return np.concatenate([image.numpy() for image, _ in batches])


def test_train_split_is_train_then_validation(drive_data_config):
    small = dataclasses.replace(drive_data_config, image_size=[64, 64], batch_size=8)
    both = _images(dataclasses.replace(small, train_on_validation=True), "train")
    train, validation = _images(small, "train"), _images(small, "validation")
    assert (len(both), len(train), len(validation)) == (20, 16, 4)
    np.testing.assert_array_equal(both, np.concatenate([train, validation]))
    # The other splits are untouched by the switch.
    np.testing.assert_array_equal(
        _images(dataclasses.replace(small, train_on_validation=True), "validation"), validation)


def test_provenance_names_both_parts_and_keeps_the_plain_digest(drive_data_config):
    plain = describe_split(drive_data_config, "train")
    both = describe_split(dataclasses.replace(drive_data_config, train_on_validation=True),
                          "train")
    assert (plain["num_cases"], plain["parts"]) == (16, ["train"])
    assert (both["num_cases"], both["parts"]) == (20, ["train", "validation"])
    # The plain digest is the one earlier runs recorded (same key as before the switch).
    key = json.dumps([plain["sha256"], "drive", "train", 16, None])
    assert plain["digest"] == hashlib.sha256(key.encode()).hexdigest()[:DIGEST_CHARS]
    assert both["digest"] != plain["digest"]
    capped = describe_split(dataclasses.replace(drive_data_config, train_on_validation=True,
                                                max_train_cases=18), "train")
    assert capped["num_cases"] == 18
