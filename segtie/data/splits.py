"""The seeded train / validation / test rule for datasets without an official split."""

from __future__ import annotations

import random

SPLITS = ("train", "validation", "test")
SPLIT_SEED = 2020

__all__ = ["SPLITS", "SPLIT_SEED", "case_limit", "check_split", "split_ids", "split_parts"]


def check_split(split: str) -> str:
    """Return ``split`` if it is one of :data:`SPLITS`.

    Raises:
        ValueError: naming the valid splits and the one received.
    """
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {list(SPLITS)}, received {split!r}")
    return split


def split_parts(data_config, split: str) -> list[str]:
    """The source splits that make up ``split`` for a run, in reading order.

    ``["train", "validation"]`` for the train split with
    ``data_config.train_on_validation`` (nnU-Net's ``fold all``), else ``[split]``.
    """
    if split == "train" and data_config.train_on_validation:
        return ["train", "validation"]
    return [split]


def case_limit(data_config, split: str):
    """``max_train_cases`` for the train split, ``max_eval_cases`` for the others."""
    if split == "train":
        return data_config.max_train_cases
    return data_config.max_eval_cases


def split_ids(ids: list[str], seed: int = SPLIT_SEED) -> dict[str, list[str]]:
    """Cut case ids into the fixed train / validation / test split.

    Args:
        ids: case ids (any order; duplicates are not allowed).
        seed: seed of ``random.Random`` used to shuffle the sorted ids. Default 2020.

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``; for 1000 ids the
        sizes are 800 / 100 / 100, otherwise ``round(n / 10)`` (at least 1) for
        validation and test and the rest for train.

    Raises:
        ValueError: fewer than 3 ids or duplicated ids.
    """
    ordered = sorted(ids)
    if len(set(ordered)) != len(ordered):
        raise ValueError(f"Case ids must be unique, received {len(ordered)} ids of which "
                         f"{len(set(ordered))} are distinct")
    if len(ordered) < 3:
        raise ValueError(f"Need at least 3 cases to split into {SPLITS}, received "
                         f"{len(ordered)}")
    random.Random(seed).shuffle(ordered)
    n_holdout = max(1, round(len(ordered) / 10))
    n_train = len(ordered) - 2 * n_holdout
    return {"train": ordered[:n_train],
            "validation": ordered[n_train:n_train + n_holdout],
            "test": ordered[n_train + n_holdout:]}
