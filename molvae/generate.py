"""Decoding latent points into molecules, with CPU post-processing overlapped with device decoding.

The device decodes batch ``i+1`` while a pool of worker processes turns batch ``i`` from SELFIES into
RDKit-validated canonical SMILES. A generated molecule that fails is data (``None``), not an error.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch

from molvae._pool import process_pool
from molvae.device import seed_or_random
from molvae.priors import sample_mixture
from molvae.vocab import Vocab, selfies_to_smiles

if TYPE_CHECKING:  # pragma: no cover
    from molvae.guide import Steering
    from molvae.latent_mixture import LatentMixture
    from molvae.model import VAE

__all__ = ["postprocess", "decode_latents", "prior_latents", "prior_batches", "slerp", "lerp"]

# Below this many molecules a worker pool costs more than it saves.
_POOL_THRESHOLD = 4096


def postprocess(selfies: list[str], stereo: bool = True, keep_radicals: bool = False) -> list[str | None]:
    """SELFIES -> SMILES -> RDKit sanitization -> radicals filled with hydrogens
    (:func:`~molvae.chem.fill_radicals`, unless ``keep_radicals``) -> canonical SMILES; ``None`` for
    empty or invalid."""
    from molvae.chem import fill_radicals, parse_smiles, quiet_rdkit, to_canonical

    out: list[str | None] = []
    with quiet_rdkit():  # generated molecules may trip stereo warnings: they are data, not news
        for s in selfies:
            smi = selfies_to_smiles(s) if s else ""
            mol, _ = parse_smiles(smi) if smi else (None, None)
            if mol is not None and not keep_radicals:
                mol = fill_radicals(mol)
            out.append(to_canonical(mol, stereo=stereo) if mol is not None else None)
    return out


def _pool(n_workers: int) -> Executor:
    """forkserver, not molvae's usual fork: these workers start while this process keeps decoding on
    the device, and a fork of a process holding a CUDA context and torch's threads is unsafe
    (:mod:`molvae._pool`)."""
    return process_pool(n_workers, method="forkserver")


def prior_latents(n: int, latent_dim: int, seed: int | None, batch_size: int) -> Iterator[torch.Tensor]:
    """Standard-normal latent points in batches, reproducible from ``seed`` (a conditional prior moves
    this same noise to ``p(z|c)``: :meth:`molvae.model.VAE.shift_to_prior`)."""
    gen = torch.Generator().manual_seed(seed_or_random(seed))
    for start in range(0, n, batch_size):
        yield torch.randn(min(batch_size, n - start), latent_dim, generator=gen)


def prior_batches(net: VAE, n: int, seed: int | None, batch_size: int, cond: np.ndarray | torch.Tensor | None = None,
                  mixture: LatentMixture | None = None) -> Iterator[torch.Tensor]:
    """``n`` latent points from a model's prior in batches of ``batch_size``, float32 on the CPU: N(0, I),
    the conditional prior ``p(z|c)`` at standardized ``cond (n, C)`` (None: the mean, 0), the VampPrior's
    mixture, or a ``mixture`` fitted after training (:mod:`molvae.latent_mixture`).

    The one place prior points are drawn (sampling, training's evaluation, the optimizer's start).
    The normal prior's stream is :func:`prior_latents`' (seeded outputs depend on it, and a
    conditional prior moves that same noise), so it is the same for every kind of prior below.
    """
    if mixture is not None:
        gen = torch.Generator().manual_seed(seed_or_random(seed))
        for start in range(0, n, batch_size):
            yield mixture.sample(min(batch_size, n - start), gen)
        return
    if net.prior is None:
        dev = next(net.parameters()).device
        for start, eps in zip(range(0, n, batch_size), prior_latents(n, net.config.latent_dim, seed, batch_size)):
            if net.cond_prior is None:
                yield eps
            else:  # p(z|c): the same noise, moved to mu(c) and scaled by sigma(c)
                c = torch.as_tensor(cond[start:start + len(eps)], device=dev) if cond is not None else None
                yield net.shift_to_prior(eps.to(dev), c).cpu()
        return
    gen = torch.Generator().manual_seed(seed_or_random(seed))
    with torch.no_grad():
        mu_k, logvar_k = (t.float().cpu() for t in net.prior_components())
    for start in range(0, n, batch_size):
        yield sample_mixture(min(batch_size, n - start), mu_k, logvar_k, gen)


def decode_latents(
    net: torch.nn.Module,
    vocab: Vocab,
    batches: Iterator[torch.Tensor],
    *,
    max_len: int,
    device: torch.device,
    temperature: float = 0.0,
    seed: int | None = None,
    stereo: bool = True,
    keep_radicals: bool = False,
    n_workers: int | None = None,
    total: int | None = None,
    progress: bool = False,
    guidance: float = 1.0,
    steer: Steering | None = None,
) -> tuple[list[str | None], list[str]]:
    """Decode batches of latent points; return canonical SMILES (``None`` = invalid) and raw SELFIES.

    ``n_workers`` processes post-process in parallel with decoding (default: all cores, or none for
    small jobs). Results keep the order of the input latent points. ``guidance`` and ``steer`` (a
    :class:`molvae.guide.Steering`): see ``VAE.generate``.
    """
    from molvae.progress import progress_bar

    if n_workers is None:
        n_workers = (os.cpu_count() or 1) if (total or 0) >= _POOL_THRESHOLD else 0
    gen = None
    if temperature and temperature > 0:
        gen = torch.Generator(device=device).manual_seed(seed_or_random(seed))
    net.eval()
    first_allowed = torch.tensor(vocab.starts_molecule(), dtype=torch.bool, device=device)
    pool = _pool(n_workers) if n_workers > 0 else None
    pending, selfies_all = [], []
    bar = progress_bar(total=total, disable=not progress, desc="decoding", unit="mol")
    try:
        for z in batches:
            z = z.to(device=device, dtype=torch.float32)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                ids = net.generate(z, max_len=max_len, temperature=temperature, generator=gen,
                                   first_allowed=first_allowed, guidance=guidance, steer=steer)
            selfies = [vocab.decode(row) for row in ids.cpu().tolist()]
            selfies_all.extend(selfies)
            if pool is None:
                pending.append(postprocess(selfies, stereo, keep_radicals))
            else:  # split so every worker gets a share of this batch while the device moves on
                step = max(1, math.ceil(len(selfies) / n_workers))
                pending.extend(pool.submit(postprocess, selfies[i:i + step], stereo, keep_radicals)
                               for i in range(0, len(selfies), step))
            bar.update(len(selfies))
        smiles: list[str | None] = []
        for item in pending:
            smiles.extend(item if isinstance(item, list) else item.result())
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return smiles, selfies_all


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Linear interpolation between two latent vectors at fractions ``t`` -> ``(len(t), Z)``."""
    return a[None, :] + t[:, None] * (b - a)[None, :]


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation (keeps points at a typical prior radius); falls back to linear if parallel."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    cos = float(np.clip(np.dot(a, b) / max(na * nb, 1e-12), -1.0, 1.0))
    omega = math.acos(cos)
    if omega < 1e-6:
        return lerp(a, b, t)
    so = math.sin(omega)
    return (np.sin((1 - t) * omega)[:, None] * a[None, :] + np.sin(t * omega)[:, None] * b[None, :]) / so
