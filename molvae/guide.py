"""Property-guided decoding: steer every decoding step toward the requested conditions.

A conditional VAE's decoder reads most of a molecule from ``z``, so the properties of its samples
spread almost as widely as the training set's (BENCHMARKS.md, conditional generation). The guide is a
small GRU over SELFIES prefixes that predicts, for every possible next token, the conditions of the
finished molecule as a Gaussian ``N(mu, sigma^2)`` (standardized units). Decoding then draws each token
from

    log p(x_t | x_<t, z, c) + strength * log N(c*; mu(x_<=t), sigma(x_<=t)^2)

summed over the requested conditions ``c*``: the Bayes rule ``p(x_t | x_<t, c) ~ p(x_t | x_<t) p(c | x_<=t)``
(as FUDGE does for text, Yang & Klein 2021), tempered by ``strength``. Early in a molecule ``sigma`` is
wide and the guide barely acts; it sharpens as the molecule takes shape. The guide is trained once,
after the VAE, on the same training molecules and on the model's own samples labelled with RDKit
(:func:`molvae.train_guide.model_samples`; teacher forcing, Gaussian negative log-likelihood), and is stored beside the
model as ``guide.safetensors``. This module holds the network and its file; :mod:`molvae.train_guide` trains it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["GUIDE_FILE", "PropertyGuide", "Steering", "save_guide", "load_guide"]

GUIDE_FILE = "guide.safetensors"
_LOGVAR_RANGE = (-8.0, 4.0)


class PropertyGuide(nn.Module):
    """Predicts a finished molecule's standardized conditions from a token prefix and a candidate next token.

    The candidate's contribution is a per-token vector added inside the head, so scoring every token of
    the vocabulary costs one ``(B, V, H)`` addition rather than ``V`` network passes.
    """

    def __init__(self, vocab_size: int, n_conditions: int, hidden: int = 256, embed_dim: int = 64, pad_id: int = 0):
        super().__init__()
        self.vocab_size, self.n_conditions, self.hidden = vocab_size, n_conditions, hidden
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.gru = nn.GRU(embed_dim, hidden, 1, batch_first=True)
        self.from_prefix = nn.Linear(hidden, hidden)
        self.from_token = nn.Linear(embed_dim, hidden, bias=False)
        self.out = nn.Linear(hidden, 2 * n_conditions)
        self.summary: dict[str, Any] = {}  # how it was trained and how well it predicts (train_guide)

    def _gaussian(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        o = self.out(torch.nn.functional.silu(features))
        c = self.n_conditions
        return o[..., :c], o[..., c:].clamp(*_LOGVAR_RANGE)

    def forward(self, inputs: torch.Tensor, next_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: ``(mu, logvar)``, each ``(B, T, C)``, after reading ``inputs[:, :t+1]`` (``<bos>``
        first) and choosing ``next_tokens[:, t]``."""
        h, _ = self.gru(self.embed(inputs))
        return self._gaussian(self.from_prefix(h) + self.from_token(self.embed(next_tokens)))

    def start(self, b: int, device: torch.device) -> torch.Tensor:
        """The empty prefix's hidden state ``(1, B, H)``."""
        return torch.zeros(1, b, self.hidden, device=device)

    def advance(self, token: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Read one token per row ``(B,)``; the new hidden state."""
        _, hidden = self.gru(self.embed(token).unsqueeze(1), hidden.to(self.embed.weight.dtype))
        return hidden

    def log_likelihood(self, hidden: torch.Tensor, target: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """``log N(target; mu, sigma^2)`` summed over the conditions in ``which`` (bool ``(C,)``), for
        every candidate next token: ``(B, V)`` float32. ``target`` ``(B, C)`` is standardized."""
        feats = self.from_prefix(hidden[-1]).unsqueeze(1) + self.from_token(self.embed.weight).unsqueeze(0)
        mu, logvar = (t.float() for t in self._gaussian(feats))  # (B, V, C)
        ll = -0.5 * (logvar + math.log(2 * math.pi) + (target.float().unsqueeze(1) - mu) ** 2 / logvar.exp())
        return (ll * which.to(ll.device, ll.dtype)).sum(-1)


@dataclass
class Steering:
    """What ``VAE.generate`` needs to steer decoding: the guide, which conditions to steer toward (bool
    ``(C,)``; the targets are the standardized conditions in the decoder's input) and the strength."""

    guide: PropertyGuide
    which: torch.Tensor
    strength: float


def save_guide(guide: PropertyGuide, path: str | Path) -> Path:
    """Write the guide's weights (safetensors) with its training summary as metadata."""
    from molvae.io import save_weights

    return save_weights(guide.state_dict(), path, metadata={"format": "molvae-guide-1",
                                                            "summary": json.dumps(guide.summary)})


def load_guide(path: str | Path, vocab_size: int, n_conditions: int, hidden: int, pad_id: int = 0) -> PropertyGuide:
    """Read a guide written by :func:`save_guide` (never executes code from the file).

    :raises CheckpointError: a missing or corrupt file, or weights that do not fit the model.
    """
    from safetensors import safe_open

    from molvae.io import load_state, load_weights

    guide = PropertyGuide(vocab_size, n_conditions, hidden=hidden, pad_id=pad_id)
    load_state(guide, load_weights(path), path, "guide weights do not match the model")

    with safe_open(str(path), "pt") as f:
        guide.summary = json.loads((f.metadata() or {}).get("summary", "{}"))
    return guide.eval()


# Moved in the layering of issue 13: importable from here for one release (a DeprecationWarning says where).
_MOVED = {name: "molvae.train_guide" for name in ("guide_loss", "train_guide", "model_samples", "join_padded")}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib
        import warnings

        warnings.warn(f"molvae.guide.{name} moved to {_MOVED[name]}.{name}", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'molvae.guide' has no attribute {name!r}")
