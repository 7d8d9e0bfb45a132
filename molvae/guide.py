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
(:func:`model_samples`; teacher forcing, Gaussian negative log-likelihood), and is stored beside the
model as ``guide.safetensors``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["GUIDE_FILE", "PropertyGuide", "Steering", "train_guide", "model_samples", "join_padded", "save_guide",
           "load_guide"]

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


def guide_loss(guide: PropertyGuide, inputs: torch.Tensor, next_tokens: torch.Tensor, cond: torch.Tensor,
               pad_id: int) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood (without the constant) of the molecules' conditions
    ``(B, C)`` at every prefix; NaN conditions (unknown for that molecule) are left out."""
    mu, logvar = guide(inputs, next_tokens)
    known = torch.isfinite(cond).unsqueeze(1) & (next_tokens != pad_id).unsqueeze(-1)  # (B, T, C)
    target = torch.nan_to_num(cond).unsqueeze(1).expand_as(mu)
    nll = 0.5 * (logvar + (target - mu) ** 2 / logvar.exp())
    return nll[known].sum() / known.sum().clamp(min=1)  # 0 (not NaN) for a batch with nothing known


def train_guide(
    tokens: torch.Tensor,
    lengths: torch.Tensor,
    cond: torch.Tensor,
    *,
    vocab_size: int,
    bos_id: int,
    eos_id: int,
    pad_id: int,
    epochs: int = 10,
    hidden: int = 256,
    batch_size: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    val_fraction: float = 0.05,
    progress: bool = False,
) -> PropertyGuide:
    """Fit a :class:`PropertyGuide` on token ids ``(N, T)`` (padded), their lengths and standardized
    conditions ``(N, C)`` (NaN where unknown), on their device; AdamW with a cosine schedule.
    ``val_fraction`` of the molecules (at most 2,048) are held out; the weights of the epoch with the
    best held-out likelihood are kept. Returns the guide (eval mode) with its ``summary``: ``best_epoch``, ``val_nll`` per prefix
    and ``val_mae_final``, the mean absolute error (standardized units, per condition) of its
    predictions once a held-out molecule is complete."""
    from molvae.progress import progress_bar

    dev = tokens.device
    torch.manual_seed(seed)
    guide = PropertyGuide(vocab_size, cond.shape[1], hidden=hidden, pad_id=pad_id).to(dev)
    n = len(tokens)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(dev)
    n_val = min(max(1, int(n * val_fraction)), 2048) if n > 1 else 0
    val_idx, train_idx = order[:n_val], order[n_val:]
    if len(train_idx) == 0:
        train_idx = val_idx

    def batch(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        width = int(lengths[idx].max())
        tok = tokens[idx, :width]
        bos = torch.full((len(idx), 1), bos_id, dtype=tok.dtype, device=dev)
        inputs = torch.cat([bos, tok], 1)
        targets = torch.cat([tok, torch.full_like(bos, pad_id)], 1)
        targets.scatter_(1, lengths[idx].view(-1, 1), eos_id)
        return inputs, targets, cond[idx].float()

    @torch.no_grad()
    def held_out() -> tuple[float, np.ndarray]:
        guide.eval()
        nlls, errs = [], []
        for start in range(0, n_val, batch_size):
            inputs, targets, c = batch(val_idx[start:start + batch_size])
            nlls.append(guide_loss(guide, inputs, targets, c, pad_id).item() * len(c))
            mu, _ = guide(inputs, targets)
            errs.append((mu[targets == eos_id] - c).abs().cpu().numpy())
        err = np.concatenate(errs)
        known = np.isfinite(err)  # a condition unknown for every held-out molecule has no error (NaN)
        return sum(nlls) / n_val, np.where(known.any(0), np.where(known, err, 0).sum(0) / np.maximum(known.sum(0), 1),
                                           np.nan)

    opt = torch.optim.AdamW(guide.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(train_idx) / batch_size)
    gen = torch.Generator().manual_seed(seed + 1)
    step = 0
    best: tuple[float, int, dict[str, torch.Tensor] | None] = (math.inf, 0, None)
    bar = progress_bar(total=steps, disable=not progress, desc="property guide", unit="batch", leave=False)
    for epoch in range(epochs):
        guide.train()
        perm = train_idx[torch.randperm(len(train_idx), generator=gen).to(dev)]
        for start in range(0, len(perm), batch_size):
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / max(steps, 1)))
            loss = guide_loss(guide, *batch(perm[start:start + batch_size]), pad_id=pad_id)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(guide.parameters(), 5.0)
            opt.step()
            step += 1
            bar.update(1)
            bar.set_postfix(nll=f"{loss.item():.3f}", refresh=False)
        if n_val:  # keep the epoch whose held-out likelihood is best: an over-confident guide over-steers
            nll = held_out()[0]
            if nll < best[0]:
                best = (nll, epoch + 1, {k: v.detach().clone() for k, v in guide.state_dict().items()})
    bar.close()
    guide.eval()
    summary: dict[str, Any] = {"epochs": epochs, "hidden": hidden, "n_train": int(len(train_idx)), "n_val": int(n_val)}
    if best[2] is not None:
        guide.load_state_dict(best[2])
        nll, mae = held_out()
        summary.update(best_epoch=best[1], val_nll=nll, val_mae_final=[float(x) for x in mae])
    guide.summary = summary
    return guide


@torch.no_grad()
def model_samples(net: Any, vocab: Any, spec: Any, cond_pool: torch.Tensor, n: int, *, max_len: int,
                  stereo: bool = True, seed: int = 0, batch_size: int = 1024,
                  progress: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training data for the guide from the model itself: ``n`` molecules decoded from prior points at
    conditions drawn from ``cond_pool`` (standardized ``(M, C)``: the training set's), half at
    temperature 1 and half at 0.5, as the token ids the decoder emitted ``(n', T)``, their lengths and
    their own conditions ``(n', C)``: RDKit properties computed and standardized with ``spec``, NaN for
    data-column conditions (unknown for a new molecule). Invalid decodings are left out.

    Why: the guide then learns on the prefixes it will see while steering, and on as many molecules
    as wanted rather than only the training set (on 15k MOSES molecules, training on the training set
    alone overfits within a dozen epochs and steers to a logP error of 0.50; with 45k samples added, 0.35).
    """
    from molvae.conditions import rdkit_values
    from molvae.generate import decode_latents
    from molvae.vocab import tokenize

    dev = cond_pool.device
    gen = torch.Generator().manual_seed(seed)
    cond = cond_pool[torch.randint(len(cond_pool), (n,), generator=gen).to(dev)].float()
    z = net.prior_sample(n, generator=gen, cond=cond)
    zc = net.with_conditions(z.to(dev), cond)
    smiles, selfies = [], []
    for i, (part, temperature) in enumerate(((slice(0, n // 2), 1.0), (slice(n // 2, n), 0.5))):
        rows = zc[part]
        batches = (rows[j:j + batch_size] for j in range(0, len(rows), batch_size))
        s, sf = decode_latents(net, vocab, batches, max_len=max_len, device=dev, temperature=temperature,
                               seed=seed + i, stereo=stereo, total=len(rows), progress=progress)
        smiles += s
        selfies += sf
    keep = [i for i, s in enumerate(smiles) if s is not None and selfies[i]]
    raw = np.full((len(keep), len(spec.names)), np.nan)
    rdkit = [j for j, src in enumerate(spec.sources) if src == "rdkit"]
    raw[:, rdkit] = rdkit_values([smiles[i] for i in keep], [spec.names[j] for j in rdkit])
    tokens, lengths = tokenize([selfies[i] for i in keep], vocab, max_len)
    return tokens.to(dev), lengths.to(dev), torch.as_tensor(spec.standardize(raw), device=dev)


def join_padded(a: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
                b: tuple[torch.Tensor, torch.Tensor, torch.Tensor], pad_id: int = 0):
    """Concatenate two ``(tokens, lengths, cond)`` sets whose token arrays have different widths."""
    width = max(a[0].shape[1], b[0].shape[1])

    def widen(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=pad_id)

    return (torch.cat([widen(a[0]), widen(b[0])]), torch.cat([a[1], b[1]]), torch.cat([a[2].float(), b[2].float()]))


def save_guide(guide: PropertyGuide, path: str | Path) -> Path:
    """Write the guide's weights (safetensors) with its training summary as metadata."""
    from molvae.io import save_weights

    return save_weights(guide.state_dict(), path, metadata={"format": "molvae-guide-1",
                                                            "summary": json.dumps(guide.summary)})


def load_guide(path: str | Path, vocab_size: int, n_conditions: int, hidden: int, pad_id: int = 0) -> PropertyGuide:
    """Read a guide written by :func:`save_guide` (never executes code from the file).

    :raises CheckpointError: a missing or corrupt file, or weights that do not fit the model.
    """
    from molvae.errors import CheckpointError
    from molvae.io import load_weights

    guide = PropertyGuide(vocab_size, n_conditions, hidden=hidden, pad_id=pad_id)
    try:
        guide.load_state_dict({k: v.float() for k, v in load_weights(path).items()})
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise CheckpointError(f"{path}: guide weights do not match the model ({first})") from None
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        guide.summary = json.loads((f.metadata() or {}).get("summary", "{}"))
    return guide.eval()
