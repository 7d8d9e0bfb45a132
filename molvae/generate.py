"""Decoding latent points into molecules, with CPU post-processing overlapped with device decoding.

The device decodes batch ``i+1`` while a pool of worker processes turns batch ``i`` from SELFIES into
RDKit-validated canonical SMILES. A generated molecule that fails is data (``None``), not an error.

Every decoded token string is also checked for SELFIES repairs (:func:`molvae.vocab.selfies_repaired`):
a string the SELFIES decoder had to alter is the model's mistake, and :func:`sample_accepted` replaces
it with a fresh sample, as a SMILES model's invalid string would be discarded.
"""

from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple

import numpy as np
import torch

from molvae._pool import process_pool
from molvae.device import seed_or_random
from molvae.priors import sample_mixture
from molvae.vocab import Vocab, selfies_repaired, selfies_to_smiles

if TYPE_CHECKING:  # pragma: no cover
    from molvae.guide import Steering
    from molvae.latent_flow import LatentFlow
    from molvae.latent_mixture import LatentMixture
    from molvae.model import VAE

__all__ = ["postprocess", "decode_latents", "sample_accepted", "postprocess_pool", "sampling_generator", "Decoded",
           "PriorStream", "prior_latents", "prior_batches", "slerp", "lerp", "RepairWarning"]

# Below this many molecules a worker pool costs more than it saves.
_POOL_THRESHOLD = 4096


class RepairWarning(UserWarning):
    """Sampling gave up on some rows: no accepted (unrepaired) string in many tries; those rows keep a repaired one."""


class Decoded(NamedTuple):
    """Decoded molecules, one entry per latent point: canonical SMILES (``None`` = invalid), the raw
    SELFIES, and whether the SELFIES decoder repaired the string (:func:`molvae.vocab.selfies_repaired`)."""

    smiles: list[str | None]
    selfies: list[str]
    repaired: list[bool]


def postprocess(selfies: list[str], stereo: bool = True, keep_radicals: bool = False,
                skip_repaired: bool = False) -> tuple[list[str | None], list[bool]]:
    """SELFIES -> SMILES -> RDKit sanitization -> radicals filled with hydrogens
    (:func:`~molvae.chem.fill_radicals`, unless ``keep_radicals``) -> canonical SMILES; ``None`` for
    empty or invalid. Also returns, per string, whether the SELFIES decoder repaired it; with
    ``skip_repaired`` a repaired string is not given to RDKit at all (``None``: it will be redrawn)."""
    from molvae.chem import fill_radicals, parse_smiles, quiet_rdkit, to_canonical

    out: list[str | None] = []
    repaired: list[bool] = []
    with quiet_rdkit():  # generated molecules may trip stereo warnings: they are data, not news
        for s in selfies:
            smi = selfies_to_smiles(s) if s else ""
            repaired.append(selfies_repaired(s, smi))
            if skip_repaired and repaired[-1]:
                out.append(None)
                continue
            mol, _ = parse_smiles(smi) if smi else (None, None)
            if mol is not None and not keep_radicals:
                mol = fill_radicals(mol)
            out.append(to_canonical(mol, stereo=stereo) if mol is not None else None)
    return out, repaired


@contextmanager
def postprocess_pool(total: int, n_workers: int | None = None) -> Iterator[Executor | None]:
    """The worker pool for post-processing ``total`` decoded molecules (None where it would cost more
    than it saves: under ``_POOL_THRESHOLD`` molecules, or ``n_workers`` 0), shut down on exit."""
    if n_workers is None:
        n_workers = (os.cpu_count() or 1) if total >= _POOL_THRESHOLD else 0
    pool = _pool(n_workers) if n_workers > 0 else None
    try:
        yield pool
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def sampling_generator(temperature: float, seed: int | None, device: torch.device) -> torch.Generator | None:
    """The generator token sampling draws from (None for greedy decoding), seeded with ``seed``."""
    if not (temperature and temperature > 0):
        return None
    return torch.Generator(device=device).manual_seed(seed_or_random(seed))


def _pool(n_workers: int) -> Executor:
    """molvae's usual start method (fork on Linux: works from scripts without a main guard), except
    once this process holds a CUDA context, which a fork may not inherit safely: then forkserver, whose
    children start from a clean server process (:mod:`molvae._pool`). The workers run only SELFIES
    and RDKit, never torch."""
    return process_pool(n_workers, method="forkserver" if torch.cuda.is_initialized() else None)


def prior_latents(n: int, latent_dim: int, seed: int | None, batch_size: int) -> Iterator[torch.Tensor]:
    """Standard-normal latent points in batches, reproducible from ``seed`` (a conditional prior moves
    this same noise to ``p(z|c)``: :meth:`molvae.model.VAE.shift_to_prior`)."""
    gen = torch.Generator().manual_seed(seed_or_random(seed))
    for start in range(0, n, batch_size):
        yield torch.randn(min(batch_size, n - start), latent_dim, generator=gen)


class PriorStream:
    """A seeded stream of latent points from a model's prior, drawn in batches; each :meth:`batches`
    call continues where the last one stopped (so rejection sampling can ask for more).

    The prior is N(0, I), the conditional prior ``p(z|c)`` (the same noise, moved by the rows'
    conditions), the VampPrior's mixture, or a prior fitted after training (``fitted``: anything with
    ``sample(n, generator)``: a :class:`~molvae.latent_mixture.LatentMixture` or
    :class:`~molvae.latent_flow.LatentFlow`). Points are float32
    on the CPU; the normal prior's first ``n`` are :func:`prior_latents`' (seeded outputs depend on it).
    """

    def __init__(self, net: VAE, seed: int | None, batch_size: int,
                 fitted: LatentMixture | LatentFlow | None = None):
        self.net, self.batch_size, self.fitted = net, batch_size, fitted
        self.generator = torch.Generator().manual_seed(seed_or_random(seed))
        self._components = None
        if fitted is None and net.prior is not None:
            with torch.no_grad():
                self._components = tuple(t.float().cpu() for t in net.prior_components())

    def batches(self, n: int, cond: np.ndarray | torch.Tensor | None = None) -> Iterator[torch.Tensor]:
        """The next ``n`` points in batches; ``cond (n, C)``: standardized conditions of a conditional
        prior's rows (None: the mean, 0)."""
        for start in range(0, n, self.batch_size):
            size = min(self.batch_size, n - start)
            if self.fitted is not None:
                yield self.fitted.sample(size, self.generator)
            elif self._components is not None:
                yield sample_mixture(size, *self._components, self.generator)
            else:
                eps = torch.randn(size, self.net.config.latent_dim, generator=self.generator)
                if self.net.cond_prior is None:
                    yield eps
                else:  # p(z|c): the same noise, moved to mu(c) and scaled by sigma(c)
                    dev = next(self.net.parameters()).device
                    c = torch.as_tensor(cond[start:start + size], device=dev) if cond is not None else None
                    yield self.net.shift_to_prior(eps.to(dev), c).cpu()


def prior_batches(net: VAE, n: int, seed: int | None, batch_size: int, cond: np.ndarray | torch.Tensor | None = None,
                  mixture: LatentMixture | LatentFlow | None = None) -> Iterator[torch.Tensor]:
    """``n`` latent points from a model's prior in batches of ``batch_size`` (:class:`PriorStream`):
    the one place prior points are drawn (sampling, training's evaluation, the optimizer's start)."""
    return PriorStream(net, seed, batch_size, mixture).batches(n, cond)


def decode_latents(
    net: torch.nn.Module,
    vocab: Vocab,
    batches: Iterator[torch.Tensor],
    *,
    max_len: int,
    device: torch.device,
    temperature: float = 0.0,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    stereo: bool = True,
    keep_radicals: bool = False,
    skip_repaired: bool = False,
    n_workers: int | None = None,
    executor: Executor | None = None,
    total: int | None = None,
    progress: bool = False,
    bar: Any = None,
    guidance: float = 1.0,
    steer: Steering | None = None,
) -> Decoded:
    """Decode batches of latent points into :class:`Decoded` (SMILES, SELFIES, repaired), in their order.

    ``n_workers`` processes post-process in parallel with decoding (default: all cores, or none for
    small jobs); ``executor`` lends a pool instead (not shut down here). ``skip_repaired``: see
    :func:`postprocess`. Sampling (``temperature`` > 0) draws from ``generator``, or a new one seeded
    with ``seed``. ``bar``: a progress bar to advance (else one of its own when ``progress``).
    ``guidance`` and ``steer`` (a :class:`molvae.guide.Steering`): see ``VAE.generate``.
    """
    from molvae.progress import progress_bar

    if n_workers is None:
        n_workers = (os.cpu_count() or 1) if (total or 0) >= _POOL_THRESHOLD else 0
    if generator is None:
        generator = sampling_generator(temperature, seed, device)
    net.eval()
    first_allowed = torch.tensor(vocab.starts_molecule(), dtype=torch.bool, device=device)
    own_pool = executor is None and n_workers > 0
    pool = _pool(n_workers) if own_pool else executor
    workers = n_workers if own_pool else (os.cpu_count() or 1)  # shares of each batch for the pool
    pending, selfies_all = [], []
    own_bar = bar is None
    if own_bar:
        bar = progress_bar(total=total, disable=not progress, desc="decoding", unit="mol")
    try:
        for z in batches:
            z = z.to(device=device, dtype=torch.float32)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                ids = net.generate(z, max_len=max_len, temperature=temperature, generator=generator,
                                   first_allowed=first_allowed, guidance=guidance, steer=steer)
            selfies = [vocab.decode(row) for row in ids.cpu().tolist()]
            selfies_all.extend(selfies)
            if pool is None:
                pending.append(postprocess(selfies, stereo, keep_radicals, skip_repaired))
            else:  # split so every worker gets a share of this batch while the device moves on
                step = max(1, math.ceil(len(selfies) / workers))
                pending.extend(pool.submit(postprocess, selfies[i:i + step], stereo, keep_radicals, skip_repaired)
                               for i in range(0, len(selfies), step))
            bar.update(len(selfies))
        smiles: list[str | None] = []
        repaired: list[bool] = []
        for item in pending:
            done = item if isinstance(item, tuple) else item.result()
            smiles.extend(done[0])
            repaired.extend(done[1])
    finally:
        if own_bar:
            bar.close()
        if own_pool:
            pool.shutdown(cancel_futures=True)
    return Decoded(smiles, selfies_all, repaired)


def sample_accepted(
    decode: Callable[..., Decoded],
    stream: PriorStream,
    n: int,
    cond: np.ndarray | None = None,
    *,
    keep_repaired: bool = False,
    stereo: bool = True,
    keep_radicals: bool = False,
    max_rounds: int = 30,
    max_per_row: int = 20,
) -> tuple[Decoded, int, int]:
    """``n`` molecules from the prior, each drawn again until its token string needs no SELFIES repair.

    ``decode(batches, total=k)`` decodes an iterator of latent batches (``decode_latents`` with the
    model's settings and one sampling generator). Row ``i`` is at condition ``cond[i]`` (standardized,
    appended to the latent point; None for an unconditional model). Round 1 decodes the stream's first
    ``n`` points: with ``keep_repaired`` that is the whole answer (the raw stream). Later rounds
    redraw only the rejected rows, several candidates per row once acceptance is seen to be low (at
    most ``max_per_row``), and rejected strings skip RDKit; unconditional rows take accepted
    candidates in order, conditional ones the first accepted candidate drawn at their own
    condition. Rows still rejected after ``max_rounds``
    keep a repaired molecule (``repaired`` True; post-processed with ``stereo`` and ``keep_radicals``)
    with a :class:`RepairWarning`.

    Returns the decoded rows, how many strings were decoded in all and how many of those were
    accepted (their ratio is the acceptance rate).
    """
    first = _decode_rows(decode, stream, np.arange(n), cond, skip_repaired=not keep_repaired)
    if keep_repaired:
        return first, n, n - sum(first.repaired)
    smiles, selfies, repaired = (list(x) for x in first)
    holes = np.flatnonzero(repaired)
    drawn, accepted = n, n - len(holes)
    for _ in range(max_rounds):
        if len(holes) == 0:
            break
        per_row = min(max_per_row, max(1, math.ceil(1.2 / max(accepted / drawn, 1e-3))))
        slots = np.tile(holes, per_row)  # candidate j is for row holes[j % len(holes)]
        got = _decode_rows(decode, stream, slots, cond, skip_repaired=True)
        drawn += len(slots)
        ok = [j for j, r in enumerate(got.repaired) if not r]
        accepted += len(ok)
        if cond is None:  # any accepted candidate fills the next open row
            pairs = list(zip(holes, ok))
        else:
            first_ok: dict[int, int] = {}
            for j in ok:
                first_ok.setdefault(int(slots[j]), j)
            pairs = list(first_ok.items())
        for row, j in pairs:
            smiles[row], selfies[row], repaired[row] = got.smiles[j], got.selfies[j], False
        filled = {int(row) for row, _ in pairs}
        holes = np.array([h for h in holes if int(h) not in filled], dtype=np.int64)
    if len(holes):  # these rows keep their last repaired string, now post-processed in full
        kept, _ = postprocess([selfies[i] for i in holes], stereo, keep_radicals)
        for row, smi in zip(holes, kept):
            smiles[row] = smi
        warnings.warn(f"{len(holes)} of {n} samples are still SELFIES-repaired after {drawn} draws "
                      f"(acceptance {accepted / drawn:.3f}); they are kept and marked repaired",
                      RepairWarning, stacklevel=3)
    return Decoded(smiles, selfies, repaired), drawn, accepted


def _decode_rows(decode: Callable[..., Decoded], stream: PriorStream, rows: np.ndarray,
                 cond: np.ndarray | None, skip_repaired: bool) -> Decoded:
    """Draw the next ``len(rows)`` prior points (at ``cond[rows]``) and decode them."""
    at = cond[rows] if cond is not None else None
    latents = stream.batches(len(rows), at)
    if at is not None:
        ct = torch.as_tensor(at, dtype=torch.float32)
        latents = _with_conditions(latents, ct)
    return decode(latents, total=len(rows), skip_repaired=skip_repaired)


def _with_conditions(batches: Iterator[torch.Tensor], cond: torch.Tensor) -> Iterator[torch.Tensor]:
    """Each latent batch with its rows' conditions appended: the decoder's input ``[z, c]``."""
    start = 0
    for z in batches:
        yield torch.cat([z, cond[start:start + len(z)]], dim=1)
        start += len(z)


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
