"""What every strategy shares: turning latent points into scored molecules, and knowing when to stop.

A strategy proposes latent points; :meth:`Search.evaluate` decodes them (several molecules per
point if asked), sends every molecule to the budgeted oracle (new molecules are charged, repeats
are free) and gives each point a value: its best molecule's score, or a finite penalty when none
of its molecules could be scored, so samplers keep learning from failures instead of seeing NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from molvae.optimize.latent import LatentSpace
from molvae.optimize.oracle import Answer, Oracle

__all__ = ["Point", "Search"]


@dataclass
class Point:
    """One evaluated latent point."""

    z: np.ndarray
    answers: list[Answer]
    value: float | None  # best score among its molecules (None: none scored)
    values: tuple[float, ...] | None  # all objectives of its best molecule (multi-objective)
    smiles: str | None  # the molecule the value comes from
    unscored: bool  # True if a molecule was left unscored because the budget ran out

    @property
    def new(self) -> int:
        return sum(a.status == "new" for a in self.answers)


@dataclass
class Search:
    """The state a strategy works with: model space, oracle, random generator, stop rules."""

    space: LatentSpace
    oracle: Oracle  # every objective is maximized
    rng: np.random.Generator
    study: Any = None  # the optuna study of the run
    patience: int = 3000  # stop after this many points in a row that found no new molecule
    max_points: int | None = None  # hard cap on points evaluated by this worker
    progress: Any = None  # a tqdm bar (or None)
    n_points: int = 0  # latent points evaluated
    n_stale: int = 0  # points in a row without a new molecule
    stopped: str | None = None  # why the search stopped
    best_value: float | None = None  # best first-objective score seen
    _low: np.ndarray | None = field(default=None, repr=False)  # lowest score per objective, for the penalty

    @property
    def n_objectives(self) -> int:
        return len(self.oracle.names)

    # ----------------------------------------------------------------- values
    def penalty(self) -> tuple[float, ...]:
        """A finite value worse than anything seen so far (0 before any score), per objective."""
        if self._low is None:
            return tuple(0.0 for _ in range(self.n_objectives))
        return tuple(float(v) for v in self._low - 0.05 * np.maximum(1.0, np.abs(self._low)))

    def _note(self, scores: tuple[float | None, ...]) -> None:
        if any(s is None for s in scores):
            return
        values = np.asarray(scores, dtype=float)
        self._low = values if self._low is None else np.minimum(self._low, values)
        if self.best_value is None or values[0] > self.best_value:
            self.best_value = float(values[0])

    # ----------------------------------------------------------------- evaluation
    def evaluate(self, z: np.ndarray, n_decode: int | None = None) -> list[Point]:
        """Decode and score latent points ``(n, dim)``; see :class:`Point`."""
        z = self.space.project(np.atleast_2d(z))
        decoded = self.space.decode(z, n_decode)
        flat = [s for row in decoded for s in row]
        answers = self.oracle(flat)
        points, k = [], 0
        for i, row in enumerate(decoded):
            mine = answers[k:k + len(row)]
            k += len(row)
            best: Answer | None = None
            for a in mine:
                if a.ok and a.scores is not None and all(s is not None for s in a.scores):
                    self._note(a.scores)
                    if best is None or self._better(a, best):
                        best = a
            points.append(Point(
                z=z[i], answers=mine,
                value=None if best is None else float(best.score),
                values=None if best is None else tuple(float(s) for s in best.scores),
                smiles=None if best is None else best.smiles,
                unscored=any(a.status == "over_budget" for a in mine),
            ))
        self._account(points)
        return points

    def _better(self, a: Answer, b: Answer) -> bool:
        """Single objective: the higher score; several: the higher sum (a point gets one molecule)."""
        if self.n_objectives == 1:
            return a.score > b.score
        return sum(a.scores) > sum(b.scores)

    def score_smiles(self, smiles: list[str]) -> list[Answer]:
        """Score molecules directly (seeds, re-scoring); counted like decoded ones."""
        answers = self.oracle(smiles)
        for a in answers:
            if a.ok and a.scores is not None and all(s is not None for s in a.scores):
                self._note(a.scores)
        self._update_bar()
        return answers

    def count_as_points(self, answers: list[Answer]) -> None:
        """Count molecules scored outside :meth:`evaluate` (sampled or bred directly) as points, one
        each, so ``patience`` and ``max_points`` see them."""
        for answer in answers:
            self.n_points += 1
            self.n_stale = 0 if answer.status == "new" else self.n_stale + 1

    def value_of(self, point: Point) -> float:
        """The point's value, or the penalty (single objective)."""
        return point.value if point.value is not None else self.penalty()[0]

    def values_of(self, point: Point) -> tuple[float, ...]:
        """The point's objective values, or the penalty (several objectives)."""
        return point.values if point.values is not None else self.penalty()

    def _account(self, points: list[Point]) -> None:
        for p in points:
            self.n_points += 1
            self.n_stale = 0 if p.new else self.n_stale + 1
        self._update_bar()

    def _update_bar(self) -> None:
        if self.progress is not None:
            self.progress.n = min(self.oracle.n_calls, self.oracle.budget)
            if self.best_value is not None:
                self.progress.set_postfix_str(f"best={self.best_value:.4g}", refresh=False)
            self.progress.update(0)  # redraws at the bar's own pace (once a minute in a log file)

    # ----------------------------------------------------------------- stopping
    def should_stop(self) -> bool:
        """True once the budget is spent, the search stalls, or the point cap is reached."""
        if self.stopped:
            return True
        if self.oracle.exhausted:
            self.stopped = "budget spent"
        elif self.n_stale >= self.patience:
            self.stopped = f"no new molecule in the last {self.patience} points"
        elif self.max_points is not None and self.n_points >= self.max_points:
            self.stopped = f"{self.max_points} points evaluated"
        return self.stopped is not None
