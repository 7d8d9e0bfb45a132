"""Fine-tuning the decoder on the oracle's answers: REINVENT with Augmented Memory, in a VAE.

A trainable copy of the VAE's decoder, the *agent*, samples molecules at latent points (drawn from
the prior, from the latent means of the best molecules so far, or both); every molecule goes to the
budgeted oracle, and the agent is pulled toward the frozen model reweighted by the score with
REINVENT's augmented-likelihood loss (Olivecrona et al. 2017)::

    loss = (log p_prior(x|z) + sigma * reward(x) - log p_agent(x|z))^2

Augmented Memory (Guo & Schwaller 2023) adds a replay buffer of the best molecules, replayed with
every batch, and ``augment_rounds`` further updates per oracle batch on randomized SELFIES of the
same molecules (other token strings of one molecule, from randomized SMILES; strings with a token
outside the vocabulary are skipped): more learning per oracle call, at no oracle cost. A
diversity filter (REINVENT's identical-Murcko-scaffold filter) multiplies the reward of molecules
seen before, and of molecules whose Bemis-Murcko scaffold already had ``diversity_bucket`` good
molecules, by ``diversity_penalty``; the buffer drops the filled scaffolds (Augmented Memory's
selective memory purge). The oracle's log keeps the true scores. With ``ga_children``, SELFIES GA
offspring of the buffer (:func:`~molvae.optimize.genetic.breed`) are scored, added to the buffer and
trained on, as in Genetic GFN (Kim et al. 2024).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from molvae.errors import ConfigError
from molvae.optimize.base import Search
from molvae.optimize.genetic import breed, model_alphabet
from molvae.optimize.oracle import Answer
from molvae.optimize.population import rank_weights

__all__ = ["run_reinvent", "Agent", "DiversityFilter", "ReplayBuffer", "Memory", "Episode", "token_ids",
           "randomized_rows"]

Z_SOURCES = ("prior", "best", "mixed")


# --------------------------------------------------------------------------- the diversity filter


class DiversityFilter:
    """REINVENT's identical-Murcko-scaffold filter: the reward a molecule earns, given what came before.

    A molecule seen before earns ``score * penalty``; a new one with ``score >= min_score`` joins its
    scaffold's bucket and earns ``score * penalty`` once the bucket holds more than ``bucket``
    molecules. ``bucket = 0`` turns the filter off (the reward is the score).
    """

    def __init__(self, bucket: int = 25, min_score: float = 0.4, penalty: float = 0.0) -> None:
        self.bucket, self.min_score, self.penalty = int(bucket), float(min_score), float(penalty)
        self.seen: set[str] = set()
        self.counts: dict[str, int] = {}

    @property
    def active(self) -> bool:
        return self.bucket > 0

    def reward(self, smiles: str, score: float) -> float:
        """The reward of one scored molecule (recording it)."""
        if not self.active:
            return float(score)
        if smiles in self.seen:
            return float(score) * self.penalty
        self.seen.add(smiles)
        if score < self.min_score:
            return float(score)
        scaffold = scaffold_of(smiles)
        self.counts[scaffold] = self.counts.get(scaffold, 0) + 1
        return float(score) * (self.penalty if self.counts[scaffold] > self.bucket else 1.0)

    def full(self, scaffold: str) -> bool:
        """True once the scaffold's bucket is over its size."""
        return self.active and self.counts.get(scaffold, 0) > self.bucket


def scaffold_of(smiles: str) -> str:
    """The Bemis-Murcko scaffold's SMILES ('' for an acyclic molecule or one RDKit cannot read)."""
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return ""
    try:
        return MurckoScaffold.MurckoScaffoldSmiles(mol=mol)
    except Exception:  # RDKit refuses a few exotic molecules: one bucket for them all
        return ""


# --------------------------------------------------------------------------- the replay buffer


@dataclass
class Memory:
    """One molecule to learn from: its token ids, the latent point they belong to and its reward."""

    smiles: str | None
    row: list[int]
    z: np.ndarray
    reward: float


@dataclass
class Episode:
    """Molecules trained on together (a batch, GA offspring, replayed memories)."""

    items: list[Memory]

    def __add__(self, other: "Episode") -> "Episode":
        return Episode(self.items + other.items)


class ReplayBuffer:
    """The ``size`` molecules with the highest rewards so far (one entry per molecule)."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self.entries: dict[str, Memory] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, items: Sequence[Memory]) -> None:
        for m in items:
            if m.smiles is not None and (m.smiles not in self.entries or m.reward > self.entries[m.smiles].reward):
                self.entries[m.smiles] = m
        if len(self.entries) > self.size:
            keep = sorted(self.entries.values(), key=lambda m: -m.reward)[: self.size]
            self.entries = {m.smiles: m for m in keep}

    def best(self) -> list[Memory]:
        """Every entry, best first."""
        return sorted(self.entries.values(), key=lambda m: -m.reward)

    def sample(self, k: int, rng: np.random.Generator) -> Episode:
        """``k`` entries without replacement, favouring the best (all of them when ``k >= len``)."""
        ranked = self.best()
        if k >= len(ranked):
            return Episode(ranked)
        pick = rng.choice(len(ranked), size=k, replace=False, p=rank_weights(len(ranked)))
        return Episode([ranked[i] for i in sorted(pick)])

    def purge(self, diversity: DiversityFilter) -> None:
        """Drop molecules whose scaffold the filter has closed (selective memory purge)."""
        if diversity.active:
            self.entries = {s: m for s, m in self.entries.items() if not diversity.full(scaffold_of(s))}


# --------------------------------------------------------------------------- tokens and augmentation


def token_ids(model: Any, smiles: str) -> list[int] | None:
    """The model's token ids for a molecule, tokenized as it was trained (None if it cannot be)."""
    from molvae.chem import parse_smiles, to_canonical
    from molvae.vocab import smiles_to_selfies

    mol, _ = parse_smiles(smiles)
    if mol is None:
        return None
    selfies = smiles_to_selfies(to_canonical(mol, stereo=model.config.stereo,
                                             largest_fragment=model.config.largest_fragment))
    return _encode(model, selfies)


def _encode(model: Any, selfies: str | None) -> list[int] | None:
    from molvae.errors import TooLongError, UnknownTokenError

    if not selfies:
        return None
    try:
        return model.vocab.encode(selfies, max_len=model.config.max_len)
    except (UnknownTokenError, TooLongError):
        return None


def randomized_rows(model: Any, items: Sequence[Memory], rng: np.random.Generator, tries: int = 4) -> list[list[int]]:
    """For each memory, the token ids of another SELFIES string of its molecule (from randomized
    SMILES), or its own ids where none of ``tries`` variants differs and fits the vocabulary."""
    from rdkit import Chem

    from molvae.vocab import smiles_to_selfies

    out = []
    for m in items:
        mol = Chem.MolFromSmiles(m.smiles) if m.smiles else None
        row = None
        if mol is not None:
            seed = int(rng.integers(2**31 - 1))
            for smi in Chem.MolToRandomSmilesVect(mol, tries, randomSeed=seed, isomericSmiles=model.config.stereo):
                ids = _encode(model, smiles_to_selfies(smi))
                if ids is not None and ids != m.row:
                    row = ids
                    break
        out.append(row if row is not None else m.row)
    return out


# --------------------------------------------------------------------------- the agent


class Agent:
    """A trainable copy of the model's decoder, sampled and updated against the frozen model."""

    def __init__(self, model: Any, lr: float, seed: int) -> None:
        import torch

        if getattr(model, "net", None) is None or getattr(model, "vocab", None) is None:
            raise ConfigError("method reinvent fine-tunes the decoder of a MolVAE (a model with net and vocab)")
        self.model, self.prior = model, model.net
        self.device = next(model.net.parameters()).device
        self.net = copy.deepcopy(model.net).float().eval()  # eval: no dropout, likelihoods match sampling
        for p in self.net.parameters():
            p.requires_grad_(False)
        trainable = [self.net.embed, self.net.latent_to_hidden, self.net.decoder, self.net.output]
        params = [p for module in trainable for p in module.parameters()]
        for p in params:
            p.requires_grad_(True)
        self.optimizer = torch.optim.Adam(params, lr=lr)
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))
        self.first_allowed = torch.tensor(model.vocab.starts_molecule(), dtype=torch.bool, device=self.device)
        self.max_len = int(model.config.max_len)
        from molvae.device import use_bf16

        self.bf16 = use_bf16("auto", self.device)  # updates under bf16 autocast: 2.4x faster on this CPU

    def sample(self, z: np.ndarray) -> tuple[list[list[int]], list[str | None]]:
        """Token ids and canonical SMILES (None: invalid) sampled at latent points ``(n, Z)``, T = 1."""
        import torch

        from molvae.generate import postprocess

        zt = torch.as_tensor(np.asarray(z, dtype=np.float32), device=self.device)
        ids = self.net.generate(zt, max_len=self.max_len, temperature=1.0, generator=self.generator,
                                first_allowed=self.first_allowed)
        eos = self.net.eos_id
        rows = [row[:row.index(eos)] if eos in row else row for row in ids.cpu().tolist()]
        selfies = [self.model.vocab.decode(row) for row in rows]
        return rows, postprocess(selfies, stereo=self.model.config.stereo,
                                 keep_radicals=self.model.config.keep_radicals)[0]

    def log_likelihood(self, net: Any, z: np.ndarray, rows: Sequence[Sequence[int]]) -> Any:
        """``log p(x|z)`` ``(n,)`` of token rows under ``net``, with the sampler's masks (no ``<pad>``
        or ``<bos>``, an atom first, ``<eos>`` forced at ``max_len``)."""
        import torch

        from molvae.vocab import pad_rows, teacher_forcing

        tokens, lengths = pad_rows([list(r) for r in rows], net.pad_id, min_length=1)
        tokens, lengths = tokens.to(self.device), lengths.to(self.device)
        inputs, targets = teacher_forcing(tokens, lengths, net.bos_id, net.eos_id, net.pad_id)
        zt = net.with_conditions(torch.as_tensor(np.asarray(z, dtype=np.float32), device=self.device))
        logits = net.decode_teacher_forced(zt, inputs).float()
        never = torch.zeros(logits.shape[-1], dtype=torch.bool, device=self.device)
        never[[net.pad_id, net.bos_id]] = True
        logits = logits.masked_fill(never, float("-inf"))
        logits[:, 0] = logits[:, 0].masked_fill(~self.first_allowed, float("-inf"))
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        steps = torch.arange(targets.shape[1], device=self.device)
        keep = (targets != net.pad_id) & (steps < self.max_len)
        return torch.where(keep, logp, torch.zeros_like(logp)).sum(dim=1)

    def update(self, z: np.ndarray, rows: Sequence[Sequence[int]], rewards: np.ndarray, sigma: float) -> float:
        """One Adam step on the augmented-likelihood loss; returns the loss."""
        import torch

        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            with torch.no_grad():
                prior = self.log_likelihood(self.prior, z, rows).float()
            agent = self.log_likelihood(self.net, z, rows).float()
        target = prior + float(sigma) * torch.as_tensor(np.asarray(rewards, dtype=np.float32), device=self.device)
        loss = (target - agent).pow(2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


# --------------------------------------------------------------------------- the strategy


@dataclass
class _Settings:
    batch_size: int
    sigma: float
    replay: int
    augment_rounds: int
    z_source: str
    best_fraction: float
    z_jitter: float
    ga_children: int
    ga_crossover: float


def _check(s: _Settings, buffer_size: int, lr: float) -> None:
    if s.z_source not in Z_SOURCES:
        raise ConfigError(f"z_source must be one of {', '.join(Z_SOURCES)}, got {s.z_source!r}")
    for name, value in (("batch_size", s.batch_size), ("buffer_size", buffer_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    for name, value in (("replay", s.replay), ("augment_rounds", s.augment_rounds), ("ga_children", s.ga_children)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
    if not (lr > 0 and s.sigma >= 0 and s.z_jitter >= 0):
        raise ConfigError(f"lr must be > 0 and sigma, z_jitter >= 0 (got {lr}, {s.sigma}, {s.z_jitter})")
    for name, value in (("best_fraction", s.best_fraction), ("ga_crossover", s.ga_crossover)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{name} must be in [0, 1], got {value!r}")


class _Reinvent:
    """One worker's REINVENT loop: agent, buffer and filter, and the steps of a round."""

    def __init__(self, search: Search, settings: _Settings, agent: Agent, buffer: ReplayBuffer,
                 diversity: DiversityFilter) -> None:
        self.search, self.s, self.agent, self.buffer, self.diversity = search, settings, agent, buffer, diversity
        self.model, self.space, self.rng = agent.model, search.space, search.rng
        self.alphabet = model_alphabet(self.model)

    def start_from_study(self) -> None:
        """Fill the buffer with the study's best molecules (seeds, an earlier run, other workers)."""
        top = self.search.oracle.top(self.buffer.size)
        if top:
            rewards = [self.diversity.reward(s, float(v)) for s, v in top]
            self.buffer.add(self._memories([s for s, _ in top], rewards, None))

    def latents(self) -> np.ndarray:
        """The batch's latent points: prior draws and/or the best molecules' latent means, jittered."""
        n = self.s.batch_size
        share = {"prior": 0.0, "best": 1.0, "mixed": self.s.best_fraction}[self.s.z_source]
        n_best = int(self.rng.binomial(n, share)) if len(self.buffer) and share > 0 else 0
        z = self.space.prior(n)
        if n_best:
            ranked = self.buffer.best()
            means = self.space.encode([m.smiles for m in ranked])
            ok = ~np.isnan(means).any(axis=1)
            if ok.any():
                means, w = means[ok], rank_weights(int(ok.sum()))
                pick = self.rng.choice(len(means), size=n_best, p=w)
                z[:n_best] = means[pick] + self.s.z_jitter * self.rng.standard_normal((n_best, self.space.dim))
        return self.space.project(z)

    def rewards(self, answers: Sequence[Answer]) -> list[float | None]:
        """Each answer's reward: the filtered score, a penalty when unscored, None when over budget."""
        low = min(0.0, self.search.penalty()[0])
        out: list[float | None] = []
        for a in answers:
            if a.status == "over_budget":
                out.append(None)
            else:
                out.append(self.diversity.reward(a.smiles, a.score) if a.ok else low)
        return out

    def _memories(self, smiles: Sequence[str | None], rewards: Sequence[float | None],
                  z: np.ndarray | None, rows: Sequence[list[int] | None] | None = None) -> list[Memory]:
        """Memories of molecules with a reward; without ``z``/``rows``, from the molecules' encodings and
        tokenizations (``smiles`` None: an unscored molecule, learnt from with its ``rows``)."""
        if z is None:
            z = self.space.encode([s or "" for s in smiles])
        out = []
        for i, (smi, r) in enumerate(zip(smiles, rewards)):
            row = rows[i] if rows is not None else (token_ids(self.model, smi) if smi else None)
            if r is not None and row and not np.isnan(z[i]).any():
                out.append(Memory(smi, list(row), np.asarray(z[i], dtype=np.float64), float(r)))
        return out

    def sample_batch(self) -> Episode:
        """Sample the agent, score every molecule, and return what to learn from."""
        z = self.latents()
        rows, smiles = self.agent.sample(z)
        answers = self.search.score_smiles(smiles)
        self.search.count_as_points(answers)
        scored = [a.smiles if a.ok else None for a in answers]  # None: learnt from, not remembered
        return Episode(self._memories(scored, self.rewards(answers), z, rows))

    def offspring(self) -> Episode:
        """GA children of the buffer, scored: the new ones are remembered and learnt from (Genetic GFN)."""
        ranked = self.buffer.best()
        if not ranked or self.s.ga_children == 0:
            return Episode([])
        vocab = self.model.vocab
        tokens = [[vocab.itos[i] for i in m.row] for m in ranked]
        kids, _, _ = breed(self.space, [m.smiles for m in ranked], tokens, self.s.ga_children, self.rng,
                           crossover_rate=self.s.ga_crossover, alphabet=self.alphabet)
        answers = self.search.score_smiles(kids)
        self.search.count_as_points(answers)
        # only new molecules: a child that repeats a known one (often its parent) teaches nothing
        scored = [(a.smiles, r) for a, r in zip(answers, self.rewards(answers)) if a.ok and a.status == "new"]
        return Episode(self._memories([s for s, _ in scored], [r for _, r in scored], None))

    def learn(self, episode: Episode) -> None:
        """One update on the episode, then ``augment_rounds`` on randomized SELFIES of it."""
        if not episode.items:
            return
        z = np.stack([m.z for m in episode.items])
        rewards = np.array([m.reward for m in episode.items])
        self.agent.update(z, [m.row for m in episode.items], rewards, self.s.sigma)
        for _ in range(self.s.augment_rounds):
            self.agent.update(z, randomized_rows(self.model, episode.items, self.rng), rewards, self.s.sigma)

    def round(self) -> None:
        """Sample, score, breed, remember and learn once."""
        replayed = self.buffer.sample(self.s.replay, self.rng) if self.s.replay else Episode([])
        batch = self.sample_batch()
        self.buffer.add(batch.items)
        kids = self.offspring() if not self.search.should_stop() else Episode([])
        self.buffer.add(kids.items)
        self.buffer.purge(self.diversity)
        if not self.search.should_stop():
            self.learn(batch + kids + replayed)


def run_reinvent(search: Search, *, batch_size: int = 64, sigma: float = 500.0, lr: float = 5e-4,
                 buffer_size: int = 100, replay: int = 100, augment_rounds: int = 2, z_source: str = "prior",
                 best_fraction: float = 0.5, z_jitter: float = 0.1, diversity_bucket: int = 25,
                 diversity_min_score: float = 0.4, diversity_penalty: float = 0.0, ga_children: int = 0,
                 ga_crossover: float = 0.5) -> None:
    """Fine-tune a copy of the decoder on the oracle's answers until the search says stop.

    ``batch_size``: molecules sampled per round; ``sigma``: weight of the reward in the augmented
    likelihood (scores are expected on PMO's 0..1 scale; scale ``sigma`` with them); ``lr``: Adam's
    step; ``buffer_size``: replay buffer of the best molecules; ``replay``: buffer molecules replayed
    per update; ``augment_rounds``: extra updates per round on randomized SELFIES; ``z_source``:
    ``prior``, ``best`` (latent means of the buffer's molecules plus ``z_jitter`` noise) or ``mixed``
    (a share ``best_fraction`` of them); ``diversity_bucket`` / ``diversity_min_score`` /
    ``diversity_penalty``: the scaffold filter (bucket 0: off); ``ga_children``: SELFIES GA
    offspring of the buffer per round (``ga_crossover``: their share with two parents).
    """
    settings = _Settings(batch_size, float(sigma), replay, augment_rounds, z_source, float(best_fraction),
                         float(z_jitter), ga_children, float(ga_crossover))
    _check(settings, buffer_size, float(lr))
    agent = Agent(search.space.model, float(lr), int(search.rng.integers(2**31 - 1)))
    run = _Reinvent(search, settings, agent, ReplayBuffer(buffer_size),
                    DiversityFilter(diversity_bucket, diversity_min_score, diversity_penalty))
    run.start_from_study()
    while not search.should_stop():
        run.round()
