"""A cheap stand-in for the oracle: a Gaussian process on Morgan fingerprints with the Tanimoto kernel.

Genetic moves are cheap and oracle calls are not, so a GA can breed several times more children than
it may score and send only the most promising (GP BO in PMO, Tripp et al. 2021, screens Graph GA's
proposals the same way). The GP is refitted every generation on the study's best molecules plus a
random sample of the rest, small enough (a few hundred) for an exact Cholesky solve in milliseconds.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["TanimotoGP", "Screen", "fingerprints"]

_NOISES = (1e-3, 1e-2, 1e-1)  # observation noise (in units of the scores' variance), picked by evidence


def fingerprints(smiles: Sequence[str], radius: int = 2, bits: int = 2048) -> np.ndarray:
    """Morgan bit vectors ``(n, bits)`` as float32 (all zeros where RDKit cannot parse a SMILES)."""
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=bits)
    out = np.zeros((len(smiles), bits), dtype=np.float32)
    for i, s in enumerate(smiles):
        mol = Chem.MolFromSmiles(s) if s else None
        if mol is not None:
            out[i] = gen.GetFingerprintAsNumPy(mol)
    return out


def _tanimoto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Tanimoto similarity of every row of ``a`` with every row of ``b`` (binary vectors)."""
    inner = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inner
    return np.where(union > 0, inner / np.maximum(union, 1e-9), 1.0)


class TanimotoGP:
    """Exact GP regression with the Tanimoto kernel on standardized scores; the noise level is the
    one of a few fixed choices with the highest marginal likelihood."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> "TanimotoGP":
        from scipy.linalg import cho_factor, cho_solve

        self.x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float64)
        self.mean, self.scale = float(y.mean()), float(y.std()) or 1.0
        t = (y - self.mean) / self.scale
        k = _tanimoto(self.x, self.x).astype(np.float64)
        best = None
        for noise in _NOISES:
            factor = cho_factor(k + noise * np.eye(len(t)), lower=True)
            alpha = cho_solve(factor, t)
            evidence = -0.5 * t @ alpha - np.log(np.diag(factor[0])).sum()
            if best is None or evidence > best[0]:
                best = (evidence, factor, alpha)
        _, self._factor, self._alpha = best
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of the scores at fingerprints ``x``."""
        from scipy.linalg import cho_solve

        ks = _tanimoto(np.asarray(x, dtype=np.float32), self.x).astype(np.float64)
        mean = ks @ self._alpha
        var = np.clip(1.0 - np.einsum("ij,ji->i", ks, cho_solve(self._factor, ks.T)), 1e-12, None)
        return self.mean + self.scale * mean, self.scale * np.sqrt(var)


class Screen:
    """Picks which of many bred children the oracle scores: those with the highest upper confidence
    bound (mean + ``ucb`` x sd) under a :class:`TanimotoGP` fitted to the scores seen so far (the best
    ``n_best`` and a random ``n_random`` of the rest)."""

    def __init__(self, rng: np.random.Generator, *, ucb: float = 1.0, n_best: int = 200,
                 n_random: int = 300) -> None:
        self.rng, self.ucb, self.n_best, self.n_random = rng, ucb, n_best, n_random
        self.scores: dict[str, float] = {}
        self._fps: dict[str, np.ndarray] = {}

    def observe(self, answers: Sequence) -> None:
        """Record the oracle's answers (only scored molecules teach the surrogate)."""
        ok = [a for a in answers if getattr(a, "ok", False) and a.score is not None]
        self.add([a.smiles for a in ok], [a.score for a in ok])

    def add(self, smiles: Sequence[str], scores: Sequence[float]) -> None:
        """Record scores measured elsewhere (NaN ones are left out)."""
        self.scores.update((s, float(v)) for s, v in zip(smiles, scores) if np.isfinite(v))

    def _fp(self, smiles: Sequence[str]) -> np.ndarray:
        """Fingerprints of scored molecules, cached bit-packed (256 bytes each)."""
        todo = [s for s in smiles if s not in self._fps]
        if todo:
            self._fps.update(zip(todo, np.packbits(fingerprints(todo).astype(np.uint8), axis=1)))
        return np.unpackbits(np.stack([self._fps[s] for s in smiles]), axis=1).astype(np.float32)

    def pick(self, candidates: Sequence[str | None], n: int, known: set[str]) -> list[int]:
        """Indices of at most ``n`` distinct, not yet scored candidates, most promising first."""
        first: dict[str, int] = {}
        for i, s in enumerate(candidates):
            if s and s not in known and s not in first:
                first[s] = i
        if len(self.scores) < 10 or len(first) <= 1:
            return list(first.values())[:n]
        ranked = sorted(self.scores, key=self.scores.get, reverse=True)
        best, rest = ranked[:self.n_best], ranked[self.n_best:]
        if len(rest) > self.n_random:
            rest = [rest[i] for i in self.rng.choice(len(rest), self.n_random, replace=False)]
        train = best + rest
        gp = TanimotoGP().fit(self._fp(train), np.array([self.scores[s] for s in train]))
        mean, sd = gp.predict(fingerprints(list(first)))
        order = np.argsort(-(mean + self.ucb * sd))[:n]
        index = list(first.values())
        return [index[j] for j in order]
