"""Optuna samplers over the latent vector: TPE, CMA-ES, GP, random, and NSGA-II for several objectives.

Each latent coordinate is an optuna parameter ``u{i}`` in the unit cube (``u = Phi(z)``, see
:mod:`molvae.optimize.latent`), bounded to ``|z_i| <= bound``, so the samplers' uniform priors are
the VAE's prior. Seed molecules, when given, are enqueued as the first trials and the search box
shrinks to a trust region ``z_best +- trust`` around the best of them (every sampler then explores
near a good, decodable point; CMA-ES starts at its centre). Trials are asked
and told in batches, so decoding runs batched; a trial's value is the best score among the
molecules its point decodes to, or a finite penalty when none could be scored.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from molvae.errors import ConfigError
from molvae.optimize.base import Search

__all__ = ["SAMPLERS", "make_sampler", "run_sampler"]

SAMPLERS = ("tpe", "cmaes", "gp", "random", "nsga2")

# Points asked per batch: TPE/GP learn from each answer, random/NSGA-II need no feedback inside a batch.
_BATCH = {"tpe": 16, "cmaes": 0, "gp": 4, "random": 64, "nsga2": 50}
_GP_WINDOW = 300  # GP fits on the best and most recent trials only (exact GPs are cubic in trials)


def _windowed_gp(seed: int) -> Any:
    """optuna's GPSampler fitted on at most ``_GP_WINDOW`` trials: the best half and the latest half."""
    import optuna
    from optuna.samplers import GPSampler
    from optuna.trial import TrialState

    class WindowedGPSampler(GPSampler):
        def _sample_relative_impl(  # type: ignore[override]
            self, study, completed_trials, running_trials, search_space
        ):
            if len(completed_trials) > _GP_WINDOW:
                done = [t for t in completed_trials if t.state == TrialState.COMPLETE]
                best = sorted(done, key=lambda t: t.values[0], reverse=True)[: _GP_WINDOW // 2]
                keep = {t.number for t in best}
                recent = [t for t in reversed(done) if t.number not in keep][: _GP_WINDOW - len(best)]
                completed_trials = sorted(best + recent, key=lambda t: t.number)
            return super()._sample_relative_impl(study, completed_trials, running_trials, search_space)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return WindowedGPSampler(seed=seed, n_startup_trials=20, deterministic_objective=True)


def make_sampler(name: str, *, seed: int, dim: int) -> Any:
    """The optuna sampler called ``name`` (one of :data:`SAMPLERS`)."""
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True,
                                          n_startup_trials=min(100, 10 + dim))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return _windowed_gp(seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=_BATCH["nsga2"])
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise ConfigError("method cmaes needs the cmaes package: pip install cmaes") from None
        return optuna.samplers.CmaEsSampler(seed=seed, use_separable_cma=dim > 64, warn_independent_sampling=False)
    raise ConfigError(f"unknown sampler {name!r}; expected one of {', '.join(SAMPLERS)}")


def run_sampler(search: Search, name: str, *, seed: int, seed_points: np.ndarray | None = None,
                batch: int | None = None, trust: float = 1.5) -> None:
    """Run an optuna study with sampler ``name`` until the search says stop.

    ``seed_points`` (best first): encoded seed molecules, enqueued as the first trials when the
    study is new; the box becomes ``seed_points[0] +- trust`` (within the prior box). The study
    (``search.study``) already exists; other workers may be adding to it.
    """
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState

    space = search.space
    multi = search.n_objectives > 1
    if multi != (name == "nsga2"):
        raise ConfigError(f"method {name} is for {'several objectives' if name == 'nsga2' else 'one objective'}; "
                          f"this run has {search.n_objectives}")
    lo, hi = np.full(space.dim, -space.bound), np.full(space.dim, space.bound)
    if seed_points is not None and len(seed_points):
        centre = np.clip(seed_points[0], -space.bound, space.bound)
        lo, hi = np.maximum(lo, centre - trust), np.minimum(hi, centre + trust)
    ulo, uhi = space.to_unit(lo), space.to_unit(hi)
    dists = {f"u{i}": FloatDistribution(float(a), float(b)) for i, (a, b) in enumerate(zip(ulo, uhi))}
    mirror = _Mirror(search.study, make_sampler(name, seed=seed, dim=space.dim), search.oracle.worker, dists)
    study = mirror.local
    if seed_points is not None and mirror.fresh:
        for z in seed_points[:10]:
            u = np.clip(space.to_unit(space.project(z)), ulo, uhi)
            study.enqueue_trial({f"u{i}": float(v) for i, v in enumerate(u)}, skip_if_exists=True)
    if batch is None:
        batch = _BATCH[name] or 4 + int(3 * np.log(space.dim))  # CMA-ES: one generation per batch
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    while not search.should_stop():
        mirror.pull()
        trials = [study.ask(dists) for _ in range(batch)]
        u = np.array([[t.params[f"u{i}"] for i in range(space.dim)] for t in trials])
        points = search.evaluate(space.from_unit(u))
        for trial, point in zip(trials, points):
            if point.smiles is not None:
                trial.set_user_attr("smiles", point.smiles)
            if point.unscored and point.value is None:
                study.tell(trial, state=TrialState.FAIL)  # budget ran out before its molecules were scored
            elif multi:
                study.tell(trial, list(search.values_of(point)))
            else:
                study.tell(trial, search.value_of(point))
        mirror.push(trials)


class _Mirror:
    """Ask and tell on a fast in-memory copy of the study; keep the shared RDB study in step.

    optuna's RDB storage writes a trial's parameters one query at a time (a few milliseconds per
    latent dimension, i.e. a quarter of a second per trial at 64 dimensions). So the sampler works
    on an in-memory study, and each finished trial goes to the shared study in one transaction
    with its latent point as one JSON user attribute (``u``, unit-cube coordinates), its value,
    ``smiles`` and ``worker``. Before each batch, trials that other workers (or an earlier run of a
    resumed study) wrote are copied in, so the shared study is what ``resume`` and workers read.
    """

    def __init__(self, shared: Any, sampler: Any, worker: str, dists: dict[str, Any]) -> None:
        import optuna

        self.shared, self.worker, self.dists = shared, worker, dists
        self.fresh = not shared.get_trials(deepcopy=False)
        self.seen: set[int] = set()
        self.direct = isinstance(shared._storage, optuna.storages.InMemoryStorage)  # nothing to mirror
        if self.direct:
            shared.sampler = sampler
            self.local = shared
        else:
            self.local = optuna.create_study(directions=shared.directions, sampler=sampler,
                                             storage=optuna.storages.InMemoryStorage())
            self.pull()

    def pull(self) -> None:
        """Copy finished trials that are in the shared study but not here (other workers', earlier runs')."""
        from optuna.trial import TrialState, create_trial

        if self.direct:
            return
        for t in self.shared.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
            if t._trial_id in self.seen:
                continue
            self.seen.add(t._trial_id)
            u = t.user_attrs.get("u")
            if t.user_attrs.get("worker") == self.worker or not isinstance(u, list) or len(u) != len(self.dists):
                continue
            params = {name: float(np.clip(v, d.low, d.high)) for (name, d), v in zip(self.dists.items(), u)}
            self.local.add_trial(create_trial(
                state=t.state, values=t.values if t.state == TrialState.COMPLETE else None, params=params,
                distributions=self.dists, user_attrs=t.user_attrs, system_attrs=t.system_attrs))

    def push(self, trials: list[Any]) -> None:
        """Write this batch's finished trials to the shared study, one transaction each."""
        from optuna.trial import TrialState, create_trial

        if self.direct:
            return
        for trial in trials:
            frozen = self.local._storage.get_trial(trial._trial_id)
            attrs = {**frozen.user_attrs, "worker": self.worker, "u": [frozen.params[n] for n in self.dists]}
            self.shared.add_trial(create_trial(
                state=frozen.state, values=frozen.values if frozen.state == TrialState.COMPLETE else None,
                user_attrs=attrs, system_attrs=frozen.system_attrs))
