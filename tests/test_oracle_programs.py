"""Oracles chemists really have: external programs (``exec:``), parallel scoring, directions and transforms."""

from __future__ import annotations

import math
import shlex
import sys
from pathlib import Path

import pytest

from molvae.cli import main
from molvae.errors import ObjectiveError
from molvae.objectives import get_objective
from molvae.objectives.program import ProgramError
from molvae.optimize import Oracle, optimize

PROGRAM = Path(__file__).with_name("oracle_program.py")
MOLECULES = ["CCO", "c1ccccc1", "CCN(CC)CC", "CC(=O)Oc1ccccc1C(=O)O", "CCCl", "OCC(O)CO"]


def exec_spec(*args: str) -> str:
    return "exec:" + " ".join(shlex.quote(a) for a in (sys.executable, str(PROGRAM), *args))


# --------------------------------------------------------------------------- exec: objectives


def test_exec_objective_scores_a_batch_in_order_with_nan_as_no_score(tmp_path):
    sizes = tmp_path / "sizes.txt"
    oracle = Oracle(exec_spec("log", str(sizes)), budget=100, chunk=4)
    answers = oracle(MOLECULES)
    from rdkit import Chem

    for smi, a in zip(MOLECULES, answers):
        can = Chem.MolToSmiles(Chem.MolFromSmiles(smi))
        if "Cl" in can:
            assert a.status == "failed" and "nan" in a.reason
        else:
            assert a.status == "new" and a.score == pytest.approx(len(can) / 10, abs=1e-3)
    assert [int(x) for x in sizes.read_text().split()] == [4, 2]  # one program run per batch of 4
    assert oracle.n_calls == len(MOLECULES)  # a nan is a charged call, like any failed score


@pytest.mark.parametrize("mode, message", [
    ("crash", "exited with status 3 on a batch of 3 molecules: docking engine: licence not found"),
    ("miscount", "printed 2 score lines for a batch of 3 molecules"),
    ("text", "line 1 of its output for a batch of 3 molecules is 'error', not a number"),
])
def test_a_failing_program_is_an_error_and_its_batch_stays_reserved(mode, message):
    oracle = Oracle(exec_spec(mode), budget=10)
    with pytest.raises(ProgramError, match=message):
        oracle(MOLECULES[:3])
    log = oracle.log()
    assert list(log["status"]) == ["pending"] * 3 and log["score"].isna().all()  # kept, never a zero score
    assert oracle.n_calls == 3


def test_a_hanging_program_is_killed_at_the_timeout():
    import time

    oracle = Oracle(exec_spec("hang"), budget=10, timeout=1.0)
    t0 = time.perf_counter()
    with pytest.raises(ProgramError, match=r"did not finish a batch of 2 molecules within 1 s \(--oracle-timeout\)"):
        oracle(["CCO", "CCC"])
    assert time.perf_counter() - t0 < 30


def test_a_failed_batch_is_scored_on_resume_without_a_second_charge(tmp_path):
    flag = tmp_path / "broken"
    flag.touch()
    url = f"sqlite:///{tmp_path / 'study.db'}"
    spec = exec_spec("flaky", str(flag))
    with pytest.raises(ProgramError):
        Oracle(spec, budget=10, storage=url)(["CCO", "CCC"])
    flag.unlink()  # the program is fixed
    oracle = Oracle(spec, budget=None, storage=url)
    assert oracle.finish_pending() == 2
    log = oracle.log()
    assert list(log["status"]) == ["done", "done"] and list(log["call"]) == [1, 2]
    assert oracle.refresh() == 2


def test_exec_spec_errors_are_one_clear_line():
    with pytest.raises(ObjectiveError, match="program 'no-such-scorer' not found"):
        get_objective("exec:no-such-scorer --fast")
    with pytest.raises(ObjectiveError, match="needs a command"):
        get_objective("exec:  ")
    with pytest.raises(ObjectiveError, match="cannot split"):
        get_objective("exec:score 'unclosed")


def test_cli_reports_a_crashing_program_in_one_line(tiny_model, tmp_path, capsys):
    code = main(["optimize", str(tiny_model.path), "--objective", exec_spec("crash"), "--budget", "20",
                 "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "licence not found" in err[0] and "--resume" in err[0]


# --------------------------------------------------------------------------- parallel scoring


def slow_atoms(mol) -> float:
    import time

    time.sleep(0.01)
    return float(mol.GetNumHeavyAtoms())


def test_two_scoring_workers_keep_the_budget_exact(tiny_model, tmp_path):
    result = optimize(tiny_model, exec_spec("length"), budget=40, method="random", out=tmp_path / "run",
                      oracle_workers=2, oracle_batch=8, progress=False, seed=3)
    charged = result.df[result.df["call"].notna()]
    assert len(charged) == 40 and sorted(charged["call"]) == list(range(1, 41))
    assert charged["smiles"].is_unique
    ok = charged[charged["status"] == "done"]
    assert (ok["score"] == [round(len(s) / 10, 3) for s in ok["smiles"]]).all()


def test_python_objective_in_worker_processes_matches_one_process():
    one = Oracle(slow_atoms, budget=20)(MOLECULES)
    two = Oracle(slow_atoms, budget=20, workers=2, chunk=6)(MOLECULES)
    assert [a.score for a in one] == [a.score for a in two]


def test_bad_worker_and_batch_counts_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="oracle workers must be a positive integer"):
        Oracle("qed", budget=5, workers=0)
    code = main(["optimize", "m", "--objective", "qed", "--oracle-timeout", "-1", "--out", str(tmp_path)])
    assert code != 0 and "--oracle-timeout must be a positive" in capsys.readouterr().err


# --------------------------------------------------------------------------- directions and transforms


def test_min_negates_and_transforms_follow_reinvent():
    logp, low = get_objective("logp"), get_objective("logp:min")
    assert low("CCCCCC") == pytest.approx(-logp("CCCCCC"))
    mw = get_objective("mw")
    aspirin = "CC(=O)Oc1ccccc1C(=O)O"  # 180.16 Da
    inside = get_objective("mw:double_sigmoid(150, 250)")
    assert inside(aspirin) == pytest.approx(1.0, abs=1e-3) and inside("CCO") < 1e-3
    s = get_objective("mw:sigmoid(100, 260)")  # REINVENT: 1 / (1 + 10 ** (k * 10 * (mid - x) / (high - low)))
    x = mw(aspirin)
    assert s(aspirin) == pytest.approx(1 / (1 + 10 ** (0.5 * 10 * (180 - x) / 160)))
    assert get_objective("mw:reverse_sigmoid(100, 260)")(aspirin) == pytest.approx(1 - s(aspirin))
    assert get_objective("mw:step(150, 200)")(aspirin) == 1.0 and get_objective("mw:step(10, 20)")(aspirin) == 0.0
    assert get_objective("logp:sigmoid(low=1, high=3, k=0.25)").name == "logp:sigmoid(low=1, high=3, k=0.25)"


@pytest.mark.parametrize("spec, message", [
    ("mw:sigmoid(500, 200)", "low \\(500\\) must be below high \\(200\\)"),
    ("mw:sigmoid(200)", "needs high"),
    ("mw:step(1, 2, k=3)", "has no parameter 'k'"),
    ("mw:sigmoid(1, x)", "high must be a number"),
])
def test_bad_transforms_say_what_is_wrong(spec, message):
    with pytest.raises(ObjectiveError, match=message):
        get_objective(spec)


def test_a_transformed_program_stays_batched_and_picklable():
    import pickle

    obj = get_objective(exec_spec("length") + ":sigmoid(0.2, 0.8)")
    assert obj.batched
    (value, _), = obj.score_batch(["CCCCC"])
    assert value == pytest.approx(1 / (1 + 10 ** (0.5 * 10 * (0.5 - 0.5) / 0.6)))
    again = pickle.loads(pickle.dumps(obj))
    assert again.name == obj.name and math.isclose(again("CCCCC"), value)


# --------------------------------------------------------------------------- TOML run files


RUN_FILE = """
budget = 30
method = "random"
seed = 2
out = "run"
combine = "geometric_mean"
constraints = ["mw<=400"]

[[objectives]]
spec = "qed"
weight = 2

[[objectives]]
spec = "mw"
transform = { type = "double_sigmoid", low = 100, high = 300 }

[[objectives]]
spec = "logp"
direction = "min"
transform = "sigmoid(-3, 1)"

[oracle]
batch = 8
"""


def test_a_run_file_states_the_whole_run(tiny_model, tmp_path):
    from molvae.optimize.runfile import read_run_file

    path = tmp_path / "run.toml"
    path.write_text(f'model = "{tiny_model.path}"\n' + RUN_FILE)
    kwargs = read_run_file(path)
    assert kwargs["out"] == str(tmp_path / "run") and kwargs["budget"] == 30 and kwargs["oracle_batch"] == 8
    objective = kwargs["objective"]
    qed, mw, logp = (get_objective(s) for s in ("qed", "mw", "logp"))
    aspirin = "CC(=O)Oc1ccccc1C(=O)O"
    desirability = (qed(aspirin) ** 2 * get_objective("mw:double_sigmoid(100, 300)")(aspirin)
                    * get_objective("logp:min:sigmoid(-3, 1)")(aspirin)) ** 0.25
    assert objective(aspirin) == pytest.approx(desirability)
    assert main(["optimize", "--config", str(path), "--quiet", "--budget", "20"]) == 0  # a flag overrides the file
    calls = __import__("pandas").read_csv(tmp_path / "run" / "calls.csv")
    assert calls["call"].notna().sum() == 20


@pytest.mark.parametrize("text, message", [
    ("budgit = 3\n", "unknown key 'budgit' in the top level; allowed: model, out, budget"),
    ("budget = 0\n", "budget in the top level must be at least 1"),
    ("budget = 'ten'\n", "budget in the top level must be an integer"),
    ("[[objectives]]\nspec = 'qed'\nwieght = 2\n", "unknown key 'wieght' in \\[\\[objectives\\]\\] entry 1"),
    ("[[objectives]]\nspec = 'qed'\ndirection = 'up'\n", "direction in \\[\\[objectives\\]\\] entry 1 must be"),
    ("[[objectives]]\nspec = 'qed'\ntransform = {type = 'sigmoid', low = 1}\n", "needs high"),
    ("[[objectives]]\nspec = 'qde'\n", "unknown objective 'qde'; did you mean 'qed'"),
    ("[oracle]\nworkers = 2\nthreads = 3\n", "unknown key 'threads' in \\[oracle\\]"),
    ("method = 'annealing'\n", "method must be one of"),
    ("budget = = 3\n", "not valid TOML"),
    ("combine = 'max'\n[[objectives]]\nspec = 'qed'\n", "combine must be one of sum, geometric_mean, pareto"),
])
def test_run_file_mistakes_are_one_line_naming_the_key(tmp_path, capsys, text, message):
    path = tmp_path / "run.toml"
    path.write_text(text)
    code = main(["optimize", "--config", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1
    import re

    assert re.search(message, err[0]), err[0]
