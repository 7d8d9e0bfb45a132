"""Genetic moves on SELFIES token strings and on latent codes, and the ``selfies_ga`` strategy.

Every SELFIES string decodes to a valid molecule, so a GA can edit token strings blindly (as
STONED and the SELFIES GA of Nigam et al. do): a mutation replaces, inserts or deletes one token
drawn from the model's vocabulary, a crossover splices the head of one parent onto the tail of
another. Latent moves breed the parents' codes instead (the crossover of
:mod:`~molvae.optimize.population`, then a Gaussian step), so children stay on the part of latent
space the decoder knows. :func:`breed` makes both kinds from a ranked pool; ``selfies_ga`` runs it
on the study's best molecules, and ``reinvent`` (:mod:`~molvae.optimize.reinvent`) uses it to feed
its replay buffer, as Genetic GFN does (Kim et al. 2024).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from molvae.errors import ConfigError
from molvae.optimize.base import Search
from molvae.optimize.population import SIGMAS, latent_crossover, rank_weights

__all__ = ["mutate", "crossover", "token_children", "breed", "model_alphabet", "selfies_tokens",
           "run_selfies_ga"]

_MUTATE_AFTER_CROSSOVER = 0.5  # a spliced child is also mutated this often (every other child is)


# --------------------------------------------------------------------------- token moves


def mutate(tokens: Sequence[str], alphabet: Sequence[str], rng: np.random.Generator) -> list[str]:
    """One point mutation: replace, insert or delete a token (a one-token string is never emptied)."""
    out = list(tokens)
    move = int(rng.integers(3)) if len(out) > 1 else int(rng.integers(2))
    if move == 0 and out:  # replace
        out[int(rng.integers(len(out)))] = alphabet[int(rng.integers(len(alphabet)))]
    elif move in (0, 1):  # insert (also "replace" in an empty string)
        out.insert(int(rng.integers(len(out) + 1)), alphabet[int(rng.integers(len(alphabet)))])
    else:  # delete
        del out[int(rng.integers(len(out)))]
    return out


def crossover(a: Sequence[str], b: Sequence[str], rng: np.random.Generator) -> list[str]:
    """Cut-and-splice: a non-empty head of ``a`` followed by a tail of ``b``."""
    cut_a = int(rng.integers(1, len(a) + 1)) if len(a) else 0
    cut_b = int(rng.integers(len(b) + 1))
    return list(a[:cut_a]) + list(b[cut_b:])


def token_children(parents: Sequence[Sequence[str]], weights: np.ndarray, n: int, alphabet: Sequence[str],
                   rng: np.random.Generator, *, crossover_rate: float, max_len: int) -> list[list[str]]:
    """``n`` children of token-string parents picked with ``weights``: a share ``crossover_rate`` is
    spliced from two parents, every other child is mutated once; children are cut to ``max_len``."""
    out = []
    for _ in range(n):
        first = parents[int(rng.choice(len(parents), p=weights))]
        if rng.random() < crossover_rate:
            child = crossover(first, parents[int(rng.choice(len(parents), p=weights))], rng)
            if rng.random() < _MUTATE_AFTER_CROSSOVER:
                child = mutate(child, alphabet, rng)
        else:
            child = mutate(first, alphabet, rng)
        out.append(child[:max_len])
    return out


# --------------------------------------------------------------------------- helpers


def model_alphabet(model: Any) -> list[str]:
    """The tokens mutations draw from: the model's vocabulary without its special tokens (SELFIES'
    semantically robust alphabet for a model without one)."""
    vocab = getattr(model, "vocab", None)
    if vocab is not None:
        from molvae.vocab import SPECIALS

        return [t for t in vocab.itos if t not in SPECIALS]
    import selfies as sf

    return sorted(sf.get_semantic_robust_alphabet())


@lru_cache(maxsize=100_000)
def _selfies_tuple(smiles: str) -> tuple[str, ...] | None:
    from molvae.vocab import smiles_to_selfies, split_selfies

    selfies = smiles_to_selfies(smiles)
    return tuple(split_selfies(selfies)) if selfies else None


def selfies_tokens(smiles: str) -> list[str] | None:
    """The SELFIES tokens of a SMILES (None where SELFIES cannot encode it); cached."""
    tokens = _selfies_tuple(smiles)
    return list(tokens) if tokens is not None else None


def _decode_tokens(children: Sequence[Sequence[str]], stereo: bool) -> list[str | None]:
    from molvae.generate import postprocess

    return postprocess(["".join(c) for c in children], stereo=stereo)


# --------------------------------------------------------------------------- breeding


def breed(space: Any, parents: Sequence[str], tokens: Sequence[Sequence[str]], n: int,
          rng: np.random.Generator, *, crossover_rate: float = 0.5, latent_share: float = 0.0,
          alphabet: Sequence[str] | None = None) -> tuple[list[str | None], np.ndarray]:
    """``n`` children of a pool ranked best first: ``parents`` (SMILES) with their SELFIES ``tokens``.

    A share ``latent_share`` comes from latent moves on the parents' encodings (decoded greedily),
    the rest from token moves. Returns the children's canonical SMILES (None: an empty decoding)
    and their latent points ``(n, Z)`` (NaN rows for token-made children).
    """
    if not parents:
        return [], np.zeros((0, space.dim))
    weights = rank_weights(len(parents))
    n_latent = int(rng.binomial(n, latent_share)) if latent_share > 0 else 0
    z_kids = np.full((n, space.dim), np.nan)
    smiles: list[str | None] = []
    if n_latent:
        z_pool = space.encode(list(parents))
        ok = ~np.isnan(z_pool).any(axis=1)
        if ok.any():
            w = weights[ok] / weights[ok].sum()
            z = latent_crossover(z_pool[ok], w, n_latent, rng, crossover_rate)
            z = space.project(z + SIGMAS[rng.integers(len(SIGMAS), size=n_latent), None]
                              * rng.standard_normal(z.shape))
            smiles = [row[0] for row in space.decode(z, 1)]
            z_kids[:n_latent] = z
        else:
            n_latent = 0
    max_len = int(getattr(getattr(space.model, "config", None), "max_len", 100))
    stereo = bool(getattr(getattr(space.model, "config", None), "stereo", True))
    kids = token_children(tokens, weights, n - n_latent, alphabet or model_alphabet(space.model), rng,
                          crossover_rate=crossover_rate, max_len=max_len)
    return smiles + _decode_tokens(kids, stereo), z_kids


def _check(population: int, children: int, crossover_rate: float, latent_share: float, immigrants: float) -> None:
    if population < 1 or children < 1:
        raise ConfigError(f"population and children must be >= 1, got {population} and {children}")
    for name, value in (("crossover", crossover_rate), ("latent_share", latent_share), ("immigrants", immigrants)):
        if not 0.0 <= float(value) <= 1.0:
            raise ConfigError(f"{name} must be in [0, 1], got {value!r}")


def run_selfies_ga(search: Search, *, population: int = 100, children: int = 50, n_init: int = 100,
                   crossover: float = 0.5, latent_share: float = 0.25, immigrants: float = 0.05) -> None:
    """Evolve the study's best molecules by SELFIES and latent moves until the search says stop.

    ``population``: how many of the best molecules of the study (all workers) breed; ``children``:
    molecules proposed per generation; ``n_init``: prior points decoded first when the study has no
    scored molecule yet; ``crossover``: share of children with two parents; ``latent_share``: share
    made by latent moves (the rest by token moves); ``immigrants``: share decoded fresh from the prior.
    """
    _check(population, children, crossover, latent_share, immigrants)
    space, rng = search.space, search.rng
    alphabet = model_alphabet(space.model)
    if not search.oracle.top(1) and not search.should_stop():
        search.evaluate(space.prior(n_init))
    while not search.should_stop():
        pool = [(s, selfies_tokens(s)) for s, _ in search.oracle.top(population)]
        pool = [(s, t) for s, t in pool if t]
        n_fresh = int(rng.binomial(children, immigrants)) if pool else children
        if n_fresh:
            search.evaluate(space.prior(n_fresh))
        if children - n_fresh and not search.should_stop():
            kids, _ = breed(space, [s for s, _ in pool], [t for _, t in pool], children - n_fresh, rng,
                            crossover_rate=crossover, latent_share=latent_share, alphabet=alphabet)
            answers = search.score_smiles(kids)
            search.count_as_points(answers)
