"""The latent space as the optimizers see it: where the decoder is reliable, and molecules <-> points.

A VAE decodes reliably only where training put posterior mass, i.e. near the prior. Points are
kept there by a box ``|z_i| <= bound`` and a radius: in d dimensions N(0, I) samples have norm
about sqrt(d), so points beyond the chi-square quantile ``radius_quantile`` are pulled back onto
that sphere. Samplers that work on a unit cube (optuna's) see ``u = Phi(z)``, the normal CDF, so
uniform sampling in the cube is sampling from N(0, I). Fresh points (``prior``) come from the
model's own prior: N(0, I), or its VampPrior mixture when it was trained with one.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["LatentSpace"]


class LatentSpace:
    """Project, map and decode latent points of one model; encode molecules with a cache.

    ``n_decode`` decodings per point: the greedy one plus ``n_decode - 1`` samples at
    ``temperature``, so one point can propose several nearby molecules (only new ones are paid for).
    A decoding whose token string the SELFIES decoder had to repair is the model's mistake, not a
    proposal: it comes back as ``None`` (invalid, so no oracle call is spent on it) unless
    ``keep_repaired``.
    """

    def __init__(self, model: Any, *, bound: float = 3.0, radius_quantile: float = 0.999,
                 n_decode: int = 1, temperature: float = 1.0, seed: int = 0, keep_repaired: bool = False) -> None:
        from scipy.special import gammaincinv  # chi2.ppf(q, d) = 2 gammaincinv(d / 2, q), without scipy.stats

        self.model = model
        self.dim = int(model.latent_dim)
        self.bound = float(bound)
        self.radius = float(np.sqrt(2.0 * gammaincinv(self.dim / 2.0, radius_quantile)))
        self.n_decode = max(1, int(n_decode))
        self.temperature = float(temperature)
        self.keep_repaired = bool(keep_repaired)
        self._rng = np.random.default_rng(seed)
        self._z: dict[str, np.ndarray | None] = {}
        self.n_decoded = 0  # molecules decoded (all points x decodings)
        self.n_invalid = 0  # decodings that gave no valid molecule (repaired ones included)
        self.n_repaired = 0  # decodings rejected because the SELFIES decoder repaired them

    # ----------------------------------------------------------------- geometry
    def project(self, z: np.ndarray) -> np.ndarray:
        """Clip to the box, then pull points outside the prior radius back onto it."""
        z = np.clip(np.asarray(z, dtype=np.float64), -self.bound, self.bound)
        norms = np.linalg.norm(z, axis=-1, keepdims=True)
        scale = np.minimum(1.0, self.radius / np.maximum(norms, 1e-12))
        return z * scale

    def unit_bounds(self) -> tuple[float, float]:
        """The box ``|z| <= bound`` in the unit-cube coordinates ``u = Phi(z)``."""
        from scipy.special import ndtr

        return float(ndtr(-self.bound)), float(ndtr(self.bound))

    def to_unit(self, z: np.ndarray) -> np.ndarray:
        from scipy.special import ndtr

        lo, hi = self.unit_bounds()
        return np.clip(ndtr(np.asarray(z, dtype=np.float64)), lo, hi)

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        from scipy.special import ndtri

        lo, hi = self.unit_bounds()
        return ndtri(np.clip(np.asarray(u, dtype=np.float64), lo, hi))

    def prior(self, n: int) -> np.ndarray:
        """``n`` points drawn from the model's prior and projected."""
        if getattr(getattr(self.model, "net", None), "prior", None) is None:  # N(0, I): the seeded stream
            return self.project(self._rng.standard_normal((n, self.dim)))
        z = self.model.prior_sample(n, seed=int(self._rng.integers(2**31 - 1)))
        return self.project(np.asarray(z, dtype=np.float64))

    # ----------------------------------------------------------------- decoding
    def decode(self, z: np.ndarray, n_decode: int | None = None) -> list[list[str | None]]:
        """For each point, its greedy decoding then ``n_decode - 1`` sampled ones (None = invalid)."""
        z = np.atleast_2d(np.asarray(z, dtype=np.float32))
        k = self.n_decode if n_decode is None else max(1, int(n_decode))
        if len(z) == 0:
            return []
        out = [[s] for s in self._decoded(z, temperature=0.0)]
        if k > 1:
            reps = np.repeat(z, k - 1, axis=0)
            seed = int(self._rng.integers(2**31 - 1))
            sampled = self._decoded(reps, temperature=self.temperature, seed=seed)
            for i in range(len(z)):
                out[i].extend(sampled[i * (k - 1):(i + 1) * (k - 1)])
        self.n_decoded += len(z) * k
        self.n_invalid += sum(s is None for row in out for s in row)
        return out

    def _decoded(self, z: np.ndarray, **kwargs: Any) -> list[str | None]:
        """The model's decodings of ``z``, repaired ones as None (unless ``keep_repaired``)."""
        df = self.model.decode(z, as_frame=True, **kwargs)
        if self.keep_repaired:
            return df["smiles"].tolist()
        self.n_repaired += int(df["repaired"].sum())
        return [None if r else s for s, r in zip(df["smiles"], df["repaired"])]

    # ----------------------------------------------------------------- encoding
    def encode(self, smiles: Sequence[str]) -> np.ndarray:
        """Posterior means ``(n, dim)``; a row of NaN where the model cannot encode the molecule.

        Molecules with tokens the model never saw, or longer than its maximum, are not errors here:
        a search simply cannot start from them.
        """
        from molvae.errors import MolVAEError

        todo = [s for s in dict.fromkeys(smiles) if s not in self._z]
        stack = [todo] if todo else []
        while stack:  # one bad molecule spoils a batch: halve it until the bad ones stand alone
            batch = stack.pop()
            try:
                self._z.update(zip(batch, np.asarray(self.model.encode(batch, skip_unknown=False), dtype=np.float64)))
            except MolVAEError:
                if len(batch) == 1:
                    self._z[batch[0]] = None
                else:
                    stack += [batch[:len(batch) // 2], batch[len(batch) // 2:]]
        out = np.full((len(smiles), self.dim), np.nan)
        for i, s in enumerate(smiles):
            z = self._z.get(s)
            if z is not None:
                out[i] = z
        return out
