"""The budgeted oracle: every molecule scored once, charged once, logged in order, shared by workers.

Oracle calls are the cost of molecular optimization (PMO, Gao et al. 2022), so the accounting lives
in one place and in the study's database, not in each optimizer:

- molecules are keyed by canonical SMILES; a molecule already scored (by this process, an earlier
  run of the study, or another worker) is answered from the log for free;
- the budget is a hard limit: a call number is reserved inside a transaction that holds the
  study's budget row (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), and
  unique constraints on (study, SMILES) and (study, call number) back that up;
- scoring happens outside the transaction, so workers score in parallel; a row reserved by a worker
  that died before scoring it is filled in later by whoever meets it, without a second charge;
- constraint checks come before the oracle: a molecule that breaks one is recorded with the reason
  and not charged (the oracle was never asked);
- invalid molecules are not oracle calls (as in PMO) and are not recorded;
- slow objectives score a chunk in ``workers`` processes at once (the calls were reserved before, so
  the budget stays exact); an external program (``exec:CMD``) gets the chunk as one batch, and a batch
  it fails on stays reserved and unscored, to be scored by the next run that meets it.

Two tables in the storage URL hold this: ``molvae_oracle_studies`` (budget, counter, objective) and
``molvae_oracle_calls`` (one row per molecule: call number, SMILES, score(s), reason, worker, time).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from molvae.errors import ConfigError, ObjectiveError
from molvae.optimize.storage import make_engine, redact

__all__ = ["Oracle", "Answer", "worker_id"]

_IN_CHUNK = 500  # SMILES per IN (...) query
_FAIL_FAST = 20  # raise if the first calls of a process all fail inside the objective


@dataclass(frozen=True)
class Answer:
    """The oracle's answer for one molecule.

    ``status`` is one of ``new`` (scored now, charged), ``cached`` (scored before, free),
    ``invalid`` (not a molecule, free), ``violated`` (broke a constraint: ``reason``, free),
    ``over_budget`` (not scored: the budget is spent) or ``failed`` (the objective gave no score;
    charged, ``reason`` says why). ``score`` is the first objective's value, ``scores`` all of them.
    """

    smiles: str | None
    status: str
    score: float | None = None
    scores: tuple[float | None, ...] | None = None
    reason: str | None = None
    call: int | None = None

    @property
    def ok(self) -> bool:
        """True when the molecule has a score (new or cached)."""
        return self.score is not None and self.status in ("new", "cached")


def worker_id() -> str:
    """``host:pid:random`` naming this process in the call log."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _tables(metadata: Any) -> tuple[Any, Any]:
    import sqlalchemy as sa

    studies = sa.Table(
        "molvae_oracle_studies", metadata,
        sa.Column("study", sa.String(512), primary_key=True),
        sa.Column("objective", sa.Text, nullable=False),
        sa.Column("constraints", sa.Text, nullable=False),
        sa.Column("budget", sa.Integer, nullable=False),
        sa.Column("n_calls", sa.Integer, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    calls = sa.Table(
        "molvae_oracle_calls", metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("study", sa.String(512), nullable=False),
        sa.Column("smiles", sa.Text, nullable=False),
        sa.Column("call", sa.Integer, nullable=True),  # NULL: recorded but not charged (constraint)
        sa.Column("status", sa.String(16), nullable=False),  # pending | done | failed | violated | asked
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("scores", sa.Text, nullable=True),  # JSON list, one value per objective
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("worker", sa.String(256), nullable=True),
        sa.Column("time", sa.Float, nullable=False),  # unix time the call was reserved
        sa.Column("seconds", sa.Float, nullable=True),  # time spent scoring it
        sa.UniqueConstraint("study", "smiles", name="uq_molvae_oracle_smiles"),
        sa.UniqueConstraint("study", "call", name="uq_molvae_oracle_call"),
    )
    return studies, calls


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _with_timeout(objective: Any, timeout: float | None) -> Any:
    """An ``exec:`` objective with the given per-batch timeout (other objectives unchanged)."""
    program = getattr(objective, "program", None)
    if timeout is not None and program is not None:
        from molvae.objectives.program import check_timeout

        program.timeout = check_timeout(timeout)  # each get_objective() call builds its own Program
    return objective


def evaluate_batch(objectives: Sequence[Any], smiles: list[str],
                   mols: list[Any]) -> list[tuple[tuple[float | None, ...], str | None]]:
    """``(scores, reason)`` per molecule: batched objectives (external programs) see the whole list,
    the others one molecule at a time; an exception inside a per-molecule objective is that
    molecule's failure (its reason), while a failing program raises for the batch."""
    columns = []
    for obj in objectives:
        if getattr(obj, "batched", False):
            columns.append(obj.score_batch(smiles))
        else:
            columns.append([_score_one(obj, s, m) for s, m in zip(smiles, mols)])
    out = []
    for row in zip(*columns):
        scores = tuple(v for v, _ in row)
        reason = next((r for _, r in row if r is not None), None)
        out.append((scores, reason))
    return out


def _score_one(obj: Any, smiles: str, mol: Any) -> tuple[float | None, str | None]:
    try:
        v = obj.score_mol(mol) if hasattr(obj, "score_mol") else obj(smiles)
    except Exception as exc:  # a user objective that fails on one molecule
        return None, f"objective {obj.name} raised {type(exc).__name__}: {exc}"
    if v is None:
        return None, f"objective {obj.name} returned no score"
    v = float(v)
    if not np.isfinite(v):
        return None, f"objective {obj.name} returned {v}"
    return v, None


_WORKER_OBJECTIVES: list[Any] = []


def _init_worker(objectives: list[Any]) -> None:
    """Scoring process start-up: keep the objectives (inherited under fork, unpickled by spec otherwise)."""
    _WORKER_OBJECTIVES[:] = objectives


def _score_in_worker(smiles: list[str]) -> list[tuple[tuple[float | None, ...], str | None]]:
    from molvae.chem import parse_smiles

    return evaluate_batch(_WORKER_OBJECTIVES, smiles, [parse_smiles(s)[0] for s in smiles])


def _retrying(fn: Callable[[], Any], attempts: int = 8) -> Any:
    """Run a transaction, retrying on races that a database reports as errors.

    Two workers creating the same table or study row at once, or a serialization failure,
    surface as IntegrityError/OperationalError; the second attempt sees the first one's work.
    """
    import sqlalchemy as sa

    for attempt in range(attempts):
        try:
            return fn()
        except (sa.exc.IntegrityError, sa.exc.OperationalError, sa.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1) + 0.05 * np.random.random())
    return None  # pragma: no cover


class Oracle:
    """Score molecules under a hard budget with a cache and an ordered call log.

    ``Oracle(objective, budget)`` keeps its log in a private in-memory database; give ``storage``
    (an SQLAlchemy URL) and ``study`` to keep it in a file or share it between processes.
    ``objective`` is anything :func:`molvae.objectives.get_objective` accepts (a name, a spec
    string, a callable) or a list of them for several objectives. ``budget=None`` reuses the
    budget stored with an existing study (a new study needs one).

    >>> oracle = Oracle("qed", budget=100)
    >>> [a.score for a in oracle(["CCO", "CCO", "c1ccccc1"])]   # the second CCO is free

    :raises ObjectiveError: bad objective or constraint, or a study scored with other objectives.
    :raises StorageError: bad storage URL or unreachable database.
    """

    def __init__(
        self,
        objective: Any,
        budget: int | None,
        *,
        constraints: Sequence[Any] = (),
        storage: str | None = None,
        study: str = "molvae",
        worker: str | None = None,
        chunk: int = 32,
        workers: int = 1,
        timeout: float | None = None,
    ) -> None:
        from molvae.objectives import get_objective, parse_constraint

        specs = list(objective) if isinstance(objective, (list, tuple)) else [objective]
        if not specs:
            raise ObjectiveError("no objective given")
        self.objectives = [_with_timeout(get_objective(s), timeout) for s in specs]
        self.names = [o.name for o in self.objectives]
        if len(set(self.names)) != len(self.names):
            raise ObjectiveError(f"objectives must have distinct names, got {', '.join(self.names)}")
        self.constraints = [c if hasattr(c, "check") else parse_constraint(c) for c in constraints]
        if budget is not None and (not isinstance(budget, (int, np.integer)) or budget < 0):
            raise ObjectiveError(f"budget must be a non-negative integer, got {budget!r}")
        self.study = study
        self.storage = storage
        self.worker = worker or worker_id()
        self.chunk = _positive_int(chunk, "oracle batch")  # molecules reserved and scored per transaction
        self.workers = _positive_int(workers, "oracle workers")  # processes scoring a chunk at once
        self._pool: Any = None
        self.engine = make_engine(storage)
        self._studies, self._calls = self._create_tables()
        self.budget, self.n_calls = self._attach(None if budget is None else int(budget))
        self._cache: dict[str, Answer] = {}
        self.objective_seconds = 0.0  # time spent inside objectives and constraints (this process)
        self.db_seconds = 0.0  # time spent in the database (this process)
        self.n_new = 0  # calls charged by this process
        self._n_failed_first = 0
        self._load_cache()

    # ----------------------------------------------------------------- set-up
    def _create_tables(self) -> tuple[Any, Any]:
        import sqlalchemy as sa

        metadata = sa.MetaData()
        studies, calls = _tables(metadata)
        _retrying(lambda: metadata.create_all(self.engine, checkfirst=True))
        return studies, calls

    def _describe(self) -> tuple[str, str]:
        return ",".join(self.names), ",".join(getattr(c, "name", str(c)) for c in self.constraints)

    def _attach(self, budget: int | None) -> tuple[int, int]:
        import sqlalchemy as sa

        objective, constraints = self._describe()
        st = self._studies

        def txn() -> tuple[int, int]:
            with self.engine.begin() as conn:
                row = conn.execute(
                    sa.select(st).where(st.c.study == self.study).with_for_update()
                ).mappings().first()
                if row is None:
                    if budget is None:
                        raise ObjectiveError(f"study {self.study!r} does not exist yet: give a budget")
                    conn.execute(st.insert().values(
                        study=self.study, objective=objective, constraints=constraints,
                        budget=budget, n_calls=0, created=time.time()))
                    return budget, 0
                if row["objective"] != objective:
                    raise ObjectiveError(
                        f"study {self.study!r} in {redact(self.storage or 'memory')!r} scores objective "
                        f"{row['objective']!r}, not {objective!r}; use another study name")
                if row["constraints"] != constraints:
                    raise ObjectiveError(
                        f"study {self.study!r} uses constraints {row['constraints'] or '(none)'!r}, "
                        f"not {constraints or '(none)'!r}; use another study name")
                if budget is not None and budget < row["n_calls"]:
                    raise ConfigError(f"budget {budget} is below the {row['n_calls']} calls study "
                                      f"{self.study!r} has already made")
                if budget is not None and budget != row["budget"]:
                    conn.execute(st.update().where(st.c.study == self.study).values(budget=budget))
                    return budget, int(row["n_calls"])
                return int(row["budget"]), int(row["n_calls"])

        return _retrying(txn)

    def _load_cache(self) -> None:
        import sqlalchemy as sa

        c = self._calls
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(c.c.smiles, c.c.call, c.c.status, c.c.score, c.c.scores, c.c.reason)
                .where(c.c.study == self.study, c.c.status.notin_(("pending", "asked")))
            ).all()
        for r in rows:
            self._cache[r.smiles] = self._answer_from_row(r, "cached")

    @staticmethod
    def _answer_from_row(r: Any, status: str) -> Answer:
        scores = tuple(json.loads(r.scores)) if r.scores else None
        if r.status == "violated":
            return Answer(r.smiles, "violated", None, None, r.reason, None)
        if r.status == "failed":
            return Answer(r.smiles, "failed", None, scores, r.reason, r.call)
        return Answer(r.smiles, status, r.score, scores, r.reason, r.call)

    # ----------------------------------------------------------------- state
    @property
    def remaining(self) -> int:
        """Calls left, as of this process's last look at the shared counter."""
        return max(0, self.budget - self.n_calls)

    @property
    def exhausted(self) -> bool:
        """True once the budget is spent (by any worker, as of the last look)."""
        return self.n_calls >= self.budget

    def refresh(self) -> int:
        """Re-read the shared counter; returns the number of calls charged so far."""
        import sqlalchemy as sa

        st = self._studies
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(st.c.budget, st.c.n_calls).where(st.c.study == self.study)).first()
        self.budget, self.n_calls = int(row.budget), int(row.n_calls)
        return self.n_calls

    def set_budget(self, budget: int) -> None:
        """Change the study's budget (e.g. to continue a finished run further)."""
        self.budget, self.n_calls = self._attach(int(budget))

    # ----------------------------------------------------------------- scoring
    def __call__(self, smiles: Iterable[str | None]) -> list[Answer]:
        """Score a batch; see :class:`Answer` for what comes back (same order, same length)."""
        return self.score(smiles)

    def score(self, smiles: Iterable[str | None]) -> list[Answer]:
        """Score a batch of SMILES (anything RDKit parses; canonicalized here)."""
        from molvae.chem import parse_smiles, to_canonical

        items = list(smiles)
        answers: list[Answer | None] = [None] * len(items)
        mols: dict[str, Any] = {}
        todo: dict[str, list[int]] = {}  # canonical SMILES -> positions, first occurrence first
        for i, smi in enumerate(items):
            mol = None
            if isinstance(smi, str) and smi:
                mol, _ = parse_smiles(smi)
            elif smi is not None and hasattr(smi, "GetNumAtoms"):
                mol = smi
            if mol is None:
                answers[i] = Answer(smi if isinstance(smi, str) else None, "invalid")
                continue
            can = to_canonical(mol)
            if can in self._cache:
                answers[i] = self._cache[can]
                continue
            if can in todo:
                todo[can].append(i)
            else:
                todo[can] = [i]
                mols[can] = mol
        if todo:
            fresh = self._score_new(list(todo), mols)
            for can, positions in todo.items():
                first = fresh[can]
                answers[positions[0]] = first
                for p in positions[1:]:  # repeats inside the batch are free
                    answers[p] = self._as_cached(first)
        return answers  # type: ignore[return-value]

    @staticmethod
    def _as_cached(a: Answer) -> Answer:
        if a.status in ("new", "cached"):
            return Answer(a.smiles, "cached", a.score, a.scores, a.reason, a.call)
        return a

    def violation(self, mol: Any) -> str | None:
        """Why the molecule breaks a constraint of the study, or None."""
        return self._check(mol)

    def _check(self, mol: Any) -> str | None:
        from molvae.objectives import evaluate_constraints

        if not self.constraints:
            return None
        return evaluate_constraints(mol, self.constraints)

    def _evaluate(self, smiles: list[str], mols: dict[str, Any]) -> list[tuple[tuple[float | None, ...], str | None]]:
        """``(scores, reason)`` per molecule, in ``self.workers`` processes when there are several."""
        if self.workers == 1 or len(smiles) < 2:
            return evaluate_batch(self.objectives, smiles, [mols[s] for s in smiles])
        if self._pool is None:
            from molvae._pool import process_pool

            self._pool = process_pool(self.workers, initializer=_init_worker, initargs=(self.objectives,))
        k = -(-len(smiles) // self.workers)
        slices = [smiles[i:i + k] for i in range(0, len(smiles), k)]
        return [r for part in self._pool.map(_score_in_worker, slices) for r in part]

    def _score_new(self, smiles: list[str], mols: dict[str, Any]) -> dict[str, Answer]:
        # Reserve, score and record in small chunks: workers interleave finely, a killed worker
        # leaves at most one chunk unscored, and the shared counter is re-read often.
        out: dict[str, Answer] = {}
        for k in range(0, len(smiles), self.chunk):
            out.update(self._score_chunk(smiles[k:k + self.chunk], mols))
        return out

    def _reserve(self, smiles: list[str], violated: dict[str, str],
                 now: float) -> tuple[dict[str, Any], list[tuple[str, int]], int, int]:
        """One transaction: look up what the study already has, record the violated molecules and
        reserve call numbers for the rest while the budget lasts. Returns the known rows, the
        ``(smiles, call)`` reserved, the budget and the calls used."""
        import sqlalchemy as sa

        st, c = self._studies, self._calls
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(st.c.budget, st.c.n_calls).where(st.c.study == self.study).with_for_update()
            ).first()
            budget, n_calls = int(row.budget), int(row.n_calls)
            known: dict[str, Any] = {}
            for k in range(0, len(smiles), _IN_CHUNK):
                chunk = smiles[k:k + _IN_CHUNK]
                for r in conn.execute(
                    sa.select(c.c.smiles, c.c.call, c.c.status, c.c.score, c.c.scores, c.c.reason)
                    .where(c.c.study == self.study, c.c.smiles.in_(chunk))
                ):
                    known[r.smiles] = r
            rows, reserved = [], []
            for s in smiles:
                if s in known:
                    continue
                if s in violated:
                    rows.append(dict(study=self.study, smiles=s, call=None, status="violated",
                                     reason=violated[s], worker=self.worker, time=now))
                elif n_calls < budget:
                    n_calls += 1
                    reserved.append((s, n_calls))
                    rows.append(dict(study=self.study, smiles=s, call=n_calls, status="pending",
                                     reason=None, worker=self.worker, time=now))
            if rows:
                conn.execute(c.insert(), rows)
            if reserved:
                conn.execute(st.update().where(st.c.study == self.study).values(n_calls=n_calls))
            return known, reserved, budget, n_calls

    def _score_chunk(self, smiles: list[str], mols: dict[str, Any]) -> dict[str, Answer]:
        out: dict[str, Answer] = {}
        # 1. constraints (cheap, local, never charged)
        t0 = time.perf_counter()
        violated = {}
        for s in smiles:
            reason = self._check(mols[s])
            if reason is not None:
                violated[s] = reason
        self.objective_seconds += time.perf_counter() - t0
        # 2. one transaction: look up what the study already has, reserve call numbers for the rest
        now = time.time()
        t0 = time.perf_counter()
        known, reserved, self.budget, self.n_calls = _retrying(lambda: self._reserve(smiles, violated, now))
        self.db_seconds += time.perf_counter() - t0

        # 3. score what was reserved, and rows another (perhaps dead) worker reserved but never scored
        updates, failures = [], []
        to_score = list(reserved) + [(s, r.call) for s, r in known.items() if r.status == "pending"]
        reserved_set = set(reserved)
        t0 = time.perf_counter()
        results = self._evaluate([s for s, _ in to_score], mols)  # an external program's failure raises here
        seconds = (time.perf_counter() - t0) / max(1, len(to_score))
        self.objective_seconds += seconds * len(to_score)
        for (s, call), (scores, reason) in zip(to_score, results):
            status = "failed" if scores[0] is None else "done"
            updates.append(dict(_s=s, _status=status, _score=scores[0], _scores=json.dumps(scores),
                                _reason=reason, _seconds=seconds))
            mine = (s, call) in reserved_set
            if mine:
                self.n_new += 1
                failures.append((status, reason))
            answer = Answer(s, "new" if mine else "cached", scores[0], scores, reason, call)
            if status == "failed":
                answer = Answer(s, "failed", None, scores, reason, call)
            out[s] = answer
        if updates:
            t0 = time.perf_counter()
            _retrying(lambda: self._write_scores(updates))
            self.db_seconds += time.perf_counter() - t0
        for status, reason in failures:  # after the write: what was scored stays scored
            self._fail_fast(status, reason)
        for s, r in known.items():
            if r.status != "pending":
                out[s] = self._answer_from_row(r, "cached")
        for s in smiles:
            if s in out:
                if out[s].status != "new":
                    self._cache[s] = out[s]
                else:
                    self._cache[s] = self._as_cached(out[s])
            elif s in violated:
                out[s] = Answer(s, "violated", reason=violated[s])
                self._cache[s] = out[s]
            else:
                out[s] = Answer(s, "over_budget")
        return out

    def _write_scores(self, updates: list[dict[str, Any]]) -> None:
        import sqlalchemy as sa

        c = self._calls
        stmt = (
            c.update()
            .where(c.c.study == self.study, c.c.smiles == sa.bindparam("_s"), c.c.status == "pending")
            .values(status=sa.bindparam("_status"), score=sa.bindparam("_score"),
                    scores=sa.bindparam("_scores"), reason=sa.bindparam("_reason"),
                    seconds=sa.bindparam("_seconds"))
        )
        with self.engine.begin() as conn:
            conn.execute(stmt, updates)

    def _fail_fast(self, status: str, reason: str | None) -> None:
        if self._n_failed_first < 0:
            return
        if status == "done":
            self._n_failed_first = -1  # one success: the objective works
            return
        self._n_failed_first += 1
        if self._n_failed_first >= _FAIL_FAST:
            raise ObjectiveError(f"the objective failed on the first {_FAIL_FAST} molecules: {reason}")

    def finish_pending(self) -> int:
        """Score rows reserved by workers that died before scoring them (no new charge)."""
        import sqlalchemy as sa
        from molvae.chem import parse_smiles

        c = self._calls
        with self.engine.connect() as conn:
            pending = [r.smiles for r in conn.execute(
                sa.select(c.c.smiles).where(c.c.study == self.study, c.c.status == "pending"))]
        if pending:
            mols = {s: parse_smiles(s)[0] for s in pending}
            self._score_new(pending, mols)
        return len(pending)

    # ----------------------------------------------------------------- ask / tell
    def known(self, smiles: Sequence[str]) -> set[str]:
        """Which of these canonical SMILES the study has a row for (scored, asked, pending or violated)."""
        import sqlalchemy as sa

        c, found = self._calls, set()
        with self.engine.connect() as conn:
            for k in range(0, len(smiles), _IN_CHUNK):
                chunk = list(smiles[k:k + _IN_CHUNK])
                found.update(r.smiles for r in conn.execute(
                    sa.select(c.c.smiles).where(c.c.study == self.study, c.c.smiles.in_(chunk))))
        return found

    def outstanding(self) -> list[str]:
        """Molecules asked for and not yet told, oldest first."""
        import sqlalchemy as sa

        c = self._calls
        with self.engine.connect() as conn:
            return [r.smiles for r in conn.execute(
                sa.select(c.c.smiles).where(c.c.study == self.study, c.c.status == "asked").order_by(c.c.id))]

    def record_asked(self, smiles: Sequence[str], violated: dict[str, str] | None = None) -> None:
        """Record proposals sent out for scoring (not charged until told) and constraint violations."""
        now, violated = time.time(), violated or {}
        rows = [dict(study=self.study, smiles=s, call=None, status="asked", reason=None, worker=self.worker, time=now)
                for s in smiles]
        rows += [dict(study=self.study, smiles=s, call=None, status="violated", reason=r, worker=self.worker,
                      time=now) for s, r in violated.items()]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(self._calls.insert(), rows)

    def tell(self, scores: Sequence[tuple[str, float | None]]) -> dict[str, int]:
        """Record measured scores (canonical SMILES, score or None for a failed measurement) in one
        transaction: each molecule not scored before is charged one call, in the order given; one
        scored before is left as it is. Returns ``{"charged": n, "already": n}``.

        :raises ConfigError: more new molecules than calls left (nothing is recorded then).
        """
        import sqlalchemy as sa

        st, c = self._studies, self._calls
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(st.c.budget, st.c.n_calls).where(st.c.study == self.study)
                               .with_for_update()).first()
            budget, n_calls = int(row.budget), int(row.n_calls)
            rows = {r.smiles: r.status for k in range(0, len(scores), _IN_CHUNK) for r in conn.execute(
                sa.select(c.c.smiles, c.c.status).where(
                    c.c.study == self.study, c.c.smiles.in_([s for s, _ in scores[k:k + _IN_CHUNK]])))}
            new = [(s, v) for s, v in scores if rows.get(s) in (None, "asked")]
            if len(new) > budget - n_calls:
                raise ConfigError(f"{len(new)} new scores but only {budget - n_calls} of the study's {budget} calls "
                                  "are left: nothing was recorded; raise the budget (--budget) and tell again")
            now = time.time()
            for s, v in new:
                n_calls += 1
                values = dict(call=n_calls, status="done" if v is not None else "failed", score=v,
                              scores=json.dumps([v]), reason=None if v is not None else "told without a score",
                              worker=self.worker, time=now)
                if rows.get(s) == "asked":
                    conn.execute(c.update().where(c.c.study == self.study, c.c.smiles == s).values(**values))
                else:
                    conn.execute(c.insert().values(study=self.study, smiles=s, **values))
            conn.execute(st.update().where(st.c.study == self.study).values(n_calls=n_calls))
        self.budget, self.n_calls = budget, n_calls
        self._cache.clear()
        self._load_cache()
        return {"charged": len(new), "already": len(scores) - len(new)}

    # ----------------------------------------------------------------- the log
    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` best scored molecules of the study (all workers), best first."""
        import sqlalchemy as sa

        c = self._calls
        t0 = time.perf_counter()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(c.c.smiles, c.c.score)
                .where(c.c.study == self.study, c.c.status == "done", c.c.score.is_not(None))
                .order_by(c.c.score.desc(), c.c.id).limit(int(k))
            ).all()
        self.db_seconds += time.perf_counter() - t0
        return [(r.smiles, float(r.score)) for r in rows]

    def log(self) -> pd.DataFrame:
        """Every molecule the study recorded, in call order.

        Columns: ``call`` (1.. for charged calls, NA for constraint violations, which are not
        charged), ``smiles``, ``score`` (first objective), one column per objective when there are
        several, ``status``, ``reason``, ``worker``, ``time``, ``seconds``.
        """
        import sqlalchemy as sa

        c = self._calls
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(c.c.call, c.c.smiles, c.c.score, c.c.scores, c.c.status, c.c.reason,
                          c.c.worker, c.c.time, c.c.seconds)
                .where(c.c.study == self.study).order_by(c.c.id)
            ).mappings().all()
        df = pd.DataFrame([dict(r) for r in rows],
                          columns=["call", "smiles", "score", "scores", "status", "reason", "worker",
                                   "time", "seconds"])
        df["call"] = df["call"].astype("Int64")
        df["score"] = df["score"].astype(float)
        if len(self.names) > 1:
            parsed = [json.loads(s) if isinstance(s, str) else [None] * len(self.names) for s in df["scores"]]
            for j, name in enumerate(self.names):
                df[name] = pd.array([p[j] for p in parsed], dtype="Float64").astype(float)
        return df.drop(columns="scores").reset_index(drop=True)

    def close(self) -> None:
        """Release database connections and the scoring processes."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        self.engine.dispose()

    def __repr__(self) -> str:
        return (f"Oracle({','.join(self.names)!r}, budget={self.budget}, calls={self.n_calls}, "
                f"study={self.study!r}, storage={redact(self.storage or 'memory')!r})")
