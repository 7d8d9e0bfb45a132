"""A prior fitted after training: a Gaussian mixture over the training molecules' latent means.

A VAE trained with a small KL weight (beta 0.1) spends tens of nats per molecule on its posteriors,
which then cover only part of N(0, I): prior samples land where no training molecule's posterior lies
and decode to implausible molecules. Ex-post density estimation (Ghosh et al. 2020) fixes that at no
training cost: fit a full-covariance Gaussian mixture to the posterior means of the training molecules
and sample latent points from it instead. A model directory stores it as ``latent_prior.safetensors``;
:meth:`molvae.api.MolVAE.sample` uses it when present (``prior="fitted"``, the default ``"auto"``).

The second form, :meth:`LatentMixture.aggregate`, is the aggregate posterior of a sample of training
molecules itself: one diagonal component per molecule, its posterior ``N(mu_i, diag(sigma_i^2))``, the
prior the VampPrior approximates (Tomczak & Welling 2018). Where the posteriors lie on a thin, curved
set (a low-beta model), a few full Gaussians still put most of their mass between them; the aggregate
puts it only where the decoder was trained.

Shapes: ``z (N, Z)``; weights ``(K,)``, means ``(K, Z)``, Cholesky factors of the covariances
``(K, Z, Z)``, or for the aggregate form standard deviations ``(K, Z)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from molvae.errors import CheckpointError, ConfigError
from molvae.priors import mixture_log_prob

__all__ = ["LatentMixture", "LATENT_PRIOR_FILE"]

LATENT_PRIOR_FILE = "latent_prior.safetensors"


@dataclass
class LatentMixture:
    """A Gaussian mixture over latent space (float64 parameters): full covariances (``chol``) or,
    for the aggregate posterior, diagonal ones (``scales``, with ``chol`` None)."""

    weights: torch.Tensor
    means: torch.Tensor
    chol: torch.Tensor | None
    n_fitted: int = 0
    scales: torch.Tensor | None = None

    @classmethod
    def aggregate(cls, mu: torch.Tensor, logvar: torch.Tensor, scale: float = 1.0) -> "LatentMixture":
        """The aggregate posterior of ``N`` molecules: equal weights, their posterior means, and their
        posterior standard deviations times ``scale`` (in (0, 1]; below 1 stays closer to the means)."""
        mu, logvar = mu.detach().double().cpu(), logvar.detach().double().cpu()
        if mu.ndim != 2 or mu.shape != logvar.shape or len(mu) < 1:
            raise ConfigError(f"need matching (N, Z) posterior means and log-variances, got {tuple(mu.shape)} "
                              f"and {tuple(logvar.shape)}")
        if not 0.0 < scale <= 1.0:
            raise ConfigError(f"the aggregate prior's scale must be in (0, 1], got {scale}")
        return cls(torch.full((len(mu),), 1.0 / len(mu), dtype=torch.float64), mu, None, len(mu),
                   scale * torch.exp(0.5 * logvar))

    @property
    def latent_dim(self) -> int:
        return self.means.shape[1]

    @classmethod
    def fit(cls, z: torch.Tensor, components: int = 10, iterations: int = 100, seed: int = 0,
            reg: float = 1e-4, tol: float = 1e-5) -> "LatentMixture":
        """EM from k-means++-style seeds; ``reg`` is added to every covariance's diagonal (relative to the
        data's variance) so that no component collapses. Stops when the mean log-likelihood gains < ``tol``."""
        z = z.detach().double().cpu()
        n, d = z.shape
        if n < 2 or components < 1:
            raise ConfigError(f"need at least 2 points and 1 component, got {n} points, {components} components")
        components = min(components, n)
        gen = torch.Generator().manual_seed(seed)
        means = _seed_means(z, components, gen)
        floor = reg * z.var(dim=0).mean()
        resp = torch.softmax(-torch.cdist(z, means) ** 2, dim=1)
        last = -math.inf
        for _ in range(iterations):
            weights, means, chol = _m_step(z, resp, floor)
            log_joint = _log_joint(z, weights, means, chol)
            ll = float(torch.logsumexp(log_joint, dim=1).mean())
            resp = torch.softmax(log_joint, dim=1)
            if ll - last < tol:
                break
            last = ll
        return cls(weights, means, chol, n)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``log p(z)`` per row, ``(N,)`` float64."""
        if self.scales is not None:
            return mixture_log_prob(z.detach().cpu(), self.means, 2.0 * torch.log(self.scales)).double()
        return torch.logsumexp(_log_joint(z.detach().double().cpu(), self.weights, self.means, self.chol), dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` latent points ``(n, Z)`` float32."""
        which = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.latent_dim, generator=generator, dtype=torch.float64)
        if self.scales is not None:
            return (self.means[which] + self.scales[which] * eps).float()
        z = self.means[which] + torch.einsum("nij,nj->ni", self.chol[which], eps)
        return z.float()

    def save(self, path: str | Path) -> Path:
        from molvae.io import save_weights

        spread = {"scales": self.scales} if self.scales is not None else {"chol": self.chol}
        return save_weights({"weights": self.weights, "means": self.means, **spread}, path,
                            metadata={"format": "molvae-latent-mixture-1", "n_fitted": str(self.n_fitted)})

    @classmethod
    def load(cls, path: str | Path, latent_dim: int) -> "LatentMixture":
        """Read a saved mixture; a damaged file or one of another latent size is a :class:`CheckpointError`."""
        from molvae.io import load_weights

        t = load_weights(path)
        spread_name = "scales" if "scales" in t else "chol"
        try:
            weights, means, spread = t["weights"].double(), t["means"].double(), t[spread_name].double()
        except KeyError as exc:
            raise CheckpointError(f"{path}: not a latent prior (missing {exc})") from None
        k = len(weights)
        want = (k, latent_dim) if spread_name == "scales" else (k, latent_dim, latent_dim)
        if means.shape != (k, latent_dim) or spread.shape != want:
            raise CheckpointError(f"{path}: latent prior of shape {tuple(means.shape)} does not fit a model "
                                  f"with latent size {latent_dim}")
        if not (torch.isfinite(weights).all() and torch.isfinite(means).all() and torch.isfinite(spread).all()):
            raise CheckpointError(f"{path}: latent prior has non-finite values")
        if spread_name == "scales":
            if not bool((spread > 0).all()):
                raise CheckpointError(f"{path}: latent prior has non-positive scales")
            return cls(weights / weights.sum(), means, None, k, spread)
        return cls(weights / weights.sum(), means, spread)


def _seed_means(z: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: each new mean a data point drawn in proportion to its squared distance."""
    pick = [int(torch.randint(len(z), (1,), generator=gen))]
    dist = ((z - z[pick[0]]) ** 2).sum(1)
    for _ in range(1, k):
        pick.append(int(torch.multinomial(dist / dist.sum(), 1, generator=gen)))
        dist = torch.minimum(dist, ((z - z[pick[-1]]) ** 2).sum(1))
    return z[pick].clone()


def _m_step(z: torch.Tensor, resp: torch.Tensor, floor: torch.Tensor) -> tuple[torch.Tensor, ...]:
    nk = resp.sum(0) + 1e-10
    means = (resp.T @ z) / nk[:, None]
    chols = []
    eye = torch.eye(z.shape[1], dtype=z.dtype)
    for k in range(len(nk)):
        centred = z - means[k]
        cov = (resp[:, k, None] * centred).T @ centred / nk[k] + floor * eye
        chols.append(torch.linalg.cholesky(cov))
    return nk / nk.sum(), means, torch.stack(chols)


def _log_joint(z: torch.Tensor, weights: torch.Tensor, means: torch.Tensor, chol: torch.Tensor) -> torch.Tensor:
    """``log w_k + log N(z; mu_k, L_k L_k^T)`` ``(N, K)``."""
    d = z.shape[1]
    out = []
    for k in range(len(weights)):
        sol = torch.linalg.solve_triangular(chol[k], (z - means[k]).T, upper=False)  # (d, N)
        log_det = 2.0 * torch.log(torch.diagonal(chol[k])).sum()
        out.append(torch.log(weights[k]) - 0.5 * (sol.pow(2).sum(0) + log_det + d * math.log(2 * math.pi)))
    return torch.stack(out, dim=1)
