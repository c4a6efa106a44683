"""The optimizer and learning-rate schedule of ``config.train``."""

from __future__ import annotations

import logging

import keras

logger = logging.getLogger(__name__)

__all__ = ["make_optimizer"]


def make_optimizer(train_config, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The optimizer and learning-rate schedule described by ``config.train``.

    With ``ema_momentum`` set, the optimizer also keeps the weights' moving average
    (Keras ``use_ema``), which :class:`segtie.training.callbacks.EMAWeights` swaps in.
    """
    t = train_config
    ema = {"use_ema": True, "ema_momentum": t.ema_momentum} if t.ema_momentum else {}
    total = max(1, t.epochs * steps_per_epoch)
    if ema and total * (1 - t.ema_momentum) < 3:  # the average lags by about 1/(1-m) steps
        logger.warning("train.ema_momentum=%g averages over about %s steps but this run has "
                       "%d: the averaged model (validation, best.keras) will lag the "
                       "training; use a smaller momentum or more epochs", t.ema_momentum,
                       round(1 / (1 - t.ema_momentum)) if t.ema_momentum < 1 else "all",
                       total)
    warmup = min(t.warmup_epochs * steps_per_epoch, total - 1)
    if t.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else t.learning_rate,
            decay_steps=total - warmup, alpha=0.0,
            warmup_target=t.learning_rate if warmup else None, warmup_steps=warmup)
    else:
        lr = t.learning_rate
    if t.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=lr, **ema)
    if t.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=t.weight_decay, **ema)
    return keras.optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True, **ema)
