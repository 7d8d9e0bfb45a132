"""``optimize()``: one entry point for every strategy, and the result every run returns.

A run is an optuna study in an RDB storage (a SQLite file in ``out`` by default) plus the oracle's
call log in the same database. ``resume=True`` continues a study (molecules already scored are not
charged again), ``worker=True`` joins a study that other processes may be running right now.
"""

from __future__ import annotations

import inspect
import platform
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from molvae.errors import ConfigError
from molvae.optimize.latent import LatentSpace
from molvae.optimize.methods import DEFAULT_METHOD, METHODS
from molvae.optimize.result import OptimizationResult  # re-exported, it lived here before
from molvae.optimize.storage import StorageError, check_url, default_url, redact

__all__ = ["optimize", "OptimizationResult", "METHODS", "DEFAULT_METHOD"]


# --------------------------------------------------------------------------- helpers


def load_model(model: Any) -> Any:
    if isinstance(model, (str, Path)):
        from molvae.api import MolVAE

        return MolVAE.load(model)
    for attr in ("encode", "decode", "latent_dim"):
        if not hasattr(model, attr):
            raise ConfigError(f"model must be a MolVAE or a model directory, got {type(model).__name__}")
    return model


def read_seeds(seeds: Any, out: Path | None) -> list[str]:
    """Canonical SMILES of the usable seeds; unusable ones are counted and written to seed_rejects.csv."""
    from molvae.chem import parse_smiles, to_canonical
    from molvae.data import read_smiles
    from molvae.errors import DataError

    if seeds is None:
        return []
    if isinstance(seeds, str) and not Path(seeds).exists() and parse_smiles(seeds)[0] is not None:
        seeds = [seeds]  # one SMILES given directly
    table = read_smiles(seeds)
    good, rejects = [], []
    for _, row in table.iterrows():
        mol, reason = parse_smiles(row["input"]) if isinstance(row["input"], str) else (None, "empty")
        if mol is None:
            rejects.append({"line": row["line"], "input": row["input"], "reason": reason})
        else:
            good.append(to_canonical(mol))
    if rejects:
        import sys

        where = f"; written to {out / 'seed_rejects.csv'}" if out is not None else ""
        print(f"molvae optimize: {len(rejects)} of {len(table)} seed molecules are invalid and skipped{where}",
              file=sys.stderr)
        if out is not None:
            pd.DataFrame(rejects).to_csv(out / "seed_rejects.csv", index=False)
    if not good:
        raise DataError(f"no usable seed molecule among {len(table)} rows")
    return list(dict.fromkeys(good))


def _study_exists(storage: Any, name: str) -> bool:
    import optuna

    return any(s.study_name == name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)) \
        if not isinstance(storage, optuna.storages.InMemoryStorage) else False


def _names(objective: Any) -> list[Any]:
    return list(objective) if isinstance(objective, (list, tuple)) else [objective]


# --------------------------------------------------------------------------- the entry point


def optimize(
    model: Any,
    objective: Any,
    budget: int | None = 1000,
    method: str = DEFAULT_METHOD,
    *,
    seeds: Any = None,
    constraints: Sequence[Any] = (),
    storage: str | None = None,
    study_name: str | None = None,
    resume: bool = False,
    worker: bool = False,
    out: str | Path | None = None,
    n_decode: int = 1,
    temperature: float = 1.0,
    bound: float = 3.0,
    seed: int = 0,
    patience: int = 3000,
    max_points: int | None = None,
    options: dict[str, Any] | None = None,
    oracle_workers: int = 1,
    oracle_timeout: float | None = None,
    oracle_batch: int = 32,
    progress: bool = True,
) -> OptimizationResult:
    """Search the model's latent space for molecules that maximize ``objective`` under an oracle budget.

    :param model: a :class:`~molvae.MolVAE` or a model directory.
    :param objective: a name (``qed``, a PMO task, ``similarity:<SMILES>``, ...), a callable
        ``f(smiles) -> float``, an :class:`~molvae.objectives.Objective`, or a list of them for
        several objectives (method ``nsga2``).
    :param budget: oracle calls (new molecules scored) allowed for the whole study, all workers
        together; ``None`` with ``resume`` keeps the stored budget.
    :param method: one of :data:`METHODS`.
    :param seeds: starting molecules (a file, a list of SMILES or one SMILES): scored first (they
        cost calls) and the search starts from the best of them.
    :param constraints: constraint specs (``similarity>=0.4``, ``sa<=4.5``, ``mw=200..500``,
        ``alerts``; a similarity without a reference is to the first seed). A molecule that breaks
        one is recorded with the reason and not charged.
    :param storage: SQLAlchemy URL of the study (``postgresql://...`` to share it between workers);
        default ``sqlite:///OUT/study.db``, or memory when ``out`` is None.
    :param resume: continue an existing study (nothing scored before is charged again).
    :param worker: join the study if it exists (other workers may be running), create it if not.
    :param n_decode: molecules decoded per latent point (greedy + sampled at ``temperature``).
    :param bound: latent box ``|z_i| <= bound`` (plus the prior's 99.9% radius).
    :param patience: stop after this many latent points in a row that found no new molecule.
    :param max_points: stop after this many latent points (this worker).
    :param options: strategy keywords (e.g. ``{"population": 200}`` for ``population``).
    :param oracle_workers: processes scoring each batch at once (slow objectives, e.g. docking).
    :param oracle_timeout: seconds an ``exec:`` program may take per batch (default 600).
    :param oracle_batch: molecules reserved and scored per batch (an ``exec:`` program's batch size).
    :returns: :class:`OptimizationResult` over the whole study (every worker's molecules).
    :raises ObjectiveError: bad objective or constraint. :raises StorageError: bad or unreachable
        storage, a study that exists without ``resume``/``worker``, or ``resume`` with none.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    run_strategy, opts = _strategy(method), _check_options(method, options)  # a typo costs no model load
    started = time.perf_counter()
    if budget is None and not resume:
        raise ConfigError("budget is required for a new study")
    study_name = study_name or "molvae"
    out_dir, url = _output(out, storage)
    objectives, model, seed_smiles, parsed_constraints = _inputs(objective, url, model, seeds, constraints, out_dir)
    oracle_settings = {"workers": oracle_workers, "timeout": oracle_timeout, "chunk": oracle_batch}
    oracle, study, me, n_pending = _open_study(objectives, budget, parsed_constraints, url, study_name, method, model,
                                               resume, worker, oracle_settings)
    # a worker's random stream must differ from its siblings' or they would propose the same points
    run_seed = seed if not worker else int(np.random.SeedSequence([seed, abs(hash(me)) % 2**32]).generate_state(1)[0])
    try:
        space = LatentSpace(model, bound=bound, n_decode=n_decode, temperature=temperature, seed=run_seed)
        search_started = time.perf_counter()
        search = _run_search(run_strategy, method, opts, space, oracle, study, seed_smiles, run_seed, patience,
                             max_points, progress, objectives)
        search_s = time.perf_counter() - search_started
        oracle.refresh()
        stats = {"stopped": search.stopped, "worker": me, "seed": seed, "n_decode": n_decode,
                 "temperature": temperature, "bound": bound, "options": opts,
                 **_stats(search, space, oracle, n_pending, started, search_s)}
        result = OptimizationResult(df=oracle.log(), objectives=[o.name for o in objectives], method=method,
                                    budget=oracle.budget, study=study_name, storage=url, stats=stats)
    finally:
        oracle.close()
    if out_dir is not None:
        result.save(out_dir)
        result.plot(out_dir)
    return result


def _output(out: str | Path | None, storage: str | None) -> tuple[Path | None, str | None]:
    """The output folder (created) and the storage URL (default: a SQLite file in it; None: memory)."""
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise ConfigError(f"{out_dir}: exists and is not a directory (--out names the run's folder)")
        out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir, storage if storage is not None else (default_url(out_dir) if out_dir is not None else None)


def _inputs(objective: Any, url: str | None, model: Any, seeds: Any, constraints: Sequence[Any],
            out_dir: Path | None) -> tuple[list, Any, list[str], list]:
    """Objectives, the model, the seed molecules and the constraints; objectives and the storage URL
    first, so that a typo costs no model load or database."""
    from molvae.objectives import get_objective, parse_constraint

    objectives = [get_objective(o) for o in _names(objective)]
    if url is not None:
        check_url(url)
    model = load_model(model)
    seed_smiles = read_seeds(seeds, out_dir)
    parsed = [c if hasattr(c, "check") else parse_constraint(c, start=seed_smiles[0] if seed_smiles else None)
              for c in constraints]
    return objectives, model, seed_smiles, parsed


def _strategy(method: str) -> Callable[..., None]:
    """The function that runs a strategy on a :class:`~molvae.optimize.base.Search`."""
    if method == "population":
        from molvae.optimize.population import run_population

        return run_population
    if method == "gradient":
        from molvae.optimize.gradient import run_gradient

        return run_gradient
    if method == "reinvent":
        from molvae.optimize.reinvent import run_reinvent

        return run_reinvent
    if method in ("selfies_ga", "graph_ga", "screened_ga"):
        from molvae.optimize import genetic

        return getattr(genetic, f"run_{method}")
    from molvae.optimize.samplers import run_sampler

    return run_sampler


_RUNNER_ARGS = ("search", "name", "seed", "seed_points")
"""Parameters of a strategy function that ``optimize`` fills itself (not ``--option`` keys)."""


def _check_options(method: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """``options`` checked against the strategy's keyword parameters, before any model or study exists.

    :raises ConfigError: an unknown key (the message lists the allowed ones), or ``graph_share`` beside
        ``latent_share="auto"``, which would silently ignore it.
    """
    opts = dict(options or {})
    allowed = [name for name in inspect.signature(_strategy(method)).parameters if name not in _RUNNER_ARGS]
    unknown = sorted(k for k in opts if k not in allowed)
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r} for method {method}; allowed: "
                          f"{', '.join(allowed) or 'none'} (--option KEY=VALUE)")
    if opts.get("latent_share") == "auto" and "graph_share" in opts:  # the shares adapt: graph_share unused
        raise ConfigError("graph_share cannot be set with latent_share=auto (the GA then sets every move's "
                          "share from how often its children enter the population)")
    return opts


def _open_study(objectives: list, budget: int | None, constraints: list, url: str | None, study_name: str,
                method: str, model: Any, resume: bool, worker: bool,
                oracle_settings: dict[str, Any] | None = None) -> tuple[Any, Any, str, int]:
    """The oracle (``oracle_settings``: its workers, timeout and chunk) and the optuna study (created,
    resumed or joined), this worker's id, and how many pending calls of an interrupted run were finished."""
    import optuna

    from molvae.optimize.oracle import Oracle, worker_id
    from molvae.optimize.storage import optuna_storage

    ostorage = optuna_storage(url)
    exists = _study_exists(ostorage, study_name)
    if exists and not (resume or worker):
        raise StorageError(f"study {study_name!r} already exists in {redact(url)!r}: pass resume=True "
                           "(--resume) to continue it, worker=True (--worker) to join it, or another study name")
    if resume and not exists and not worker:
        raise StorageError(f"nothing to resume: no study {study_name!r} in {redact(url or 'memory')!r}")
    me = worker_id()
    oracle = Oracle(objectives, budget, constraints=constraints, storage=url, study=study_name, worker=me,
                    **(oracle_settings or {}))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=study_name, storage=ostorage, load_if_exists=True,
                                directions=["maximize"] * len(objectives))
    if not exists:
        study.set_user_attr("molvae", {"objectives": [o.name for o in objectives],
                                       "specs": [o.spec for o in objectives], "method": method,
                                       "model": str(getattr(model, "path", "") or ""), "created": time.time()})
    return oracle, study, me, oracle.finish_pending() if (resume or worker) else 0


def _run_search(run_strategy: Callable[..., None], method: str, opts: dict[str, Any], space: Any, oracle: Any,
                study: Any, seed_smiles: list[str], run_seed: int, patience: int, max_points: int | None,
                progress: bool, objectives: list) -> Any:
    """Score the seeds, then run the strategy until the budget, patience or ``max_points`` stops it."""
    from molvae.optimize.base import Search
    from molvae.progress import progress_bar

    bar = progress_bar(total=oracle.budget, disable=not progress, desc=f"optimize {'+'.join(o.name for o in objectives)}",
                       unit="call", initial=min(oracle.n_calls, oracle.budget))
    search = Search(space=space, oracle=oracle, rng=np.random.default_rng(run_seed), study=study, patience=patience,
                    max_points=max_points, progress=bar)
    seed_points = None
    try:
        if seed_smiles:
            answers = search.score_smiles(seed_smiles)
            ranked = sorted((a for a in answers if a.ok), key=lambda a: -a.score)
            z = space.encode([a.smiles for a in ranked])
            seed_points = z[~np.isnan(z).any(axis=1)]
        if method in ("population", "gradient", "reinvent", "selfies_ga", "graph_ga", "screened_ga"):
            run_strategy(search, **opts)
        else:
            run_strategy(search, method, seed=run_seed, seed_points=seed_points, **opts)
        if search.stopped is None:
            search.stopped = "finished"
    finally:
        bar.close()
    return search


def _stats(search: Any, space: Any, oracle: Any, n_pending: int, started: float, search_s: float) -> dict[str, Any]:
    """Counts and timings of a run, for ``summary.json``."""
    return {
        "latent_points": search.n_points, "decoded": space.n_decoded, "invalid_decodes": space.n_invalid,
        "calls_this_worker": oracle.n_new, "pending_finished": n_pending,
        "wall_s": round(time.perf_counter() - started, 3), "oracle_s": round(oracle.objective_seconds, 3),
        "db_s": round(oracle.db_seconds, 3),
        "search_s": round(search_s, 3),
        "optimizer_s_per_1000_calls": round(1000 * (search_s - oracle.objective_seconds) / max(1, oracle.n_new), 3),
        "python": platform.python_version(), "machine": platform.machine(),
    }
