"""Starting a run from a trained model (transfer learning): its config, vocabulary and weights.

A chemist focuses a general model (``zinc250k``) on a series of their own with
``molvae train MY.smi --from zinc250k --out RUN`` (or ``MolVAE.fit(..., init="zinc250k")``). The new
run keeps the base model's architecture and vocabulary; its training schedule starts from
:data:`FINETUNE_DEFAULTS` (short, gentle, no KL warm-up: the latent space is already trained) and any
option the user sets. A molecule with a SELFIES token the base model lacks goes to the rejects with
that token named; with ``extend_vocab`` the vocabulary grows instead, and the new tokens get fresh
embedding and output rows (improbable at first) while every known token keeps its trained rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from molvae.errors import ConfigError
from molvae.model import ModelConfig
from molvae.vocab import Vocab, split_selfies

__all__ = ["BaseModel", "FINETUNE_DEFAULTS", "ARCHITECTURE_FIELDS", "finetune_config", "extended_vocab",
           "transfer_weights"]

FINETUNE_DEFAULTS: dict[str, Any] = {
    "epochs": 30, "lr": 3e-4, "batch_size": 64, "warmup_steps": 20, "kl_schedule": "constant",
    "early_stopping_patience": 5, "val_fraction": 0.1, "max_minutes": 0.0, "eval_every_steps": 0,
    "latent_prior_components": 20,
}
"""The schedule a fine-tuning run starts from (a few hundred to a few thousand molecules). The fitted
latent prior makes prior samples come from where the series lies in the base model's latent space,
not from all of it (BENCHMARKS.md, "Fine-tuning on a chemical series")."""

ARCHITECTURE_FIELDS = ("max_len", "stereo", "largest_fragment", "embed_dim", "enc_hidden", "enc_layers",
                       "latent_dim", "dec_hidden", "dec_layers", "conditions", "condition_columns", "prior",
                       "vamp_components", "vamp_length")
"""Config fields that come from the base model and cannot be changed by fine-tuning."""


@dataclass
class BaseModel:
    """What a fine-tuning run takes from its base model."""

    name: str
    config: ModelConfig
    vocab: Vocab
    weights: dict[str, torch.Tensor]


def finetune_config(base: ModelConfig, options: dict[str, Any], source: str) -> ModelConfig:
    """The base model's config with :data:`FINETUNE_DEFAULTS`, then ``options``, on top.

    :raises ConfigError: an option changes one of :data:`ARCHITECTURE_FIELDS`.
    """
    saved = base.to_dict()
    for key, value in options.items():
        if key in ARCHITECTURE_FIELDS and value != saved[key]:
            raise ConfigError(f"{key} comes from the base model {source} ({saved[key]!r}) and cannot be "
                              f"changed when fine-tuning (got {value!r})")
    return ModelConfig.from_dict({**saved, **FINETUNE_DEFAULTS, **options}, source="options")


def extended_vocab(vocab: Vocab, selfies: list[str]) -> Vocab:
    """``vocab`` plus every token of ``selfies`` it lacks."""
    new = {t for s in selfies for t in split_selfies(s)} - set(vocab.itos)
    return Vocab(vocab.itos + sorted(new)) if new else vocab


def transfer_weights(weights: dict[str, torch.Tensor], old: Vocab, new: Vocab,
                     seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights for ``new`` (a superset of ``old``): every known token keeps its embedding and output
    rows; a new token gets a random embedding at the scale of the trained ones and an output bias at
    the lowest trained bias, so it starts improbable and is learned from the data that use it."""
    if new == old:
        return weights
    missing = [t for t in old.itos if t not in new.stoi]
    if missing:
        raise ValueError(f"the new vocabulary lacks the base model's token {missing[0]}")
    where = torch.tensor([new.stoi[t] for t in old.itos])
    gen = torch.Generator().manual_seed(seed)
    out = dict(weights)
    embed = weights["embed.weight"]
    grown = torch.randn(len(new), embed.shape[1], generator=gen, dtype=embed.dtype) * embed.std()
    grown[new.pad_id] = 0.0
    grown[where] = embed
    out["embed.weight"] = grown
    w, b = weights["output.weight"], weights["output.bias"]
    out["output.weight"] = torch.zeros(len(new), w.shape[1], dtype=w.dtype).index_copy(0, where, w)
    out["output.bias"] = torch.full((len(new),), float(b.min()), dtype=b.dtype).index_copy(0, where, b)
    return out
