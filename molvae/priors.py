"""Latent priors: the standard normal, the VampPrior and the learned conditional prior ``p(z|c)``, and
the Gaussian log-densities they share.

The VampPrior (Tomczak & Welling 2018) is ``p(z) = 1/K sum_k q(z | u_k)``: a mixture of the encoder's
own posteriors at ``K`` learned pseudo-inputs ``u_k``. For a sequence encoder a pseudo-input is a
``(vamp_length, embed_dim)`` array in embedding space (it bypasses the token lookup), plus, for a
conditional model, a learned standardized condition vector. The KL term has no closed form, so
training uses the single-sample Monte-Carlo estimate ``log q(z|x) - log p(z)``.

The conditional prior (a CVAE's, Sohn et al. 2015) is ``p(z|c) = N(mu(c), diag sigma(c)^2)`` with a
small MLP from the standardized conditions: sampling at a condition then draws ``z`` where the
posteriors of molecules with that condition lie, instead of from N(0, I) independently of ``c``
(``z`` also carries the properties, and would contradict ``c``). Its KL term is closed-form; at the
mean condition (``c = 0``) it is N(0, I).

Shapes: ``z (B, Z)``; component means and log-variances ``(K, Z)``; log-densities ``(B,)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["VampPrior", "ConditionalPrior", "normal_log_prob", "diag_normal_log_prob", "mixture_log_prob",
           "sample_mixture", "gaussian_kl"]

_LOG_2PI = math.log(2.0 * math.pi)


def normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """``log N(z; 0, I)`` per row, ``(B,)`` float32."""
    z = z.float()
    return -0.5 * (z.pow(2) + _LOG_2PI).sum(-1)


def diag_normal_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``log N(z; mu, diag(exp(logvar)))`` per row (broadcasting over leading dims), float32."""
    z, mu, logvar = z.float(), mu.float(), logvar.float()
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + _LOG_2PI).sum(-1)


def gaussian_kl(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p)))`` per dimension (elementwise), float32."""
    mu_q, logvar_q, mu_p, logvar_p = mu_q.float(), logvar_q.float(), mu_p.float(), logvar_p.float()
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) * torch.exp(-logvar_p) - 1.0)


def mixture_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, chunk_elems: int = 1 << 24) -> torch.Tensor:
    """``log (1/K) sum_k N(z; mu_k, diag(exp(logvar_k)))`` for ``z (B, Z)``, ``mu/logvar (K, Z)`` -> ``(B,)``.

    Computed directly (not by expanding the square, which cancels badly for small variances) in
    float32 outside autocast, in chunks of rows so that ``rows * K * Z <= chunk_elems``.
    """
    with torch.autocast(device_type=z.device.type, enabled=False):
        z, mu, logvar = z.float(), mu.float(), logvar.float()
        k = mu.shape[0]
        rows = max(1, chunk_elems // max(1, k * mu.shape[1]))
        out = []
        for start in range(0, z.shape[0], rows):
            zc = z[start:start + rows, None, :]  # (b, 1, Z)
            comp = diag_normal_log_prob(zc, mu[None], logvar[None])  # (b, K)
            out.append(torch.logsumexp(comp, dim=1) - math.log(k))
        return torch.cat(out) if out else z.new_zeros(0)


def sample_mixture(n: int, mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` draws ``(n, Z)`` from the equal-weight diagonal Gaussian mixture ``(mu_k, logvar_k)``."""
    k = mu.shape[0]
    comp = torch.randint(k, (n,), generator=generator, device=generator.device if generator is not None else "cpu")
    comp = comp.to(mu.device)
    eps = torch.randn((n, mu.shape[1]), generator=generator,
                      device=generator.device if generator is not None else "cpu").to(mu.device)
    return mu.float()[comp] + eps * torch.exp(0.5 * logvar.float()[comp])


class VampPrior(nn.Module):
    """The learned pseudo-inputs ``(K, L, E)`` (and pseudo-conditions ``(K, C)``) of a VampPrior.

    The mixture components are the encoder's posteriors at these inputs; the owning :class:`VAE`
    computes them (``VAE.prior_components``), since they change with the encoder's weights.
    """

    def __init__(self, components: int, length: int, embed_dim: int, n_conditions: int = 0):
        super().__init__()
        self.pseudo_inputs = nn.Parameter(torch.randn(components, length, embed_dim))
        self.pseudo_conditions = nn.Parameter(torch.zeros(components, n_conditions)) if n_conditions else None

    @property
    def components(self) -> int:
        return self.pseudo_inputs.shape[0]

    @torch.no_grad()
    def init_from(self, embedded: torch.Tensor, conditions: torch.Tensor | None = None) -> None:
        """Start the pseudo-inputs at embedded training molecules ``(K, L', E)`` (cut or zero-padded to L).

        As in the VampPrior paper, which starts them at training points: the mixture then begins
        where the data are instead of at random noise the encoder never saw.
        """
        k, length, _ = self.pseudo_inputs.shape
        take = min(length, embedded.shape[1])
        n = min(k, embedded.shape[0])  # with fewer molecules than components, the rest stay random
        self.pseudo_inputs[:n].zero_()
        self.pseudo_inputs[:n, :take] = embedded[:n, :take].to(self.pseudo_inputs)
        if self.pseudo_conditions is not None and conditions is not None:
            self.pseudo_conditions[:n] = conditions[:n].to(self.pseudo_conditions)


class ConditionalPrior(nn.Module):
    """``p(z|c)``: an MLP from standardized conditions ``(B, C)`` to ``(mu, logvar)``, each ``(B, Z)``.

    The output is taken relative to the MLP's output at ``c = 0`` (every condition at its training
    mean), so ``p(z|0) = N(0, I)`` exactly. The KL term alone leaves the latent space's offset and scale
    free (the decoder absorbs any such map of ``z``) and they would drift; anchored, tools that assume
    N(0, I) (latent bounds, interpolation) stay right at the mean condition. The output layer starts at
    zero, so training starts from N(0, I) at every ``c``.
    """

    hidden = 128  # conditions are a handful of numbers: a small MLP is plenty

    def __init__(self, n_conditions: int, latent_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_conditions, self.hidden), nn.SiLU(),
                                 nn.Linear(self.hidden, 2 * latent_dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(cond) - self.net(cond.new_zeros(1, cond.shape[-1]))
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)
