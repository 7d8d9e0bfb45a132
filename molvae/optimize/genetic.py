"""Genetic moves on SELFIES token strings, on molecular graphs and on latent codes, and the
``selfies_ga`` strategy that breeds with all three.

Every SELFIES string decodes to a valid molecule, so a GA can edit token strings blindly (as
STONED and the SELFIES GA of Nigam et al. do): a mutation replaces, inserts or deletes one token
drawn from the model's vocabulary, a crossover splices the head of one parent onto the tail of
another. Graph moves are Graph GA's (Jensen 2019; the implementation of mol_ga, Tripp &
Hernandez-Lobato 2023): crossovers that join ring or chain fragments of two parents, mutations
that edit atoms, bonds and rings. Latent moves breed the parents' codes instead (the crossover of
:mod:`~molvae.optimize.population`, then a Gaussian step), so children stay on the part of latent
space the decoder knows. :func:`breed` makes all kinds from a ranked pool; ``selfies_ga`` runs it
on the study's best molecules (``screened_ga``, the default, breeds four times more and lets a
Tanimoto GP choose which children are scored, :mod:`~molvae.optimize.surrogate`), and ``reinvent``
(:mod:`~molvae.optimize.reinvent`) uses it to feed its replay buffer, as Genetic GFN does (Kim et
al. 2024).
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from molvae.errors import ConfigError
from molvae.optimize.base import Search
from molvae.optimize.population import SIGMAS, latent_crossover, rank_weights
from molvae.optimize.surrogate import Screen

__all__ = ["mutate", "crossover", "token_children", "breed", "model_alphabet", "selfies_tokens",
           "run_selfies_ga", "run_graph_ga", "run_screened_ga", "OperatorShare", "graph_children",
           "check_ga_options", "breeding_pool"]

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


# --------------------------------------------------------------------------- graph moves

_GRAPH_CROSSOVER = 0.9  # Graph GA's blend (mol_ga): most children are crossovers ...
_GRAPH_MUTATION = 0.01  # ... mutated at GuacaMol's Graph GA rate; the rest are mutations only
_GRAPH_SIZE = (39.15, 3.50)  # GuacaMol's Graph GA: a child has fewer heavy atoms than a draw from
_GRAPH_MIN_ATOMS = 5  # N(mean, sd) of ZINC's sizes, and more than 5 (mol_ga dropped this; without it
_GRAPH_TRIES = 10  # crossovers keep joining fragments and the molecules grow without bound)


def graph_children(parents: Sequence[str], weights: np.ndarray, n: int, rng: np.random.Generator) -> list[str | None]:
    """``n`` children of SMILES ``parents`` picked with ``weights`` by Graph GA's moves on the molecular
    graph (Jensen 2019, as packaged by mol_ga): a crossover joins fragments of two parents cut at a
    ring or a chain bond, a mutation edits an atom, a bond or a ring. A child outside Graph GA's size
    window is made again (up to 10 tries); None where no try gave one."""
    from mol_ga.graph_ga.gen_candidates import mutate as graph_mutate
    from mol_ga.graph_ga.gen_candidates import reproduce
    from rdkit import Chem

    from molvae.chem import quiet_rdkit

    moves = random.Random(int(rng.integers(2**63)))  # mol_ga draws from a random.Random
    out: list[str | None] = []
    with quiet_rdkit():
        for _ in range(n):
            child = None
            for _ in range(_GRAPH_TRIES):
                first = parents[int(rng.choice(len(parents), p=weights))]
                if rng.random() < _GRAPH_CROSSOVER:
                    second = parents[int(rng.choice(len(parents), p=weights))]
                    child = reproduce(first, second, _GRAPH_MUTATION, moves)
                else:
                    child = graph_mutate(first, moves)
                mol = Chem.MolFromSmiles(child) if child else None
                if mol is not None and _GRAPH_MIN_ATOMS < mol.GetNumAtoms() < rng.normal(*_GRAPH_SIZE):
                    break
                child = None
            out.append(child)
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


def _decode_tokens(children: Sequence[Sequence[str]], config: Any) -> list[str | None]:
    from molvae.generate import postprocess

    # a mutated string the SELFIES decoder repairs is still a child: mutation, not the model, wrote it
    return postprocess(["".join(c) for c in children], stereo=bool(getattr(config, "stereo", True)),
                       keep_radicals=bool(getattr(config, "keep_radicals", False)))[0]


# --------------------------------------------------------------------------- breeding


def breed(space: Any, parents: Sequence[str], tokens: Sequence[Sequence[str]], n: int,
          rng: np.random.Generator, *, crossover_rate: float = 0.5, latent_share: float = 0.0,
          graph_share: float = 0.0, alphabet: Sequence[str] | None = None
          ) -> tuple[list[str | None], np.ndarray, np.ndarray]:
    """``n`` children of a pool ranked best first: ``parents`` (SMILES) with their SELFIES ``tokens``.

    A share ``latent_share`` comes from latent moves on the parents' encodings (decoded greedily), a
    share ``graph_share`` from Graph GA's moves (:func:`graph_children`), the rest from token moves.
    Returns the children's canonical SMILES (None: an empty decoding or a failed move), their latent
    points ``(n, Z)`` (NaN rows for children not made in latent space) and the move that made each
    (``(n,)``: 0 latent, 1 token, 2 graph).
    """
    if not parents:
        return [], np.zeros((0, space.dim)), np.zeros(0, dtype=int)
    weights = rank_weights(len(parents))
    n_latent = int(rng.binomial(n, latent_share)) if latent_share > 0 else 0
    n_graph = int(rng.binomial(n - n_latent, min(1.0, graph_share / max(1e-12, 1.0 - latent_share)))) \
        if graph_share > 0 else 0
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
    smiles += graph_children(parents, weights, n_graph, rng) if n_graph else []
    config = getattr(space.model, "config", None)
    max_len = int(getattr(config, "max_len", 100))
    kids = token_children(tokens, weights, n - n_latent - n_graph, alphabet or model_alphabet(space.model), rng,
                          crossover_rate=crossover_rate, max_len=max_len)
    move = np.repeat([0, 2, 1], [n_latent, n_graph, n - n_latent - n_graph])
    return smiles + _decode_tokens(kids, config), z_kids, move


def breeding_pool(ranked: Sequence[tuple[str, float]]) -> tuple[list[str], list[list[str]]]:
    """The parents a GA can breed from ranked ``(smiles, score)`` pairs, with their SELFIES tokens (the
    molecules SELFIES cannot encode are left out)."""
    pool = [(s, t) for s, t in ((s, selfies_tokens(s)) for s, _ in ranked) if t]
    return [s for s, _ in pool], [t for _, t in pool]


def check_ga_options(population: int, children: int, screen: int = 1, **shares: float | str) -> None:
    """Sizes >= 1, ``screen`` a whole number in [1, 100] and every share in [0, 1] (``latent_share`` may
    also be ``"auto"``).

    :raises ConfigError: the first value out of range, named.
    """
    if population < 1 or children < 1:
        raise ConfigError(f"population and children must be >= 1, got {population} and {children}")
    if isinstance(screen, bool) or not isinstance(screen, int) or not 1 <= screen <= 100:
        raise ConfigError(f"screen must be a whole number from 1 to 100, got {screen!r}")
    for name, value in shares.items():
        if name == "latent_share" and value == "auto":
            continue
        try:
            ok = 0.0 <= float(value) <= 1.0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            hint = " or 'auto'" if name == "latent_share" else ""
            raise ConfigError(f"{name} must be a number in [0, 1]{hint}, got {value!r}")


class OperatorShare:
    """How many children each move makes (latent, token, graph), following which move pays: each
    move's rate of children that enter the population per oracle call, discounted every generation,
    sets its share by probability matching (each keeps at least ``low``, so a losing move is still
    tried)."""

    def __init__(self, low: float = 0.1, discount: float = 0.95, moves: int = 3) -> None:
        self.low, self.discount = low, discount
        self.wins = np.ones(moves)  # a Beta(1, 1)-like start: equal shares
        self.calls = np.full(moves, 2.0)

    @property
    def shares(self) -> np.ndarray:
        """The share of each move ``(moves,)``, summing to 1."""
        rate = self.wins / self.calls
        return self.low + (1.0 - len(rate) * self.low) * rate / rate.sum()

    def update(self, move: np.ndarray, answers: Sequence[Any], threshold: float) -> None:
        """Credit one generation: the move that made each child, its oracle answer, the population's entry score."""
        self.wins = 1 + self.discount * (self.wins - 1)
        self.calls = 2 + self.discount * (self.calls - 2)
        for arm, ans in zip(move, answers):
            if ans.status not in ("new", "failed"):  # repeats and empty decodings cost no call
                continue
            self.calls[arm] += 1
            self.wins[arm] += ans.status == "new" and ans.score is not None and ans.score > threshold


def run_selfies_ga(search: Search, *, population: int = 100, children: int = 50, n_init: int = 100,
                   crossover: float = 0.5, latent_share: float | str = 0.25, graph_share: float = 0.0,
                   immigrants: float = 0.05, screen: int = 1) -> None:
    """Evolve the study's best molecules by latent, SELFIES and graph moves until the search says stop.

    ``population``: how many of the best molecules of the study (all workers) breed; ``children``:
    molecules proposed per generation; ``n_init``: prior points decoded first when the study has no
    scored molecule yet; ``crossover``: share of children with two parents (latent and token moves);
    ``latent_share`` / ``graph_share``: shares made by latent moves and by Graph GA's moves (the rest
    by token moves), or ``latent_share="auto"`` to follow the move whose children enter the population
    most often per oracle call (:class:`OperatorShare`); ``immigrants``: share decoded fresh from the prior;
    ``screen``: breed this many children per child scored and let a Tanimoto GP fitted to the scores so
    far pick which are sent to the oracle (:class:`~molvae.optimize.surrogate.Screen`; 1: no screening).
    """
    check_ga_options(population, children, screen, crossover=crossover, latent_share=latent_share,
                     graph_share=graph_share, immigrants=immigrants)
    if latent_share != "auto" and float(latent_share) + float(graph_share) > 1.0:
        raise ConfigError(f"latent_share + graph_share must be at most 1, got {latent_share} + {graph_share}")
    space, rng = search.space, search.rng
    alphabet = model_alphabet(space.model)
    adapt = OperatorShare() if latent_share == "auto" else None
    screener = Screen(rng) if screen > 1 else None
    if not search.oracle.top(1) and not search.should_stop():
        _observe(screener, search.evaluate(space.prior(n_init)))
    while not search.should_stop():
        ranked = search.oracle.top(population)
        parents, tokens = breeding_pool(ranked)
        n_fresh = int(rng.binomial(children, immigrants)) if parents else children
        if n_fresh:
            _observe(screener, search.evaluate(space.prior(n_fresh)))
        n_kids = children - n_fresh
        if screener is not None:  # the study's best, whichever worker (or seed file) scored them
            screener.add([s for s, _ in ranked], [v for _, v in ranked])
        if n_kids and not search.should_stop():
            shares = adapt.shares if adapt else (float(latent_share), 0.0, float(graph_share))
            kids, _, move = breed(space, parents, tokens, n_kids * screen, rng,
                                  crossover_rate=crossover, alphabet=alphabet, latent_share=float(shares[0]),
                                  graph_share=float(shares[2]))
            if screener is not None:  # the GP picks among children the study has not seen and would accept
                blocked = search.oracle.known([k for k in kids if k]) | breaking_constraints(search.oracle, kids)
                keep = screener.pick(kids, n_kids, blocked)
                if keep:  # else every child is a repeat or a failure: scored free, they count as stale
                    kids, move = [kids[i] for i in keep], move[keep]
            answers = search.score_smiles(kids)
            search.count_as_points(answers)
            if screener is not None:
                screener.observe(answers)
            if adapt is not None:
                adapt.update(move, answers, ranked[-1][1] if len(ranked) >= population else -np.inf)


def breaking_constraints(oracle: Any, smiles: Sequence[str | None]) -> set[str]:
    """The candidates that break a constraint of the study (or do not parse): the oracle would record
    them unscored, so a screen that sends them spends its picks on nothing (constrained improvement at
    similarity 0.6: about 20 such children per call)."""
    if not oracle.constraints:
        return set()
    from molvae.chem import parse_smiles

    out = set()
    for s in {s for s in smiles if s}:
        mol, _ = parse_smiles(s)
        if mol is None or oracle.violation(mol) is not None:
            out.add(s)
    return out


def _observe(screener: Screen | None, points: Sequence[Any]) -> None:
    if screener is not None:
        screener.observe([a for p in points for a in p.answers])


def run_graph_ga(search: Search, *, population: int = 100, children: int = 50, n_init: int = 100,
                 crossover: float = 0.5, latent_share: float | str = 0.25, graph_share: float = 0.75,
                 immigrants: float = 0.05, screen: int = 1) -> None:
    """``graph_ga``: :func:`run_selfies_ga` with three quarters of the children made by Graph GA's moves
    and a quarter by latent moves (the 6-task protocol of BENCHMARKS.md: 3.72 against 3.57 for the
    latent population search and for SELFIES moves)."""
    run_selfies_ga(search, population=population, children=children, n_init=n_init, crossover=crossover,
                   latent_share=latent_share, graph_share=graph_share, immigrants=immigrants,
                   screen=screen)


def run_screened_ga(search: Search, *, population: int = 100, children: int = 50, n_init: int = 100,
                    crossover: float = 0.5, latent_share: float | str = 0.25, graph_share: float = 0.75,
                    immigrants: float = 0.05, screen: int = 4) -> None:
    """``screened_ga``, the default strategy: :func:`run_graph_ga` breeding four children per oracle
    call and sending the quarter a Tanimoto GP fitted to the scores so far rates most promising
    (the 6-task protocol of BENCHMARKS.md)."""
    run_selfies_ga(search, population=population, children=children, n_init=n_init, crossover=crossover,
                   latent_share=latent_share, graph_share=graph_share, immigrants=immigrants, screen=screen)
