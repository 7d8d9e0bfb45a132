"""Ask / tell: optimization when the scores come from a lab or a queue, not from a function.

    >>> study = AskTellStudy("zinc250k", budget=960, out="runs/kinase", objective="lab:pIC50")
    >>> batch = study.ask(96)                 # 96 new molecules, recorded as asked (not yet charged)
    >>> study.tell(batch, measured_pic50)     # each told molecule is charged one call
    >>> study.ask(96)                         # the next batch breeds from everything told so far

Everything lives in the study's database (the same tables as :class:`~molvae.optimize.oracle.Oracle`):
asked molecules are rows with status ``asked``, told ones get a call number. A process killed between
ask and tell loses nothing: a new process finds the outstanding molecules (:meth:`AskTellStudy.outstanding`)
and takes their scores whenever they come. A molecule is never asked twice and never charged twice.

Proposals come from the default strategy's moves, whose state is the study's log itself: parents
are the best molecules told so far, children come from Graph GA's moves and latent crossover with
mutation (:func:`~molvae.optimize.genetic.breed`), several times more than asked for, and a Tanimoto
GP fitted to every score told so far picks the most promising (:mod:`~molvae.optimize.surrogate`),
beside a share of fresh prior samples; before any score, seeds and then prior samples are asked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from molvae.errors import ConfigError
from molvae.optimize.genetic import breed, breeding_pool, check_ga_options, model_alphabet
from molvae.optimize.latent import LatentSpace
from molvae.optimize.oracle import Oracle
from molvae.optimize.result import OptimizationResult
from molvae.optimize.storage import check_url, default_url
from molvae.optimize.surrogate import Screen

__all__ = ["AskTellStudy", "DEFAULT_LAB_OBJECTIVE"]

DEFAULT_LAB_OBJECTIVE = "lab:score"
_MAX_ROUNDS = 20  # decoding rounds an ask may take to find enough new molecules


class AskTellStudy:
    """A study whose molecules are scored outside molvae (see the module docstring).

    :param model: a :class:`~molvae.MolVAE`, a model directory or a shipped model's name; only
        :meth:`ask` needs it (``None`` for a process that only tells).
    :param budget: calls for the whole study (``None``: the stored budget of an existing study).
    :param objective: what is measured, ``lab:NAME``.
    :param out: run directory (the SQLite study lives there unless ``storage`` is given).
    :param seeds: molecules to ask first (a file or a list of SMILES).
    :param population, crossover, latent_share, graph_share, immigrants, screen: the GA's settings, as
        for :func:`~molvae.optimize.genetic.run_selfies_ga` (``screen``: children bred per molecule asked).
    """

    def __init__(self, model: Any = None, budget: int | None = None, *, objective: str = DEFAULT_LAB_OBJECTIVE,
                 out: str | Path | None = None, storage: str | None = None, study_name: str = "molvae",
                 seeds: Any = None, constraints: Sequence[Any] = (), seed: int = 0, bound: float = 3.0,
                 population: int = 100, crossover: float = 0.5, latent_share: float = 0.25,
                 graph_share: float = 0.75, screen: int = 4, immigrants: float = 0.05) -> None:
        check_ga_options(population, 1, screen, crossover=crossover, latent_share=latent_share,
                         graph_share=graph_share, immigrants=immigrants)
        if out is None and storage is None:
            raise ConfigError("an ask/tell study needs out (a run directory) or storage: it must outlive the process")
        self.out = Path(out) if out is not None else None
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
        self.url = storage if storage is not None else default_url(self.out)
        check_url(self.url)
        self.oracle = Oracle(objective, budget, constraints=constraints, storage=self.url, study=study_name)
        self.model, self.seed, self.bound = model, int(seed), float(bound)
        self.population, self.crossover, self.immigrants = int(population), float(crossover), float(immigrants)
        self.latent_share, self.graph_share, self.screen = float(latent_share), float(graph_share), screen
        self._seeds = seeds
        self._space: LatentSpace | None = None

    # ----------------------------------------------------------------- state
    @property
    def remaining(self) -> int:
        """Calls that can still be asked for: the budget less what was told and what is out."""
        self.oracle.refresh()
        return max(0, self.oracle.remaining - len(self.oracle.outstanding()))

    def outstanding(self) -> list[str]:
        """Molecules asked for and not yet told, oldest first."""
        return self.oracle.outstanding()

    def result(self) -> OptimizationResult:
        """Every molecule of the study so far, in call order (asked ones have no call number yet)."""
        self.oracle.refresh()
        return OptimizationResult(df=self.oracle.log(), objectives=list(self.oracle.names), method="screened_ga",
                                  budget=self.oracle.budget, study=self.oracle.study, storage=self.url)

    def close(self) -> None:
        """Release the database connections."""
        self.oracle.close()

    # ----------------------------------------------------------------- ask
    def ask(self, n: int) -> list[str]:
        """Up to ``n`` new molecules to score, recorded as asked (fewer when the budget is nearly out).

        :raises ConfigError: ``n`` is not a positive integer, or no model was given.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"ask needs a positive number of molecules, got {n!r}")
        n = min(int(n), self.remaining)
        if n == 0:
            return []
        picked: list[str] = []
        violated: dict[str, str] = {}
        rng = np.random.default_rng([self.seed, len(self.oracle.log())])  # differs per ask, reproducible
        for candidates in self._candidates(rng, n):
            for smi, mol in self._new(candidates, set(picked) | set(violated)):
                reason = self.oracle.violation(mol)
                if reason is not None:
                    violated[smi] = reason
                elif len(picked) < n:
                    picked.append(smi)
            if len(picked) >= n:
                break
        self.oracle.record_asked(picked, violated)
        return picked

    def _candidates(self, rng: np.random.Generator, n: int):
        """Batches of SMILES to choose from, best first: seeds first, then proposals from the told scores."""
        if self._seeds is not None and not self.oracle.top(1):
            from molvae.optimize.runner import read_seeds

            yield read_seeds(self._seeds, self.out)
        for _ in range(_MAX_ROUNDS):
            yield self._proposals(rng, n)

    def _proposals(self, rng: np.random.Generator, n: int) -> list[str]:
        """About ``n`` fresh prior samples and children of the best told molecules, in the order to ask
        them: the prior samples (a share ``immigrants``), then children ranked by the surrogate."""
        space = self._latent(rng)
        parents, tokens = breeding_pool(self.oracle.top(self.population))
        if not parents:
            return self._decode(space.prior(2 * n))
        n_fresh = int(rng.binomial(n, self.immigrants))
        kids, _, _ = breed(space, parents, tokens, max(1, n - n_fresh) * self.screen,
                           rng, crossover_rate=self.crossover, latent_share=self.latent_share,
                           graph_share=self.graph_share, alphabet=model_alphabet(space.model))
        if self.screen > 1:
            screen, log = Screen(rng), self.oracle.log()
            told = log[log["status"] == "done"]
            screen.add(told["smiles"].tolist(), told["score"].astype(float).tolist())
            kids = [kids[i] for i in screen.pick(kids, len(kids), known=set())]
        return self._decode(space.prior(n_fresh)) + [k for k in kids if k]

    def _latent(self, rng: np.random.Generator) -> LatentSpace:
        if self.model is None:
            raise ConfigError("ask needs the model: give it when opening the study")
        if self._space is None:
            from molvae.optimize.runner import load_model

            self.model = load_model(self.model)
            self._space = LatentSpace(self.model, bound=self.bound, seed=int(rng.integers(2**31 - 1)))
        return self._space

    def _decode(self, z: np.ndarray) -> list[str]:
        space = self._space
        return [s for row in space.decode(space.project(z), 1) for s in row if s]

    def _new(self, smiles: list[str], taken: set[str]) -> list[tuple[str, Any]]:
        """``(canonical SMILES, Mol)`` of the valid molecules not yet in the study nor taken in this
        ask, first occurrence first."""
        from molvae.chem import parse_smiles, to_canonical

        fresh: dict[str, Any] = {}
        for s in smiles:
            mol, _ = parse_smiles(s)
            if mol is not None:
                fresh.setdefault(to_canonical(mol), mol)
        fresh = {s: m for s, m in fresh.items() if s not in taken}
        known = self.oracle.known(list(fresh))
        return [(s, m) for s, m in fresh.items() if s not in known]

    # ----------------------------------------------------------------- tell
    def tell(self, smiles: Sequence[str], scores: Sequence[float | None]) -> dict[str, int]:
        """Record measured scores (``None`` or NaN: the measurement failed; it is charged all the same).

        Molecules scored before are not charged again; ones never asked are welcome (charged). Returns
        ``{"charged": n, "already": n}``. :raises ConfigError: lengths differ, a score is not a number,
        or more new molecules than calls left (then nothing is recorded).
        :raises InvalidSmilesError: a SMILES that does not parse (nothing is recorded).
        """
        from molvae.chem import parse_smiles, to_canonical
        from molvae.errors import InvalidSmilesError

        smiles, scores = list(smiles), list(scores)
        if len(smiles) != len(scores):
            raise ConfigError(f"tell got {len(smiles)} molecules and {len(scores)} scores")
        pairs: dict[str, float | None] = {}
        for smi, value in zip(smiles, scores):
            mol, reason = parse_smiles(smi) if isinstance(smi, str) else (None, "not a string")
            if mol is None:
                raise InvalidSmilesError(f"cannot tell a score for {smi!r}: {reason}")
            pairs.setdefault(to_canonical(mol), _number(value, smi))
        return self.oracle.tell(list(pairs.items()))


def _number(value: Any, smiles: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"the score of {smiles!r} is {value!r}, not a number") from None
    return number if math.isfinite(number) else None
