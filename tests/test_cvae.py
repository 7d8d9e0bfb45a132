"""Conditional generation: training with property conditions, sampling at requested values, and
clear errors or warnings for conditions a model cannot honour."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from molvae import MolVAE
from molvae.chem import compute_properties
from molvae.cli import main
from molvae.conditions import ConditionWarning, parse_condition
from molvae.errors import ConfigError, DataError

from conftest import read_sample


@pytest.fixture(scope="module")
def cvae(tmp_path_factory):
    """A tiny VAE conditioned on logP and QED (about 15 s on one CPU thread)."""
    out = tmp_path_factory.mktemp("cvae")
    return MolVAE.fit(read_sample(600), out=out, preset="tiny", epochs=8, lr=3e-3, seed=0, progress=False,
                      conditions=["logp", "qed"])


def _logp(df: pd.DataFrame) -> np.ndarray:
    return compute_properties(df.loc[df["valid"], "smiles"].tolist(), ["logp"])[:, 0]


def test_samples_follow_the_requested_logp(cvae):
    spec = cvae.conditions
    assert spec.names == ["logp", "qed"] and spec.sources == ["rdkit", "rdkit"]
    lo, hi = spec.mean[0] - 1.5 * spec.std[0], spec.mean[0] + 1.5 * spec.std[0]
    low = cvae.sample(200, seed=0, condition={"logp": lo}, progress=False)
    high = cvae.sample(200, seed=0, condition={"logp": hi}, progress=False)
    assert low["valid"].mean() > 0.9 and high["valid"].mean() > 0.9
    assert _logp(high).mean() > _logp(low).mean() + 0.4, (_logp(low).mean(), _logp(high).mean())
    np.testing.assert_allclose(high["condition_logp"], hi, rtol=1e-5)
    # qed was not requested: drawn from its training distribution given logp, so it varies
    assert high["condition_qed"].std() > 0.01


def test_condition_errors_and_warnings(cvae, tiny_model):
    with pytest.raises(ConfigError, match=r"unknown condition 'tpsa'; this model was trained on: logp, qed"):
        cvae.sample(5, condition={"tpsa": 50.0}, progress=False)
    with pytest.raises(ConfigError, match="finite"):
        cvae.sample(5, condition={"logp": float("nan")}, progress=False)
    with pytest.warns(ConditionWarning, match=r"logp=12 is outside the training range"):
        cvae.sample(5, condition={"logp": 12.0}, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a value inside the range is silent
        cvae.sample(5, condition={"logp": float(cvae.conditions.mean[0])}, progress=False)
    with pytest.raises(ConfigError, match="trained without conditions"):
        tiny_model.sample(5, condition={"logp": 2.0}, progress=False)
    with pytest.raises(ConfigError, match="unknown property 'lgp'.*logp, qed"):
        MolVAE.fit(read_sample(20), preset="tiny", epochs=1, conditions=["lgp"], progress=False)
    with pytest.raises(ConfigError, match="expects NAME=VALUE"):
        parse_condition("logp:3")


def test_conditional_model_round_trip_and_encode(cvae, tmp_path):
    loaded = MolVAE.load(cvae.save(tmp_path / "copy"))
    assert loaded.condition_names == ["logp", "qed"]
    a = cvae.sample(30, seed=4, condition={"logp": 3.0}, progress=False)
    b = loaded.sample(30, seed=4, condition={"logp": 3.0}, progress=False)
    assert a["smiles"].tolist() == b["smiles"].tolist()
    smiles = read_sample(5)
    np.testing.assert_array_equal(loaded.encode(smiles), cvae.encode(smiles))
    # the encoder sees the molecule's own properties: other values give another posterior
    with pytest.warns(ConditionWarning, match="logp=5 is outside"):
        other = cvae.encode(smiles, condition={"logp": 5.0})
    assert not np.allclose(cvae.encode(smiles), other)
    assert cvae.reconstruct(smiles)["smiles"].notna().all()
    (tmp_path / "copy" / "conditions.json").unlink()
    with pytest.raises(Exception, match="conditions.json"):
        MolVAE.load(tmp_path / "copy")


def test_sample_cli_with_conditions(cvae, capsys):
    assert main(["sample", str(cvae.path), "-n", "10", "--condition", "logp=3.0,qed=0.8", "--quiet"]) == 0
    out = capsys.readouterr()
    assert "warning" not in out.err and "condition_logp" in out.out
    assert main(["sample", str(cvae.path), "-n", "5", "--condition", "logp=15", "--quiet"]) == 0
    assert "molvae sample: warning: condition logp=15 is outside the training range" in capsys.readouterr().err
    assert main(["sample", str(cvae.path), "-n", "5", "--condition", "mw=300"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "molvae sample: error: unknown condition 'mw'; this model was trained on: logp, qed"


def test_condition_columns_from_a_csv(tmp_path, capsys):
    smiles = read_sample(150)
    values = [f"{0.01 * i:.2f}" for i in range(150)]
    values[7] = "n/a"
    data = tmp_path / "assay.csv"
    pd.DataFrame({"smiles": smiles, "pic50": values}).to_csv(data, index=False)
    run = tmp_path / "run"
    assert main(["train", str(data), "--out", str(run), "--preset", "tiny", "--epochs", "1",
                 "--condition-columns", "pic50", "--quiet"]) == 0
    rejects = pd.read_csv(run / "rejects.csv")
    assert rejects["line"].tolist() == [9]  # header is line 1
    assert "pic50" in rejects["reason"].iloc[0] and "not a finite number" in rejects["reason"].iloc[0]
    spec = json.loads((run / "conditions.json").read_text())
    assert spec["names"] == ["pic50"] and spec["sources"] == ["column"]
    assert 0.0 <= spec["min"][0] < spec["max"][0] <= 1.49
    model = MolVAE.load(run)
    assert model.sample(10, condition={"pic50": 1.0}, progress=False)["valid"].mean() > 0.5
    with pytest.warns(ConditionWarning, match="no values given for condition pic50"):
        model.encode(smiles[:3])
    capsys.readouterr()
    assert main(["train", str(data), "--out", str(tmp_path / "r2"), "--preset", "tiny", "--epochs", "1",
                 "--condition-columns", "ic50", "--quiet"]) == 1
    assert "no condition column 'ic50'" in capsys.readouterr().err
    with pytest.raises(DataError, match="CSV/TSV file or a DataFrame"):
        MolVAE.fit(smiles, preset="tiny", epochs=1, condition_columns=["pic50"], progress=False)
