"""A population search in latent space: a genetic algorithm whose individuals are molecules.

The population is the best molecules scored so far in the study (by this worker, earlier runs or
other workers: the oracle's log is shared, so workers form an island model for free). Each
generation picks parents by rank, encodes them, makes children by latent crossover (uniform mask
or interpolation) and Gaussian mutation, decodes each child (greedily; ``n_decode > 1`` adds
sampled decodings, only new molecules are paid for) and scores them. On the PMO tasks one greedy
decoding per child did better than four (scripts/bench_optimize.py, BENCHMARKS.md).

Mutation sizes are chosen by a small bandit over a ladder of step sizes, rewarded when a child
enters the population, so the search moves from exploration to refinement on its own. Encoding the
parents (rather than keeping the points that produced them) keeps every individual on the part of
latent space the encoder maps molecules to, where the decoder is reliable.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from molvae.optimize.base import Search

__all__ = ["run_population", "latent_crossover", "rank_weights", "SIGMAS"]

SIGMAS = np.array([0.1, 0.2, 0.35, 0.5, 0.75, 1.0])  # mutation step sizes, in prior standard deviations


def _parent_points(space: Any, smiles: list[str], origin: dict[str, np.ndarray] | None) -> np.ndarray:
    """Latent points of the parents ``(n, Z)`` (NaN rows: not encodable): their encodings, or with
    ``origin`` the point that produced each molecule here, encoding only the others."""
    if origin is None:
        return space.encode(smiles)
    z_pool = np.full((len(smiles), space.dim), np.nan)
    todo = [i for i, s in enumerate(smiles) if s not in origin]
    for i, s in enumerate(smiles):
        if s in origin:
            z_pool[i] = origin[s]
    if todo:
        z_pool[todo] = space.encode([smiles[i] for i in todo])
    return z_pool


def rank_weights(n: int) -> np.ndarray:
    """Selection probabilities of ``n`` individuals sorted best first: ``1 / (k n + rank)``, k = 0.05
    as in weighted retraining (the best are favoured, every one can breed)."""
    weights = 1.0 / (0.05 * n + np.arange(n))
    return weights / weights.sum()


def latent_crossover(z_pool: np.ndarray, weights: np.ndarray, n: int, rng: np.random.Generator,
                     crossover: float) -> np.ndarray:
    """``n`` children ``(n, Z)`` of parents ``z_pool`` picked with ``weights``: a share ``crossover`` mixes
    two parents (half by a uniform mask over coordinates, half at a random point on the line between
    them), the rest copy one parent. Mutation is the caller's (it chooses the step sizes)."""
    a = rng.choice(len(z_pool), size=n, p=weights)
    b = rng.choice(len(z_pool), size=n, p=weights)
    z = z_pool[a].copy()
    cross = rng.random(n) < crossover
    uniform = rng.random(n) < 0.5
    mask = rng.random((n, z_pool.shape[1])) < 0.5
    t = rng.random((n, 1))
    mixed_uniform = np.where(mask, z_pool[a], z_pool[b])
    mixed_line = z_pool[a] + t * (z_pool[b] - z_pool[a])
    z[cross & uniform] = mixed_uniform[cross & uniform]
    z[cross & ~uniform] = mixed_line[cross & ~uniform]
    return z


def run_population(search: Search, *, population: int = 100, children: int = 50, n_init: int = 100,
                   crossover: float = 0.5, immigrants: float = 0.05, parents: str = "encode") -> None:
    """Evolve until the search says stop (see the module docstring).

    ``population``: how many of the best molecules breed; ``children``: latent points per
    generation; ``n_init``: prior points decoded first when the study has no scored molecule yet
    (with seeds, or when resuming, the search starts from the molecules it has); ``crossover``:
    share of children with two parents; ``immigrants``: share of children drawn fresh from the
    prior (diversity); ``parents``: ``encode`` puts each parent at its molecule's encoding,
    ``origin`` at the latent point that produced it when this worker decoded it (the encoding
    otherwise).
    """
    if parents not in ("encode", "origin"):
        from molvae.errors import ConfigError

        raise ConfigError(f"parents must be 'encode' or 'origin', got {parents!r}")
    space, rng = search.space, search.rng
    origin: dict[str, np.ndarray] = {}  # molecule -> the latent point that first produced it here

    def evaluate(z: np.ndarray) -> list:
        points = search.evaluate(z)
        for point in points:
            for ans in point.answers:
                if ans.status == "new":
                    origin.setdefault(ans.smiles, point.z)
        return points

    if not search.oracle.top(1) and not search.should_stop():  # no seeds, no earlier run: start from the prior
        evaluate(space.prior(n_init))
    succ = np.ones(len(SIGMAS))  # bandit over step sizes: Beta(successes + 1, failures + 1),
    fail = np.ones(len(SIGMAS))  # discounted so that it follows the search as it narrows
    while not search.should_stop():
        pool = search.oracle.top(population)  # (smiles, score), best first, shared across workers
        if not pool:
            evaluate(space.prior(children))
            continue
        z_pool = _parent_points(space, [s for s, _ in pool], origin if parents == "origin" else None)
        ok = ~np.isnan(z_pool).any(axis=1)
        if not ok.any():
            evaluate(space.prior(children))
            continue
        z_pool = z_pool[ok]
        z = latent_crossover(z_pool, rank_weights(len(z_pool)), children, rng, crossover)
        arm = rng.beta(succ, fail, size=(children, len(SIGMAS))).argmax(axis=1)  # Thompson sampling
        z = z + SIGMAS[arm, None] * rng.standard_normal(z.shape)
        fresh = rng.random(children) < immigrants
        if fresh.any():
            z[fresh] = space.prior(int(fresh.sum()))
        threshold = pool[-1][1] if len(pool) >= population else -np.inf
        points = evaluate(z)
        succ, fail = 1 + 0.95 * (succ - 1), 1 + 0.95 * (fail - 1)
        for k, point in enumerate(points):
            if fresh[k]:
                continue
            improved = any(ans.status == "new" and ans.score is not None and ans.score > threshold
                           for ans in point.answers)
            succ[arm[k]] += improved
            fail[arm[k]] += not improved
