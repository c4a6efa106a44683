"""The tiny real training the survive/resume tests share: seconds per run on 2 CPU cores.

16 Kvasir-SEG training frames and 8 validation frames at 32x32, batch 8 (two steps an
epoch), a 2-level tied U-Net of base width 4 (1,781 parameters).
"""

import dataclasses
import os

import yaml

from segtie import config as cfg
from segtie.training import guards


def tiny_raw(data_config, output_dir, train=None, tracking=None) -> dict:
    """The raw (YAML-able) config dict; ``train``/``tracking`` update those groups."""
    data = dataclasses.asdict(data_config)
    data.update(image_size=[32, 32], batch_size=8, max_train_cases=16, max_eval_cases=8)
    return {
        "data": data,
        "model": {"base_filters": 4, "depth": 2},
        "train": {"epochs": 2, "warmup_epochs": 0, "output_dir": str(output_dir),
                  **(train or {})},
        "eval": {"num_overlays": 1},
        "tracking": {"enabled": False, **(tracking or {})},
    }


def tiny_config(data_config, output_dir, train=None, tracking=None) -> cfg.Config:
    return cfg.from_dict(tiny_raw(data_config, output_dir, train, tracking))


def write_yaml(raw: dict, path) -> str:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def signal_at(monkeypatch, signum, epoch, step):
    """Send ``signum`` to this process after step ``step`` (0-based) of ``epoch``."""
    original = guards.StopOnSignal.on_train_batch_end

    def send(self, batch, logs=None):
        if self.epoch == epoch and batch == step and self.signals.requested is None:
            os.kill(os.getpid(), signum)  # the handler runs here, as it would for a user
        original(self, batch, logs)

    monkeypatch.setattr(guards.StopOnSignal, "on_train_batch_end", send)
