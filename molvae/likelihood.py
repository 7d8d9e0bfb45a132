"""Likelihood bounds and an out-of-distribution score for molecules under a trained VAE.

The importance-weighted bound (IWAE, Burda et al. 2016) with ``k`` posterior samples,

    log p(x) >= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),    z_i ~ q(z|x),

is the ELBO at ``k = 1`` and tightens as ``k`` grows: the honest number for comparing two models
(nats per molecule; ``x`` is the canonical SELFIES token sequence, so this bounds the probability the
model gives to that one spelling of the molecule). All ``k`` samples of a batch of molecules go
through the decoder together, in chunks of at most ``batch_elems`` sequences. A conditional model
bounds ``log p(x|c)``: ``q``, ``p(x|z)`` and a conditional prior ``p(z|c)`` see the molecule's ``c``.

The OOD score takes the larger of two standardized statistics (z-scores against held-out molecules):
the negative IWAE bound (improbable as a whole: too large, too complex) and the reconstruction error
per token, ``-log p(x | z = mu) / tokens`` (each step hard to predict: unfamiliar chemistry). The
bound alone ranks tiny, simple molecules (CO, O=C=O) as the *most* in-distribution, since their few
tokens are cheap in total (Nalisnick et al. 2019); per token they are very costly, so the second
statistic catches them. The threshold is a quantile of the held-out scores (``ood.json`` beside the
model), so about ``1 - quantile`` of molecules like the training set are flagged.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from molvae.device import seed_or_random
from molvae.errors import CheckpointError, ConfigError
from molvae.vocab import teacher_forcing

__all__ = ["likelihood_bounds", "score_molecules", "OODCalibration", "OOD_FILE", "LIKELIHOOD_FILE", "auroc"]

OOD_FILE = "ood.json"
LIKELIHOOD_FILE = "likelihood.json"


@torch.no_grad()
def likelihood_bounds(net: torch.nn.Module, tokens: torch.Tensor, lengths: torch.Tensor,
                      cond: torch.Tensor | None = None, k: int = 100, seed: int | None = 0,
                      batch_elems: int = 4096, progress: bool = False) -> dict[str, np.ndarray]:
    """Per-molecule bounds for padded token ids ``(N, T)`` (``cond (N, C)`` for a conditional model).

    Returns float64 arrays ``(N,)`` in nats: ``iwae`` (the k-sample bound), ``elbo`` (the mean of the
    k single-sample ELBO estimates: an unbiased estimate of the ELBO), ``recon`` (``-log p(x|mu)``,
    greedy-free reconstruction error at the posterior mean), ``kl`` (the mean of ``log q(z|x) - log p(z)``
    over the samples: a Monte-Carlo KL) and ``n_tokens`` (tokens + ``<eos>``).
    Computed in float32 on the network's device, in eval mode. Each molecule's samples come from its
    own generator, seeded by ``seed`` and its tokens: its bounds do not depend on the other molecules
    in the call or on ``batch_elems``.
    """
    from molvae.progress import progress_bar

    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    dev = next(net.parameters()).device
    was_training = net.training
    net.eval()
    base_seed = seed_or_random(seed)
    n = len(tokens)
    out = {key: np.zeros(n) for key in ("iwae", "elbo", "recon", "kl", "n_tokens")}
    components = net.prior_components() if getattr(net, "prior", None) is not None else None
    order = torch.argsort(lengths.cpu(), stable=True)  # similar lengths together: little padding
    per_batch = max(1, batch_elems // k)
    samples_per_pass = max(1, min(k, batch_elems))
    bar = progress_bar(total=n, disable=not progress, desc=f"IWAE k={k}", unit="mol")
    try:
        with torch.autocast(device_type=dev.type, enabled=False):
            for start in range(0, n, per_batch):
                idx = order[start:start + per_batch]
                length = lengths[idx].to(dev)
                width = int(length.max())
                tok = tokens[idx, :width].to(dev)
                c = cond[idx].to(dev).float() if cond is not None else None
                mu, logvar = net.encode(tok, length, c)
                mu, logvar = mu.float(), logvar.float()
                b = len(idx)
                inputs, targets = _teacher_inputs(net, tok, length)
                out["recon"][idx.numpy()] = -_log_px(net, mu, c, inputs, targets).double().cpu().numpy()
                noise = torch.stack([_molecule_noise(row[:n], base_seed, k, mu.shape[1])
                                     for row, n in zip(tok.tolist(), length.tolist())]).to(dev)  # (b, k, Z)
                log_w, kl = [], []
                for s0 in range(0, k, samples_per_pass):
                    s = min(samples_per_pass, k - s0)
                    eps = noise[:, s0:s0 + s]
                    z = mu[:, None] + eps * torch.exp(0.5 * logvar)[:, None]  # (b, s, Z)
                    log_q = -0.5 * (eps.pow(2) + logvar[:, None] + math.log(2 * math.pi)).sum(-1)
                    zf = z.reshape(b * s, -1)
                    rep = lambda t: t.repeat_interleave(s, dim=0) if t is not None else None  # noqa: E731
                    log_p = net.prior_log_prob(zf, components, rep(c)).view(b, s)
                    log_px = _log_px(net, zf, rep(c), rep(inputs), rep(targets)).view(b, s)
                    log_w.append((log_px + log_p - log_q).double())
                    kl.append((log_q - log_p).double())
                lw = torch.cat(log_w, dim=1)  # (b, k)
                out["iwae"][idx.numpy()] = (torch.logsumexp(lw, dim=1) - math.log(k)).cpu().numpy()
                out["elbo"][idx.numpy()] = lw.mean(1).cpu().numpy()
                out["kl"][idx.numpy()] = torch.cat(kl, dim=1).mean(1).cpu().numpy()
                out["n_tokens"][idx.numpy()] = (length + 1).cpu().numpy()
                bar.update(b)
    finally:
        bar.close()
        net.train(was_training)
    return out


def _molecule_noise(ids: list[int], seed: int, k: int, dim: int) -> torch.Tensor:
    """Standard-normal ``(k, dim)`` noise that depends only on a molecule's tokens and the seed."""
    digest = hashlib.blake2b(np.asarray(ids, dtype=np.int64).tobytes(), digest_size=8,
                             key=int(seed).to_bytes(8, "little", signed=True)).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(digest, "little") % (2**63))
    return torch.randn((k, dim), generator=gen)


def score_molecules(net: torch.nn.Module, tokens: torch.Tensor, lengths: torch.Tensor, cond: np.ndarray | None,
                    k: int, seed: int | None = 0, batch_elems: int = 4096, progress: bool = False) -> dict[str, np.ndarray]:
    """:func:`likelihood_bounds` of encoded molecules with their standardized conditions ``cond (n, C)``
    as numpy (None for a plain VAE): the one way :class:`molvae.api.MolVAE` scores molecules."""
    return likelihood_bounds(net, tokens, lengths, torch.as_tensor(cond) if cond is not None else None, k=k, seed=seed,
                             batch_elems=batch_elems, progress=progress)


def _teacher_inputs(net: torch.nn.Module, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder inputs and targets ``(B, T+1)`` with the network's special ids (:func:`molvae.vocab.teacher_forcing`)."""
    return teacher_forcing(tokens, lengths, bos_id=net.bos_id, eos_id=net.eos_id, pad_id=net.pad_id)


def _log_px(net: torch.nn.Module, z: torch.Tensor, cond: torch.Tensor | None, inputs: torch.Tensor,
            targets: torch.Tensor) -> torch.Tensor:
    """``log p(x | z)`` per row ``(B,)``: minus the summed token cross-entropy."""
    logits = net.decode_teacher_forced(net.with_conditions(z, cond), inputs).float()
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=net.pad_id,
                         reduction="none").view(targets.shape)
    return -ce.sum(1)


@dataclass
class OODCalibration:
    """How a model turns bounds into an OOD score, and the threshold that flags a molecule.

    ``score = max((-iwae - mean[0]) / std[0], (recon / n_tokens - mean[1]) / std[1])`` with the
    held-out molecules' means and standard deviations (IWAE with ``k`` samples); higher is less
    like them, ``ood = score > threshold``.
    """

    k: int
    quantile: float
    threshold: float
    mean: list[float]  # (2,) held-out means of (-iwae, recon per token)
    std: list[float]  # (2,) their standard deviations
    n: int  # held-out molecules the statistics come from
    seed: int = 0

    @classmethod
    def fit(cls, bounds: dict[str, np.ndarray], k: int, quantile: float = 0.99, seed: int = 0) -> "OODCalibration":
        x = _features(bounds)
        std = np.maximum(x.std(0), 1e-6) if len(x) > 1 else np.ones(2)
        cal = cls(k, float(quantile), 0.0, x.mean(0).tolist(), std.tolist(), len(x), seed)
        cal.threshold = float(np.quantile(cal.score(bounds), quantile))
        return cal

    def score(self, bounds: dict[str, np.ndarray]) -> np.ndarray:
        return ((_features(bounds) - np.asarray(self.mean)) / np.asarray(self.std)).max(axis=1)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "OODCalibration":
        path = Path(path)
        try:
            cal = cls(**json.loads(path.read_text()))
            if np.asarray(cal.mean).shape != (2,) or np.asarray(cal.std).shape != (2,):
                raise ValueError("mean and std must have 2 values each")
            return cal
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{path}: unreadable OOD calibration ({exc})") from None


def _features(bounds: dict[str, np.ndarray]) -> np.ndarray:
    """``(n, 2)``: the negative IWAE bound and the reconstruction error per token."""
    return np.stack([-np.asarray(bounds["iwae"], float),
                     np.asarray(bounds["recon"], float) / np.asarray(bounds["n_tokens"], float)], axis=1)


def auroc(scores_negative: np.ndarray, scores_positive: np.ndarray) -> float:
    """Area under the ROC curve for telling positives (higher scores expected) from negatives
    (the Mann-Whitney U statistic; ties count one half)."""
    from scipy.stats import rankdata

    neg, pos = np.asarray(scores_negative, float), np.asarray(scores_positive, float)
    ranks = rankdata(np.concatenate([neg, pos]))
    u = ranks[len(neg):].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(neg) * len(pos)))
