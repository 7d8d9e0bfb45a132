"""Gradient ascent on a property surrogate: an MLP ensemble on z, fitted online to the oracle's answers.

Each round refits a small ensemble of MLPs to every scored molecule of the study (its latent point
is the molecule's encoding, so the surrogate learns the property where molecules actually live),
then climbs from the best molecules' points on ``mean + kappa * std + prior_weight * log p(z)``
(``log p`` the model's own prior: ``-|z|^2 / 2`` up to a constant for N(0, I), the mixture density
for a VampPrior): the ensemble spread rewards a little exploration, the prior term keeps chains
where the decoder is reliable. Points are decoded along the way and every new molecule goes to the oracle, so the data
for the next round comes from the ascent itself.
"""

from __future__ import annotations

import numpy as np

from molvae.optimize.base import Search

__all__ = ["run_gradient"]


def _ensemble(dim: int, members: int, hidden: int, seed: int):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.ModuleList(
        nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        for _ in range(members)
    )


def _fit(net, x: np.ndarray, y: np.ndarray, steps: int, rng: np.random.Generator) -> None:
    import torch

    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    net.train()
    for _ in range(steps):
        loss = 0.0
        for member in net:  # each member sees its own bootstrap minibatch
            idx = torch.as_tensor(rng.integers(0, len(x), size=min(256, len(x))))
            loss = loss + torch.nn.functional.mse_loss(member(xt[idx]).squeeze(-1), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()


def _log_prior(model):
    """Differentiable ``log p(z)`` of the model's prior (float32, on the CPU)."""
    net = getattr(model, "net", None)
    if getattr(net, "prior", None) is None:
        return lambda z: -(z ** 2).sum(-1) / 2
    device = next(net.parameters()).device
    return lambda z: net.prior_log_prob(z.to(device)).float().cpu()


def run_gradient(search: Search, *, chains: int = 32, steps: int = 6, step_size: float = 0.15,
                 prior_weight: float = 0.05, kappa: float = 0.5, members: int = 4, hidden: int = 256,
                 n_init: int = 200, fit_steps: int = 200, refit_every: int = 100) -> None:
    """Alternate surrogate fitting and ascent until the search says stop (see the module docstring).

    The surrogate is refitted once ``refit_every`` new molecules have arrived; when a round finds
    few new molecules (chains stuck on one molecule), the step length doubles (up to 1.0) and it
    halves back when rounds are productive.
    """
    import torch

    space, rng = search.space, search.rng
    log_prior = _log_prior(space.model)
    net = _ensemble(space.dim, members, hidden, int(rng.integers(2**31 - 1)))
    if len(search.oracle.top(n_init)) < n_init and not search.should_stop():
        search.evaluate(space.prior(n_init))
    fitted_on, step = -refit_every, step_size
    while not search.should_stop():
        data = search.oracle.top(5000)  # best 5,000 molecules of the study (all workers)
        smiles = [s for s, _ in data]
        z = space.encode(smiles)
        ok = ~np.isnan(z).any(axis=1)
        if ok.sum() < 2:
            search.evaluate(space.prior(chains))
            continue
        x, y = z[ok], np.array([v for (_, v), good in zip(data, ok) if good])
        if len(x) - fitted_on >= refit_every or len(x) < fitted_on:
            mu, sd = y.mean(), y.std() + 1e-8
            _fit(net, x, (y - mu) / sd, fit_steps, rng)
            fit_steps, fitted_on = max(50, fit_steps // 2), len(x)  # warm start: later fits need fewer steps
        # start from the best molecules, a little jittered so chains from one molecule diverge
        starts = x[rng.integers(0, min(len(x), chains), size=chains)] + 0.05 * rng.standard_normal((chains, space.dim))
        zt = torch.tensor(starts, dtype=torch.float32, requires_grad=True)
        found = 0
        for _ in range(steps):
            preds = torch.stack([m(zt).squeeze(-1) for m in net])
            gain = preds.mean(0) + kappa * preds.std(0) + prior_weight * log_prior(zt)
            (grad,) = torch.autograd.grad(gain.sum(), zt)
            with torch.no_grad():
                norm = grad.norm(dim=-1, keepdim=True).clamp_min(1e-8)
                zt += step * grad / norm  # fixed-length steps: the surrogate's scale does not matter
            found += sum(p.new for p in search.evaluate(zt.detach().numpy()))
            if search.should_stop():
                return
        step = min(1.0, 2 * step) if found < chains // 4 else max(step_size, step / 2)
