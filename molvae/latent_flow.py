"""A prior fitted after training: a normalizing flow over the training molecules' latent posteriors.

:mod:`molvae.latent_mixture` fits a few full Gaussians to the posterior means. Where the posteriors lie
on a thin, curved set, each Gaussian spreads its mass over the whole convex hull of its share of them,
so many samples land between posteriors, where the decoder was never trained. A normalizing flow
(Papamakarios et al. 2017; Dinh et al. 2017) is an invertible network that bends N(0, I) onto the data:
its density follows curved, lopsided and heavy-tailed sets, and being a smooth function fitted to
tens of thousands of points it generalizes *between* posteriors instead of memorizing them (the
aggregate form of :class:`~molvae.latent_mixture.LatentMixture` memorizes one component per molecule).
Held-out log-likelihood picks the weights, so a flow that overfits is caught.

What it fits: by default the posterior means ``z``. Given the posteriors ``mu_logvar``, each training
step draws fresh points ``mu_i + posterior_scale * sigma_i * eps`` instead, which fits the aggregate
posterior ``(1/N) sum_i N(mu_i, sigma_i^2)``, the distribution the decoder was trained on; the
draws also keep the flow from collapsing onto the finite set of means. The two differ most in
collapsed coordinates (posterior ``N(0, 1)`` for every molecule, means all near 0): a flow of the means
is sharp there and scores encoded molecules highly, while a flow of the aggregate posterior is N(0, 1)
there, as the decoder saw it. Passing ``mu_logvar`` opts in (``posterior_scale`` 1 by default; 0 fits
the means anyway).

The flow: zuko's affine MAF with two passes (``kind="coupling"``): each transformation is a
RealNVP-style affine coupling, half of the (randomly permuted) coordinates shifted and scaled by an MLP
of the other half, so both density and sampling take one network pass per transformation.
``"autoregressive"`` (a fully autoregressive MAF) is denser per transformation, but sampling takes
``Z`` passes per transformation; ``"spline"`` (NSF coupling, rational-quadratic splines) is more
flexible and about eight times slower to train. Coordinates are standardized first (the mean and
standard deviation of the training points are buffers of the module and metadata of the file).

Cost (one CPU thread, Z = 128, the defaults: 4 transformations of 2x256 hidden units, 0.66 M
parameters): about 50 ms per step of 512 points, so 3000 steps take 2-3 minutes whatever ``N``;
sampling 30,000 points takes about 2.5 s.

Shapes: ``z (N, Z)``, ``log_prob -> (N,)`` float64, ``sample -> (n, Z)`` float32.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from molvae.errors import CheckpointError, ConfigError
from molvae.latent_mixture import LatentMixture

__all__ = ["LatentFlow", "load_latent_prior", "read_metadata", "FLOW_FORMAT", "FLOW_KINDS"]

FLOW_FORMAT = "molvae-latent-flow-1"
MIXTURE_FORMAT = "molvae-latent-mixture-1"
FLOW_KINDS = ("coupling", "autoregressive", "spline")
_CHUNK = 8192  # rows per batch in log_prob, sample and validation


def _build(kind: str, features: int, transforms: int, hidden: int, seed: int) -> torch.nn.Module:
    """The zuko flow for these hyperparameters. Its permutations and initial weights come from ``seed``
    (the global RNG is restored afterwards), so the same metadata always rebuilds the same structure."""
    import zuko

    if kind not in FLOW_KINDS:
        raise ConfigError(f"latent flow kind must be one of {', '.join(FLOW_KINDS)}, got {kind!r}")
    if features < 2 or transforms < 1 or hidden < 1:
        raise ConfigError(f"a latent flow needs Z >= 2, transforms >= 1 and hidden >= 1, got {features}, "
                          f"{transforms}, {hidden}")
    cls = zuko.flows.NSF if kind == "spline" else zuko.flows.MAF
    passes = None if kind == "autoregressive" else 2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(features, transforms=transforms, passes=passes, randperm=True, hidden_features=(hidden, hidden))


class LatentFlow(torch.nn.Module):
    """A normalizing flow over latent space with the interface of
    :class:`~molvae.latent_mixture.LatentMixture` (``fit``, ``log_prob``, ``sample``, ``save``, ``load``,
    ``latent_dim``, ``n_fitted``)."""

    def __init__(self, flow: torch.nn.Module, mean: torch.Tensor, std: torch.Tensor, *, kind: str,
                 transforms: int, hidden: int, seed: int, n_fitted: int = 0) -> None:
        super().__init__()
        self.flow = flow.eval()
        self.register_buffer("mean", mean.detach().float().cpu())
        self.register_buffer("std", std.detach().float().cpu())
        self.kind, self.transforms, self.hidden, self.seed = kind, transforms, hidden, seed
        self.n_fitted = n_fitted

    @property
    def latent_dim(self) -> int:
        return self.mean.shape[0]

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, z: torch.Tensor, *, mu_logvar: tuple[torch.Tensor, torch.Tensor] | None = None,
            posterior_scale: float = 1.0, kind: str = "coupling", transforms: int = 4, hidden: int = 256,
            steps: int = 3000, batch_size: int = 512, lr: float = 1e-3, val_fraction: float = 0.05,
            eval_every: int = 100, seed: int = 0, max_minutes: float | None = None,
            progress: bool = False) -> "LatentFlow":
        """Fit a flow to latent points ``z (N, Z)``, the posterior means.

        ``mu_logvar``: the same molecules' posteriors ``(mu, logvar)``, each ``(N, Z)`` (``mu`` normally
        is ``z``). With them and ``posterior_scale`` > 0 every step trains on fresh draws
        ``mu + posterior_scale * exp(logvar / 2) * eps``: the aggregate posterior (0: the means only).
        A random ``val_fraction`` of the molecules (at most 10,000) is held out; the weights with the best
        held-out log-likelihood (checked every ``eval_every`` steps) are kept. Adam with a cosine-decayed
        ``lr``; ``max_minutes`` stops training early. All randomness (split, batches, draws, permutations,
        initial weights) comes from ``seed``.
        """
        _check_training(steps, batch_size, lr, eval_every)
        gen = torch.Generator().manual_seed(seed)
        data = _prepare(z, mu_logvar, posterior_scale, val_fraction, gen)
        flow = _build(kind, data.mu.shape[1], transforms, hidden, seed)
        _train(flow, data, gen, steps=steps, batch_size=batch_size, lr=lr, eval_every=eval_every,
               max_minutes=max_minutes, progress=progress)
        return cls(flow, data.mean, data.std, kind=kind, transforms=transforms, hidden=hidden, seed=seed,
                   n_fitted=len(data.mu) + len(data.val))

    # ------------------------------------------------------------------ density and sampling
    @torch.no_grad()
    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``log p(z)`` per row, ``(N,)`` float64."""
        x = (torch.as_tensor(z).detach().float().cpu() - self.mean) / self.std
        log_det = torch.log(self.std.double()).sum()
        return _chunked_log_prob(self.flow, x).double() - log_det

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` latent points ``(n, Z)`` float32; the base noise comes from ``generator`` (else the global
        RNG), so the same seeded generator gives the same points."""
        eps = torch.randn(n, self.latent_dim, generator=generator)
        transform = self.flow().transform
        x = torch.cat([transform.inv(e) for e in eps.split(_CHUNK)]) if n else eps
        return x * self.std + self.mean

    # ------------------------------------------------------------------ files
    def metadata(self) -> dict[str, str]:
        """What :meth:`load` rebuilds the flow from (all strings, as safetensors wants)."""
        return {"format": FLOW_FORMAT, "kind": self.kind, "transforms": str(self.transforms),
                "hidden": str(self.hidden), "seed": str(self.seed), "n_fitted": str(self.n_fitted),
                "mean": json.dumps(self.mean.tolist()), "std": json.dumps(self.std.tolist())}

    def save(self, path: str | Path) -> Path:
        """Write the flow's parameters as safetensors and its hyperparameters as metadata, atomically."""
        from molvae.io import save_weights

        return save_weights(dict(self.flow.named_parameters()), path, metadata=self.metadata())

    @classmethod
    def load(cls, path: str | Path, latent_dim: int) -> "LatentFlow":
        """Read a saved flow: the zuko flow is rebuilt from the metadata and only its parameters are read
        (nothing is unpickled). A damaged file, one of another latent size or with non-finite values is a
        :class:`CheckpointError`."""
        from molvae.io import load_weights

        weights = load_weights(path)
        hp = _parse_metadata(read_metadata(path), path, latent_dim)
        try:
            flow = _build(hp["kind"], latent_dim, hp["transforms"], hp["hidden"], hp["seed"])
        except ConfigError as exc:
            raise CheckpointError(f"{path}: latent flow metadata is invalid ({exc})") from None
        _load_parameters(flow, weights, path)
        return cls(flow, hp["mean"], hp["std"], kind=hp["kind"], transforms=hp["transforms"],
                   hidden=hp["hidden"], seed=hp["seed"], n_fitted=hp["n_fitted"])


def load_latent_prior(path: str | Path, latent_dim: int) -> LatentMixture | LatentFlow:
    """The latent prior in ``path`` (``latent_prior.safetensors``), whichever kind its ``format`` names: a
    :class:`LatentFlow`, or a :class:`LatentMixture` (also for old files without a format)."""
    fmt = read_metadata(path).get("format")
    if fmt == FLOW_FORMAT:
        return LatentFlow.load(path, latent_dim)
    if fmt is None or fmt == MIXTURE_FORMAT:
        return LatentMixture.load(path, latent_dim)
    raise CheckpointError(f"{path}: unknown latent prior format {fmt!r}")


def read_metadata(path: str | Path) -> dict[str, str]:
    """A safetensors file's metadata (``{}`` if it has none) without reading its tensors."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:
        raise CheckpointError(f"{path}: corrupt or unreadable weights ({str(exc).splitlines()[0]})") from None


# ---------------------------------------------------------------------- helpers of fit
@dataclass
class _Data:
    """Training molecules' posteriors (``sigma`` 0: points), a fixed standardized validation set, and the
    standardization."""

    mu: torch.Tensor
    sigma: torch.Tensor
    val: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def batch(self, gen: torch.Generator, size: int) -> torch.Tensor:
        """``size`` standardized points: random molecules, fresh draws from their posteriors."""
        idx = torch.randint(len(self.mu), (size,), generator=gen)
        m, s = self.mu[idx], self.sigma[idx]
        return (m + s * torch.randn(m.shape, generator=gen) - self.mean) / self.std


def _prepare(z, mu_logvar, scale: float, val_fraction: float, gen: torch.Generator) -> _Data:
    """Check the inputs, hold out a random ``val_fraction`` of the molecules and standardize (the mean
    and standard deviation of the training points, or of the draws from their posteriors)."""
    z = _points(z, "z")
    n, d = z.shape
    if n < 2 or d < 2:
        raise ConfigError(f"a latent flow needs at least 2 points of dimension >= 2, got {tuple(z.shape)}")
    if not 0.0 < val_fraction < 1.0 or scale < 0:
        raise ConfigError(f"need 0 < val_fraction < 1 and posterior_scale >= 0, got {val_fraction}, {scale}")
    mu, sigma = z, torch.zeros_like(z)
    if mu_logvar is not None and scale > 0:
        mu, logvar = _points(mu_logvar[0], "mu"), _points(mu_logvar[1], "logvar")
        if mu.shape != z.shape or logvar.shape != z.shape:
            raise ConfigError(f"z, mu and logvar must have one shape, got {tuple(z.shape)}, {tuple(mu.shape)}, "
                              f"{tuple(logvar.shape)}")
        sigma = scale * torch.exp(0.5 * logvar)
    perm = torch.randperm(n, generator=gen)
    n_val = min(max(1, round(val_fraction * n)), 10_000, n - 1)
    tr, va = perm[n_val:], perm[:n_val]
    mean = mu[tr].mean(0)
    std = torch.sqrt(mu[tr].var(0, unbiased=False) + sigma[tr].pow(2).mean(0)).clamp_min(1e-6)
    val = (mu[va] + sigma[va] * torch.randn(n_val, d, generator=gen) - mean) / std
    return _Data(mu[tr], sigma[tr], val, mean, std)


def _check_training(steps: int, batch_size: int, lr: float, eval_every: int) -> None:
    if steps < 0 or batch_size < 1 or eval_every < 1 or not lr > 0:
        raise ConfigError(f"need steps >= 0, batch_size >= 1, eval_every >= 1 and lr > 0, got {steps}, "
                          f"{batch_size}, {eval_every}, {lr}")


def _points(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x).detach().float().cpu()
    if x.ndim != 2 or not bool(torch.isfinite(x).all()):
        raise ConfigError(f"{name} must be a finite (N, Z) array, got shape {tuple(x.shape)}")
    return x


def _train(flow: torch.nn.Module, data: _Data, gen: torch.Generator, *, steps: int, batch_size: int, lr: float,
           eval_every: int, max_minutes: float | None, progress: bool) -> None:
    """Adam on the negative log-likelihood with a cosine learning rate; leaves ``flow`` with its
    best-validation weights (the initial ones count too, so a diverged fit never wins)."""
    from molvae.progress import progress_bar

    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    best, best_state = _val_ll(flow, data.val), _copy_state(flow)
    deadline = time.monotonic() + 60.0 * max_minutes if max_minutes is not None else math.inf
    with progress_bar(steps, desc="latent flow", unit="step", disable=not progress) as bar:
        for step in range(1, steps + 1):
            loss = -flow().log_prob(data.batch(gen, batch_size)).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), 5.0)
            opt.step()
            sched.step()
            bar.update()
            last = step == steps or time.monotonic() > deadline
            if step % eval_every == 0 or last:
                ll = _val_ll(flow, data.val)
                if ll > best:  # (NaN never is)
                    best, best_state = ll, _copy_state(flow)
                bar.set_postfix(val_ll=f"{ll:.2f}", best=f"{best:.2f}")
            if last:
                break
    flow.load_state_dict(best_state)
    flow.eval()


def _val_ll(flow: torch.nn.Module, val: torch.Tensor) -> float:
    flow.eval()
    ll = float(_chunked_log_prob(flow, val).mean())
    flow.train()
    return ll


@torch.no_grad()
def _chunked_log_prob(flow: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    dist = flow()
    return torch.cat([dist.log_prob(c) for c in x.split(_CHUNK)]) if len(x) else x.new_zeros(0)


def _copy_state(flow: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in flow.state_dict().items()}


# ---------------------------------------------------------------------- helpers of load
def _parse_metadata(meta: dict[str, str], path, latent_dim: int) -> dict:
    """Hyperparameters from the metadata, checked: the format, the latent size, finite statistics."""
    if meta.get("format") != FLOW_FORMAT:
        raise CheckpointError(f"{path}: not a latent flow (format {meta.get('format')!r})")
    try:
        hp = {k: int(meta[k]) for k in ("transforms", "hidden", "seed", "n_fitted")}
        hp["kind"] = meta["kind"]
        mean, std = (torch.tensor(json.loads(meta[k]), dtype=torch.float32) for k in ("mean", "std"))
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: latent flow metadata is damaged ({type(exc).__name__}: {exc})") from None
    if not (1 <= hp["transforms"] <= 256 and 1 <= hp["hidden"] <= 16384 and hp["n_fitted"] >= 0):
        raise CheckpointError(f"{path}: latent flow metadata is damaged (transforms {hp['transforms']}, "
                              f"hidden {hp['hidden']}, n_fitted {hp['n_fitted']})")
    if mean.ndim != 1 or mean.shape != std.shape:
        raise CheckpointError(f"{path}: latent flow metadata is damaged (mean and std shapes differ)")
    if len(mean) != latent_dim:
        raise CheckpointError(f"{path}: latent flow of latent size {len(mean)} does not fit a model with "
                              f"latent size {latent_dim}")
    if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and bool((std > 0).all())):
        raise CheckpointError(f"{path}: latent flow has non-finite or non-positive statistics")
    return {**hp, "mean": mean, "std": std}


def _load_parameters(flow: torch.nn.Module, weights: dict[str, torch.Tensor], path) -> None:
    """Copy the file's tensors into the rebuilt flow's parameters; its buffers (masks, permutations, the
    base distribution) stay as rebuilt, so the file cannot change the flow's structure."""
    names = {k for k, _ in flow.named_parameters()}
    if set(weights) != names:
        odd = sorted(set(weights) ^ names)[0]
        raise CheckpointError(f"{path}: latent flow weights do not match its metadata (e.g. {odd!r})")
    if not all(bool(torch.isfinite(v).all()) for v in weights.values()):
        raise CheckpointError(f"{path}: latent flow has non-finite weights")
    try:
        flow.load_state_dict({**flow.state_dict(), **{k: v.float() for k, v in weights.items()}})
    except RuntimeError as exc:
        first = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), str(exc))
        raise CheckpointError(f"{path}: latent flow weights do not match its metadata ({first})") from None
