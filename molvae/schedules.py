"""Training schedules: pure functions of the step, like nanoGPT's ``get_lr`` (the model knows nothing of them).

    >>> lr_factor(step, total_steps, config)    # warm-up, then cosine to a 10% floor
    >>> kl_weight(step, steps_per_epoch, config)  # constant, linear warm-up or cyclical beta
"""

from __future__ import annotations

import math

from molvae.model import ModelConfig

__all__ = ["cosine", "lr_factor", "kl_weight"]


def cosine(progress: float, floor: float = 0.0) -> float:
    """Cosine decay from 1 at ``progress`` 0 to ``floor`` at 1 (``progress`` is clipped to [0, 1])."""
    progress = min(1.0, max(0.0, progress))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_factor(step: int, total_steps: int, config: ModelConfig) -> float:
    """Learning-rate multiplier: linear warm-up, then cosine decay to 10% (or constant)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return 1.0
    return cosine((step - config.warmup_steps) / max(1, total_steps - config.warmup_steps), floor=0.1)


def kl_weight(step: int, steps_per_epoch: int, config: ModelConfig) -> float:
    """The KL weight beta at a training step: a pure function of the step, like a learning-rate schedule."""
    if config.kl_schedule == "constant":
        return config.beta
    epoch = step / max(1, steps_per_epoch)
    if config.kl_schedule == "linear":
        if config.kl_warmup_epochs <= 0:
            return config.beta
        return config.beta * min(1.0, epoch / config.kl_warmup_epochs)
    # cyclical (Fu et al. 2019): ramp over the first half of each cycle, then hold
    cycle_len = config.epochs / max(1, config.kl_cycles)
    pos = (epoch % cycle_len) / cycle_len
    return config.beta * min(1.0, pos / 0.5)
