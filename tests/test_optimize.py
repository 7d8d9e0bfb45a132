"""Latent-space optimization: the budgeted oracle, its storage, the strategies, the CLI, and workers.

The oracle tests use plain Python objectives (no model); the optimizer tests use the session's tiny
model. Tests marked ``postgres`` need ``MOLVAE_TEST_POSTGRES_URL`` (``scripts/start_postgres.sh``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from molvae.cli import main
from molvae.errors import ObjectiveError
from molvae.optimize import METHODS, OptimizationResult, Oracle, StorageError, optimize

from conftest import read_sample

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("MOLVAE_TEST_POSTGRES_URL")
needs_pg = pytest.mark.skipif(
    not PG_URL, reason="MOLVAE_TEST_POSTGRES_URL is not set (start a server with scripts/start_postgres.sh)")


def heavy_atoms(smiles: str) -> float:
    from rdkit import Chem

    return float(Chem.MolFromSmiles(smiles).GetNumHeavyAtoms())


# --------------------------------------------------------------------------- the oracle


def test_oracle_charges_each_new_molecule_once_and_stops_at_the_budget():
    oracle = Oracle(heavy_atoms, budget=3)
    answers = oracle(["CCO", "OCC", "not a smiles", None, "c1ccccc1", "CCO", "CCCC", "CCCCC"])
    assert [a.status for a in answers] == ["new", "cached", "invalid", "invalid", "new", "cached", "new",
                                           "over_budget"]
    assert answers[1].score == answers[0].score == 3.0  # OCC is CCO: canonical SMILES is the key
    assert [a.call for a in answers if a.status == "new"] == [1, 2, 3]
    assert oracle.n_calls == 3 and oracle.exhausted
    again = oracle(["c1ccccc1", "CCCCC"])  # repeats stay free after the budget is spent
    assert [a.status for a in again] == ["cached", "over_budget"]
    log = oracle.log()
    assert log["call"].tolist() == [1, 2, 3]
    assert log["smiles"].tolist() == ["CCO", "c1ccccc1", "CCCC"]
    assert log["score"].tolist() == [3.0, 6.0, 4.0]
    assert log["time"].is_monotonic_increasing and log["worker"].nunique() == 1


def test_oracle_records_constraint_violations_with_reason_and_no_charge():
    oracle = Oracle("qed", budget=10, constraints=["mw<=100"])
    answers = oracle(["CCO", "CC(=O)Nc1ccc(O)cc1"])
    assert answers[0].status == "new"
    assert answers[1].status == "violated" and "mw" in answers[1].reason
    assert oracle.n_calls == 1
    log = oracle.log()
    assert len(log) == 2
    row = log[log["smiles"] == "CC(=O)Nc1ccc(O)cc1"].iloc[0]
    assert pd.isna(row["call"]) and row["status"] == "violated" and "mw" in row["reason"]
    assert oracle(["CC(=O)Nc1ccc(O)cc1"])[0].status == "violated"  # remembered, still free


def test_oracle_log_survives_in_a_file_and_is_shared_without_recharging(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = Oracle("qed", budget=4, storage=url, study="s")
    first(["CCO", "CCN"])
    first.close()
    second = Oracle("qed", budget=None, storage=url, study="s")  # budget taken from the study
    assert second.budget == 4 and second.n_calls == 2
    answers = second(["CCO", "CCC", "CCCC", "CCCCC"])
    assert [a.status for a in answers] == ["cached", "new", "new", "over_budget"]
    second.set_budget(5)  # continue a finished study further
    assert second(["CCCCC"])[0].call == 5
    assert second.log()["call"].tolist() == [1, 2, 3, 4, 5]
    with pytest.raises(ObjectiveError, match="scores objective 'qed'"):
        Oracle("logp", budget=4, storage=url, study="s")


def test_oracle_fills_rows_a_dead_worker_reserved_without_charging_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"

    def dies_on_benzene(smiles: str) -> float:
        if smiles == "c1ccccc1":
            raise KeyboardInterrupt  # the process is killed between reserving and scoring
        return 1.0

    dying = Oracle(dies_on_benzene, budget=10, storage=url, study="s")
    with pytest.raises(KeyboardInterrupt):
        dying(["CCO", "c1ccccc1"])
    dying.close()
    def revived(smiles: str) -> float:  # the same objective, in a fresh process
        return 2.0

    revived.__name__ = "dies_on_benzene"
    fresh = Oracle(revived, budget=None, storage=url, study="s")  # both calls were charged, neither scored
    assert fresh.n_calls == 2
    assert set(fresh.log()["status"]) == {"pending"}
    assert fresh.finish_pending() == 2
    log = fresh.log()
    assert log["status"].tolist() == ["done", "done"] and log["call"].tolist() == [1, 2]
    assert fresh.n_calls == 2 and fresh.n_new == 0


@pytest.mark.parametrize("url, needle", [
    ("not a url", "bad storage URL"),
    ("nosuchdb://user@host/db", "unknown database dialect"),
    ("sqlite:////no/such/directory/study.db", "does not exist"),
    ("postgresql://nobody@127.0.0.1:9/db", "cannot open storage"),
])
def test_bad_storage_urls_raise_one_line_errors(url, needle):
    with pytest.raises(StorageError, match=needle) as exc:
        Oracle("qed", budget=5, storage=url)
    assert "\n" not in str(exc.value)


# --------------------------------------------------------------------------- strategies on the tiny model


def _check_log(result: OptimizationResult, budget: int) -> None:
    charged = result.df[result.df["call"].notna()]
    assert charged["call"].tolist() == list(range(1, len(charged) + 1))  # call order, no gap
    assert len(charged) <= budget
    assert result.df["smiles"].is_unique  # no molecule charged (or even recorded) twice
    assert result.df["score"].notna().sum() == (result.df["status"] == "done").sum()


@pytest.mark.parametrize("method", ["population", "tpe", "random", "gp", "gradient"])
def test_each_method_spends_the_budget_on_distinct_molecules(tiny_model, method):
    result = optimize(tiny_model, "qed", budget=40, method=method, n_decode=2, seed=1, progress=False,
                      patience=400)
    _check_log(result, 40)
    assert result.stats["stopped"] == "budget spent", result.stats
    assert int(result.df["call"].notna().sum()) == 40
    best = result.best(5)
    assert best["score"].is_monotonic_decreasing and best["score"].iloc[0] == result.df["score"].max()


def test_cmaes_when_available(tiny_model):
    pytest.importorskip("cmaes")
    result = optimize(tiny_model, "qed", budget=30, method="cmaes", progress=False, patience=400)
    _check_log(result, 30)


def test_same_seed_same_run_other_seed_other_run(tiny_model):
    runs = [optimize(tiny_model, "qed", budget=25, method="population", seed=s, progress=False)
            for s in (3, 3, 4)]
    assert runs[0].df["smiles"].tolist() == runs[1].df["smiles"].tolist()
    assert runs[0].df["smiles"].tolist() != runs[2].df["smiles"].tolist()


def test_seeds_are_scored_first_and_constraints_to_the_seed_are_logged(tiny_model, tmp_path):
    seeds = tmp_path / "seeds.smi"
    seeds.write_text("CCOC(=O)c1ccccc1\nnot_a_molecule\nCC(=O)Nc1ccc(O)cc1\n")
    result = optimize(tiny_model, "qed", budget=30, seeds=str(seeds), constraints=["similarity>=0.2"],
                      out=tmp_path / "run", progress=False, patience=400)
    charged = result.df[result.df["call"].notna()]
    assert set(charged["smiles"].iloc[:2]) == {"CCOC(=O)c1ccccc1", "CC(=O)Nc1ccc(O)cc1"}
    rejects = pd.read_csv(tmp_path / "run" / "seed_rejects.csv")
    assert rejects["line"].tolist() == [2]
    violated = result.df[result.df["status"] == "violated"]
    assert len(violated) > 0 and violated["reason"].str.contains("similarity").all()
    assert violated["call"].isna().all()


def test_two_objectives_give_a_pareto_front_and_plots(tiny_model, tmp_path):
    result = optimize(tiny_model, ["qed", "logp"], budget=40, method="nsga2", out=tmp_path,
                      progress=False, patience=400, options={"batch": 10})
    _check_log(result, 40)
    assert len(result.pareto()) >= 1
    front = result.pareto()
    values = result.scored[["qed", "logp"]].to_numpy()
    for a, b in front[["qed", "logp"]].to_numpy():  # nothing beats a front member on both objectives
        assert not np.any((values[:, 0] >= a) & (values[:, 1] >= b) & ((values[:, 0] > a) | (values[:, 1] > b)))
    rest = result.scored[~result.scored["smiles"].isin(front["smiles"])][["qed", "logp"]].to_numpy()
    fv = front[["qed", "logp"]].to_numpy()
    for v in rest:  # everything else is beaten by a front member
        assert np.any(np.all(fv >= v, axis=1) & np.any(fv > v, axis=1))
    for name in ["progress.png", "pareto.png", "best_molecules.png"]:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"calls.csv", "best.csv", "pareto.csv", "summary.json"} <= {p.name for p in tmp_path.iterdir()}


def test_methods_are_checked(tiny_model):
    with pytest.raises(Exception, match="unknown method"):
        optimize(tiny_model, "qed", budget=5, method="annealing", progress=False)
    with pytest.raises(Exception, match="several objectives"):
        optimize(tiny_model, "qed", budget=5, method="nsga2", progress=False)
    assert "population" in METHODS


# --------------------------------------------------------------------------- the CLI


def _one_line_error(capsys, code, needle):
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("molvae optimize: error:") and needle in err, err


@pytest.mark.parametrize("args, needle", [
    (["--objective", "no_such_objective"], "no_such_objective"),
    (["--objective", "smarts:C(((("], "SMARTS"),
    (["--objective", "qed", "--storage", "postgres:/nowhere"], "storage"),
    (["--objective", "qed", "--storage", "sqlite:////no/such/dir/x.db"], "does not exist"),
    (["--objective", "qed", "--constraint", "sa<=lots"], "sa<=lots"),
])
def test_cli_bad_input_is_one_line(tiny_model, tmp_path, capsys, args, needle):
    code = main(["optimize", str(tiny_model.path), "--budget", "5", "--out", str(tmp_path / "r"), "--quiet", *args])
    _one_line_error(capsys, code, needle)


def test_cli_run_then_resume_continues_the_log(tiny_model, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["optimize", str(tiny_model.path), "--objective", "qed", "--out", str(out), "--quiet", "--seed", "2"]
    assert main(base + ["--budget", "20"]) == 0
    first = pd.read_csv(out / "calls.csv")
    assert first["call"].tolist() == list(range(1, 21))
    assert capsys.readouterr().out.startswith("call,smiles,score")
    code = main(base + ["--budget", "30"])  # the study exists: refuse to silently mix runs
    _one_line_error(capsys, code, "--resume")
    assert main(base + ["--budget", "35", "--resume"]) == 0
    second = pd.read_csv(out / "calls.csv")
    assert second["call"].tolist() == list(range(1, 36))
    pd.testing.assert_frame_equal(second.iloc[:20][["call", "smiles", "score"]], first[["call", "smiles", "score"]])
    assert second["smiles"].is_unique


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "molvae", "optimize", *args]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # CI has 2 cores for several processes


def test_killed_run_resumes_without_recharging(tiny_model, tmp_path):
    out, db = tmp_path / "run", tmp_path / "run" / "study.db"
    cmd = _cli(str(tiny_model.path), "--objective", "qed", "--budget", "100000", "--out", str(out), "--quiet",
               "--patience", "100000")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT, env=ENV)
    n_before = _wait_for_calls(f"sqlite:///{db}", "molvae", 60, proc)  # some scored, a batch perhaps not yet
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = Oracle("qed", budget=None, storage=f"sqlite:///{db}", study="molvae").log()
    n_killed = int(killed["call"].max())
    assert n_killed >= n_before
    done = subprocess.run(cmd[:cmd.index("--budget") + 1] + [str(n_killed + 40)] + cmd[cmd.index("--budget") + 2:]
                          + ["--resume"], capture_output=True, text=True, cwd=ROOT, timeout=300, env=ENV)
    assert done.returncode == 0, done.stderr
    log = pd.read_csv(out / "calls.csv")
    assert log["call"].tolist() == list(range(1, n_killed + 41))  # continuous, nothing charged twice
    assert log["smiles"].is_unique and (log["status"] == "done").all()  # rows the kill left pending are filled
    before = killed[killed["status"] == "done"].set_index("call")
    assert len(before) > 0
    after = log.set_index("call").loc[before.index.astype(int)]
    assert after["smiles"].tolist() == before["smiles"].tolist()
    assert np.allclose(after["score"].to_numpy(float), before["score"].to_numpy(float))


def _wait_for_calls(url: str, study: str, n: int, proc: subprocess.Popen, timeout: float = 120) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                with engine.connect() as conn:
                    got = conn.execute(sa.text("SELECT n_calls FROM molvae_oracle_studies WHERE study = :s"),
                                       {"s": study}).scalar()
                    done = conn.execute(sa.text("SELECT count(*) FROM molvae_oracle_calls WHERE study = :s "
                                                "AND status = 'done'"), {"s": study}).scalar()
                if got is not None and got >= n and done > 0:
                    return int(got)
            except sa.exc.OperationalError:  # tables not created yet
                pass
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise AssertionError(f"fewer than {n} calls after {timeout} s")


# --------------------------------------------------------------------------- several workers, one study

SLOW_OBJECTIVE = textwrap.dedent('''
    import os
    import time
    from pathlib import Path
    from rdkit import Chem
    from rdkit.Chem import QED

    ARRIVED = Path(__file__).with_name("arrived")
    _waited = False

    def _meet_the_other_worker() -> None:
        """Hold each worker's first call until the other has made one too: a worker that starts
        seconds late (imports on a loaded machine) would otherwise find the budget spent."""
        global _waited
        if _waited:
            return
        _waited = True
        ARRIVED.mkdir(exist_ok=True)
        (ARRIVED / str(os.getpid())).touch()
        deadline = time.monotonic() + 120
        while len(list(ARRIVED.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)

    def slow_qed(smiles: str) -> float:
        _meet_the_other_worker()
        time.sleep(0.01)  # an oracle that costs something, so the workers overlap
        return QED.qed(Chem.MolFromSmiles(smiles))
''')


def _two_workers(tiny_model, tmp_path, url: str, study: str, budget: int = 200,
                 method: str = "population") -> pd.DataFrame:
    objective = tmp_path / "slow.py"
    objective.write_text(SLOW_OBJECTIVE)
    procs = [subprocess.Popen(
        _cli(str(tiny_model.path), "--objective", f"{objective}:slow_qed", "--budget", str(budget), "--storage", url,
             "--study", study, "--worker", "--out", str(tmp_path / f"w{i}"), "--quiet", "--seed", str(i),
             "--patience", "5000", "--method", method),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    log = Oracle(f"{objective}:slow_qed", budget=None, storage=url, study=study).log()
    charged = log[log["call"].notna()]
    assert charged["call"].sort_values().tolist() == list(range(1, budget + 1))  # budget respected across both
    assert log["smiles"].is_unique  # no molecule scored twice
    assert (log["status"] == "done").all()
    assert log["worker"].nunique() == 2, log["worker"].value_counts()  # both did real work
    for i in range(2):  # each worker's result covers the whole study
        assert len(pd.read_csv(tmp_path / f"w{i}" / "calls.csv")) >= 1
    return log


def test_two_workers_share_one_sqlite_study(tiny_model, tmp_path):
    _two_workers(tiny_model, tmp_path, f"sqlite:///{tmp_path / 'shared.db'}", "shared")


@pytest.mark.postgres
@needs_pg
def test_two_workers_share_one_postgres_study(tiny_model, tmp_path):
    _two_workers(tiny_model, tmp_path, PG_URL, f"test-{uuid.uuid4().hex[:8]}")


@pytest.mark.postgres
@needs_pg
@pytest.mark.parametrize("method", ["reinvent", "selfies_ga", "screened_ga"])
def test_two_workers_of_the_generator_methods_share_one_postgres_study(tiny_model, tmp_path, method):
    _two_workers(tiny_model, tmp_path, PG_URL, f"test-{method}-{uuid.uuid4().hex[:8]}", budget=120, method=method)


@pytest.mark.postgres
@needs_pg
def test_postgres_oracle_budget_is_atomic_under_contention():
    """Four processes race to score overlapping batches; the budget and uniqueness hold exactly."""
    study = f"race-{uuid.uuid4().hex[:8]}"
    script = textwrap.dedent(f'''
        import random, sys
        from molvae.optimize import Oracle
        smiles = sys.stdin.read().split()
        oracle = Oracle("qed", budget=None, storage={PG_URL!r}, study={study!r})
        rnd = random.Random(int(sys.argv[1]))
        for _ in range(30):
            oracle(rnd.sample(smiles, 10))
    ''')
    Oracle("qed", budget=75, storage=PG_URL, study=study).close()
    pool = "\n".join(read_sample(200))
    procs = [subprocess.Popen([sys.executable, "-c", script, str(i)], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, env=ENV) for i in range(4)]
    for p in procs:
        p.stdin.write(pool)
        p.stdin.close()
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    log = Oracle("qed", budget=None, storage=PG_URL, study=study).log()
    assert log["call"].tolist() == list(range(1, 76)) and log["smiles"].is_unique


def test_cli_lists_objectives(capsys):
    assert main(["optimize", "--list-objectives"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"qed", "penalized_logp", "celecoxib_rediscovery", "valsartan_smarts"} <= set(names)


def test_an_objective_that_always_fails_stops_the_run_with_one_error():
    def broken(smiles: str) -> float:
        raise RuntimeError("licence server down")

    oracle = Oracle(broken, budget=100)
    with pytest.raises(ObjectiveError, match="licence server down"):
        oracle([s for s in read_sample(60)])
    log = oracle.log()
    assert (log["status"] == "failed").sum() >= 20 and log["reason"].str.contains("licence").all()


def test_sampler_trials_are_recorded_in_the_shared_study_and_resumed(tiny_model, tmp_path):
    import optuna

    first = optimize(tiny_model, "qed", budget=20, method="tpe", out=tmp_path, progress=False, patience=400)
    study = optuna.load_study(study_name="molvae", storage=f"sqlite:///{tmp_path / 'study.db'}")
    n_first = len(study.trials)
    assert n_first == first.stats["latent_points"]
    t = study.best_trial
    assert len(t.user_attrs["u"]) == tiny_model.latent_dim and t.user_attrs["smiles"] in set(first.df["smiles"])
    second = optimize(tiny_model, "qed", budget=40, method="tpe", out=tmp_path, resume=True, progress=False,
                      patience=400)
    study = optuna.load_study(study_name="molvae", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.trials) == n_first + second.stats["latent_points"]
    assert len({tr.user_attrs["worker"] for tr in study.trials}) == 2
    _check_log(second, 40)


def test_latent_space_and_gradient_use_the_models_vampprior(tmp_path):
    """Fresh points and the ascent's prior term follow the model's VampPrior, not N(0, I)."""
    import torch

    from molvae import MolVAE
    from molvae.optimize.gradient import _log_prior
    from molvae.optimize.latent import LatentSpace

    model = MolVAE.fit(read_sample(200), out=tmp_path / "vamp", preset="tiny", epochs=1, prior="vampprior",
                       vamp_components=8, vamp_length=8, progress=False)
    with torch.no_grad():  # move every posterior, hence every mixture component, to +1.5 per coordinate
        model.net.to_mu.weight.zero_()
        model.net.to_mu.bias.fill_(1.5)
        model.net.to_logvar.weight.zero_()
        model.net.to_logvar.bias.fill_(np.log(0.05))
    vamp_points = LatentSpace(model, seed=0).prior(400)
    assert abs(vamp_points.mean() - 1.5) < 0.2  # N(0, I) points would average 0

    z = torch.zeros(4, model.latent_dim, requires_grad=True)
    (grad,) = torch.autograd.grad(_log_prior(model)(z).sum(), z)
    assert (grad > 0).all()  # uphill towards the mixture at +1.5; N(0, I)'s gradient at 0 is 0


def test_latent_space_encodes_what_it_can_and_marks_the_rest(tiny_model):
    from molvae.optimize.latent import LatentSpace

    space = LatentSpace(tiny_model)
    good = ["CCO", "c1ccccc1O", "CC(=O)N", "CCN"]
    mixed = [good[0], "C" * 500, good[1], "[Xe]", good[2], good[3]]  # too long; a token the model lacks
    z = space.encode(mixed)
    assert np.isnan(z[[1, 3]]).all() and not np.isnan(z[[0, 2, 4, 5]]).any()
    np.testing.assert_allclose(z[[0, 2, 4, 5]], LatentSpace(tiny_model).encode(good), atol=1e-5)
