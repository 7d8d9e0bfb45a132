"""``optimize()``: one entry point for every strategy, and the result every run returns.

A run is an optuna study in an RDB storage (a SQLite file in ``out`` by default) plus the oracle's
call log in the same database. ``resume=True`` continues a study (molecules already scored are not
charged again), ``worker=True`` joins a study that other processes may be running right now.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from molvae.errors import ConfigError
from molvae.optimize import DEFAULT_METHOD, METHODS
from molvae.optimize.storage import StorageError, check_url, default_url, redact

__all__ = ["optimize", "OptimizationResult", "METHODS", "DEFAULT_METHOD"]


@dataclass
class OptimizationResult:
    """Every molecule a run scored, in call order, with helpers to rank and plot them.

    ``df`` columns: ``call`` (oracle call number; NA for molecules rejected by a constraint, which
    are not charged), ``smiles``, ``score`` (first objective), one column per objective when there
    are several, ``status`` (done / failed / violated), ``reason``, ``worker``, ``time``, ``seconds``.
    """

    df: pd.DataFrame
    objectives: list[str]
    method: str
    budget: int
    study: str
    storage: str | None
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def scored(self) -> pd.DataFrame:
        """Rows with a score, in call order."""
        return self.df[self.df["status"].eq("done") & self.df["score"].notna()]

    def best(self, k: int = 10) -> pd.DataFrame:
        """The ``k`` best molecules by the first objective (ties: earlier call first)."""
        return self.scored.sort_values(["score", "call"], ascending=[False, True]).head(k).reset_index(drop=True)

    def pareto(self) -> pd.DataFrame:
        """Molecules no other scored molecule beats on every objective (all maximized).

        With one objective this is the best molecule(s).
        """
        cols = self.objectives if len(self.objectives) > 1 else ["score"]
        df = self.scored.dropna(subset=cols)
        if df.empty:
            return df.reset_index(drop=True)
        values = df[cols].to_numpy(float)
        keep = [i for i, v in enumerate(values)
                if not np.any(np.all(values >= v, axis=1) & np.any(values > v, axis=1))]
        return df.iloc[sorted(keep)].sort_values(cols[0], ascending=False).reset_index(drop=True)

    def auc(self, k: int = 10, freq: int = 100, budget: int | None = None) -> float:
        """PMO's AUC of the top-``k`` mean against oracle calls (see :func:`molvae.objectives.auc_top_k`)."""
        from molvae.objectives import auc_top_k

        charged = self.df[self.df["call"].notna()].sort_values("call")
        scores = [None if pd.isna(s) else float(s) for s in charged["score"]]
        return auc_top_k(scores, budget=budget or self.budget, k=k, freq=freq)

    def plot(self, out_dir: str | Path, n_mols: int = 12) -> list[Path]:
        """Write the progress curve, the Pareto scatter (two objectives) and a grid of the best molecules."""
        from molvae.optimize.plots import plot_result

        return plot_result(self, out_dir, n_mols=n_mols)

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write ``calls.csv`` (the whole log), ``best.csv``, ``summary.json`` and, with several objectives,
        ``pareto.csv``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "calls.csv", out / "best.csv", out / "summary.json"]
        self.df.to_csv(paths[0], index=False)
        self.best(100).to_csv(paths[1], index=False)
        if len(self.objectives) > 1:
            paths.append(out / "pareto.csv")
            self.pareto().to_csv(paths[-1], index=False)
        paths[2].write_text(json.dumps(self.summary(), indent=2, default=str) + "\n")
        return paths

    def summary(self) -> dict[str, Any]:
        """Settings, counts, timings and the best molecules, as a JSON-ready dict."""
        best = self.best(3)
        return {
            "objectives": self.objectives, "method": self.method, "budget": self.budget,
            "study": self.study, "storage": redact(self.storage) if self.storage else "memory",
            "calls": int(self.df["call"].notna().sum()),
            "best": [{"smiles": s, "score": float(v)} for s, v in zip(best["smiles"], best["score"])],
            "auc_top10": self.auc() if self.budget else None,
            **self.stats,
        }

    def __repr__(self) -> str:
        top = self.best(1)
        best = f"{top['score'].iloc[0]:.4g} {top['smiles'].iloc[0]}" if len(top) else "none"
        return (f"OptimizationResult({'+'.join(self.objectives)}, method={self.method}, "
                f"calls={int(self.df['call'].notna().sum())}/{self.budget}, best={best})")


# --------------------------------------------------------------------------- helpers


def _load_model(model: Any) -> Any:
    if isinstance(model, (str, Path)):
        from molvae import MolVAE

        return MolVAE.load(model)
    for attr in ("encode", "decode", "latent_dim"):
        if not hasattr(model, attr):
            raise ConfigError(f"model must be a MolVAE or a model directory, got {type(model).__name__}")
    return model


def _read_seeds(seeds: Any, out: Path | None) -> list[str]:
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
    :returns: :class:`OptimizationResult` over the whole study (every worker's molecules).
    :raises ObjectiveError: bad objective or constraint. :raises StorageError: bad or unreachable
        storage, a study that exists without ``resume``/``worker``, or ``resume`` with none.
    """
    import optuna
    from molvae.progress import progress_bar

    from molvae.optimize.base import Search
    from molvae.optimize.latent import LatentSpace
    from molvae.optimize.oracle import Oracle, worker_id
    from molvae.optimize.storage import optuna_storage

    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    started = time.perf_counter()
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    url = storage if storage is not None else (default_url(out_dir) if out_dir is not None else None)
    study_name = study_name or "molvae"
    if budget is None and not resume:
        raise ConfigError("budget is required for a new study")

    # objectives and constraints first: a typo should not cost a model load or a database
    from molvae.objectives import get_objective, parse_constraint

    objectives = [get_objective(o) for o in _names(objective)]
    if url is not None:
        check_url(url)
    model = _load_model(model)
    seed_smiles = _read_seeds(seeds, out_dir)
    parsed_constraints = [c if hasattr(c, "check") else
                          parse_constraint(c, start=seed_smiles[0] if seed_smiles else None) for c in constraints]

    ostorage = optuna_storage(url)
    exists = _study_exists(ostorage, study_name)
    if exists and not (resume or worker):
        raise StorageError(f"study {study_name!r} already exists in {redact(url)!r}: pass resume=True "
                           "(--resume) to continue it, worker=True (--worker) to join it, or another study name")
    if resume and not exists and not worker:
        raise StorageError(f"nothing to resume: no study {study_name!r} in {redact(url or 'memory')!r}")
    me = worker_id()
    oracle = Oracle(objectives, budget, constraints=parsed_constraints, storage=url, study=study_name, worker=me)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=study_name, storage=ostorage, load_if_exists=True,
                                directions=["maximize"] * len(objectives))
    if not exists:
        study.set_user_attr("molvae", {"objectives": [o.name for o in objectives],
                                       "specs": [o.spec for o in objectives], "method": method,
                                       "model": str(getattr(model, "path", "") or ""), "created": time.time()})
    n_pending = oracle.finish_pending() if (resume or worker) else 0
    # a worker's random stream must differ from its siblings' or they would propose the same points
    run_seed = seed if not worker else int(np.random.SeedSequence([seed, abs(hash(me)) % 2**32]).generate_state(1)[0])
    rng = np.random.default_rng(run_seed)
    space = LatentSpace(model, bound=bound, n_decode=n_decode, temperature=temperature, seed=run_seed)
    bar = progress_bar(total=oracle.budget, disable=not progress, desc=f"optimize {'+'.join(o.name for o in objectives)}",
               unit="call", initial=min(oracle.n_calls, oracle.budget))
    search = Search(space=space, oracle=oracle, rng=rng, study=study, patience=patience,
                    max_points=max_points, progress=bar)
    opts = dict(options or {})
    seed_points = None
    search_started = time.perf_counter()
    try:
        if seed_smiles:
            answers = search.score_smiles(seed_smiles)
            ranked = sorted((a for a in answers if a.ok), key=lambda a: -a.score)
            z = space.encode([a.smiles for a in ranked])
            seed_points = z[~np.isnan(z).any(axis=1)]
        if method == "population":
            from molvae.optimize.population import run_population

            run_population(search, **opts)
        elif method == "gradient":
            from molvae.optimize.gradient import run_gradient

            run_gradient(search, **opts)
        else:
            from molvae.optimize.samplers import run_sampler

            run_sampler(search, method, seed=run_seed, seed_points=seed_points, **opts)
        if search.stopped is None:
            search.stopped = "finished"
    finally:
        bar.close()
    wall = time.perf_counter() - started
    search_s = time.perf_counter() - search_started
    oracle.refresh()
    stats = {
        "stopped": search.stopped, "worker": me, "seed": seed, "n_decode": n_decode,
        "temperature": temperature, "bound": bound, "options": opts,
        "latent_points": search.n_points, "decoded": space.n_decoded, "invalid_decodes": space.n_invalid,
        "calls_this_worker": oracle.n_new, "pending_finished": n_pending,
        "wall_s": round(wall, 3), "oracle_s": round(oracle.objective_seconds, 3),
        "db_s": round(oracle.db_seconds, 3),
        "search_s": round(search_s, 3),
        "optimizer_s_per_1000_calls": round(1000 * (search_s - oracle.objective_seconds) / max(1, oracle.n_new), 3),
        "python": platform.python_version(), "machine": platform.machine(),
    }
    result = OptimizationResult(df=oracle.log(), objectives=[o.name for o in objectives], method=method,
                                budget=oracle.budget, study=study_name, storage=url, stats=stats)
    oracle.close()
    if out_dir is not None:
        result.save(out_dir)
        result.plot(out_dir)
    return result
