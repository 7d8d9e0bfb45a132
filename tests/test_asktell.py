"""Ask / tell: batches scored outside molvae, on SQLite and (with a server) PostgreSQL."""

from __future__ import annotations

import os
import uuid

import pandas as pd
import pytest

from molvae.cli import main
from molvae.errors import ConfigError
from molvae.objectives import get_objective
from molvae.optimize import AskTellStudy

PG_URL = os.environ.get("MOLVAE_TEST_POSTGRES_URL")
QED = get_objective("qed")


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request, tmp_path):
    if request.param == "sqlite":
        return {"out": tmp_path / "lab"}
    if not PG_URL:
        pytest.skip("MOLVAE_TEST_POSTGRES_URL is not set (start a server with scripts/start_postgres.sh)")
    return {"out": tmp_path / "lab", "storage": PG_URL, "study_name": f"asktell-{uuid.uuid4().hex[:8]}"}


def test_ask_kill_tell_ask_loses_nothing_and_charges_once(tiny_model, storage):
    first = AskTellStudy(tiny_model, budget=30, objective="lab:qed", seed=1, **storage)
    batch = first.ask(12)
    assert len(batch) == 12 == len(set(batch)) and first.result().df["call"].notna().sum() == 0  # not charged yet
    del first  # the process dies between ask and tell
    again = AskTellStudy(tiny_model, objective="lab:qed", seed=1, **storage)
    assert again.outstanding() == batch
    assert again.tell(batch, [QED(s) for s in batch]) == {"charged": 12, "already": 0}
    assert again.tell(batch[:3], [0.0, 0.0, 0.0]) == {"charged": 0, "already": 3}  # told twice: charged once
    second = again.ask(12)
    assert not set(second) & set(batch) and len(second) == 12  # never asked twice
    assert again.remaining == 30 - 12 - 12
    third = again.ask(100)
    assert len(third) == 6  # the budget caps what can be out at once
    df = again.result().df
    charged = df[df["call"].notna()]
    assert sorted(charged["call"]) == list(range(1, 13)) and charged["smiles"].is_unique
    assert dict(zip(charged["smiles"], charged["score"])) == pytest.approx({s: QED(s) for s in batch})
    with pytest.raises(ConfigError, match="19 new scores but only 18"):  # over budget: nothing recorded
        again.tell(second + third + ["CCO"], [0.5] * 19)
    assert again.result().df["call"].notna().sum() == 12
    again.close()


def hetero_share(smiles: str) -> float:
    """The share of heavy atoms that are not carbon (a score the GA's size window does not cap)."""
    from rdkit import Chem

    atoms = Chem.MolFromSmiles(smiles).GetAtoms()
    return sum(a.GetSymbol() != "C" for a in atoms) / max(1, len(atoms))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_later_batches_breed_from_the_told_scores(tiny_model, tmp_path, seed):
    study = AskTellStudy(tiny_model, budget=200, objective="lab:hetero", out=tmp_path / "lab", seed=seed)
    for _ in range(4):
        batch = study.ask(40)
        study.tell(batch, [hetero_share(s) for s in batch])
    df = study.result().df.sort_values("call")
    first, last = df["score"].iloc[:40], df["score"].iloc[-40:]
    assert last.mean() > first.mean() + 0.1, (first.mean(), last.mean())  # children of the best beat the prior
    study.close()


def test_ask_tell_from_the_command_line(tiny_model, tmp_path, capsys):
    out = tmp_path / "lab"
    assert main(["optimize", str(tiny_model.path), "--objective", "lab:pIC50", "--budget", "20", "--ask", "6",
                 "--out", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    asked = pd.read_csv(out / "ask_001.csv")["smiles"].tolist()
    assert captured.out.split() == asked and len(asked) == 6 and "6 await scores" in captured.err
    scores = pd.DataFrame({"SMILES": asked + ["not-a-smiles"], "pIC50": ["7.1", "", "failed", "abc", "6", "5.5", "8"]})
    scores.to_csv(tmp_path / "measured.csv", index=False)
    assert main(["optimize", "--tell", str(out), str(tmp_path / "measured.csv")]) == 0
    err = capsys.readouterr().err
    assert "told 4 scores: 4 charged" in err and "2 rows rejected" in err and "2 await scores" in err
    rejects = pd.read_csv(out / "tell_rejects.csv")
    assert list(rejects["line"]) == [5, 8] and "not a number" in rejects["reason"][0]
    assert "invalid SMILES" in rejects["reason"][1]
    calls = pd.read_csv(out / "calls.csv")
    assert calls["call"].notna().sum() == 4 and (calls["status"] == "failed").sum() == 1
    assert pd.read_csv(out / "outstanding.csv")["smiles"].tolist() == [asked[1], asked[3]]
    assert main(["optimize", str(tiny_model.path), "--ask", "4", "--out", str(out), "--quiet"]) == 0
    assert len(pd.read_csv(out / "ask_002.csv")) == 4


@pytest.mark.parametrize("argv, message", [
    (["--objective", "qed", "--ask", "5"], "--ask needs a measured objective, lab:NAME"),
    (["--ask", "0"], "--ask must be a positive number"),
])
def test_ask_mistakes_are_one_line(tiny_model, tmp_path, capsys, argv, message):
    code = main(["optimize", str(tiny_model.path), "--out", str(tmp_path / "lab"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and message in err[0]


def test_tell_mistakes_are_one_line(tiny_model, tmp_path, capsys):
    assert main(["optimize", "--tell", str(tmp_path), str(tmp_path / "x.csv")]) == 1
    assert "holds no ask/tell study" in capsys.readouterr().err
    out = tmp_path / "lab"
    main(["optimize", str(tiny_model.path), "--ask", "2", "--out", str(out), "--quiet"])
    capsys.readouterr()
    (tmp_path / "bad.csv").write_text("molecule,value\nCCO,1\n")
    assert main(["optimize", "--tell", str(out), str(tmp_path / "bad.csv")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a 'smiles' column and a 'score'" in err[0]


def test_the_surrogate_picks_better_batches_than_the_moves_alone(tiny_model, tmp_path):
    last = {}
    for screen in (1, 4):
        study = AskTellStudy(tiny_model, budget=200, objective="lab:hetero", out=tmp_path / f"s{screen}", screen=screen)
        for _ in range(4):
            batch = study.ask(40)
            study.tell(batch, [hetero_share(s) for s in batch])
        last[screen] = study.result().df.sort_values("call")["score"].iloc[-40:].mean()
        study.close()
    assert last[4] > last[1] + 0.05, last
