"""Bad input at the edges: one-line errors (exit 1) instead of tracebacks, range-checked options,
no RDKit parse log on stderr where molvae reports the failure itself."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from molvae.cli import main
from molvae.errors import ConfigError

FIXTURE = Path(__file__).parent / "fixtures" / "model_8b428cc"


@pytest.fixture(scope="module")
def old_model():
    from molvae import MolVAE

    return MolVAE.load(FIXTURE, device="cpu")


def _one_line_error(capfd, command: str) -> str:
    """The error line, which must be the last line on stderr, with no traceback before it."""
    err = capfd.readouterr().err.strip()
    last = err.splitlines()[-1] if err else ""
    assert last.startswith(f"molvae {command}: error: ") and "Traceback" not in err, err
    return last


def test_train_out_is_an_existing_file(tmp_path, capfd):
    out = tmp_path / "taken.txt"
    out.write_text("not a run\n")
    assert main(["train", str(FIXTURE / "train.smi"), "--out", str(out), "--preset", "tiny", "--quiet"]) == 1
    assert "not a directory" in _one_line_error(capfd, "train")
    from molvae import MolVAE

    with pytest.raises(ConfigError, match="not a directory"):
        MolVAE.fit(str(FIXTURE / "train.smi"), out=out, preset="tiny", progress=False)


def test_sample_rejects_a_negative_temperature(tmp_path, capfd, old_model):
    assert main(["sample", str(FIXTURE), "-n", "5", "--temperature", "-1", "--out", str(tmp_path / "s.smi"),
                 "--quiet"]) == 1
    assert "temperature" in _one_line_error(capfd, "sample")
    assert not (tmp_path / "s.smi").exists()


@pytest.mark.parametrize("call", [
    lambda m: m.sample(5, temperature=-1, progress=False),
    lambda m: m.sample(5, temperature=float("nan"), progress=False),
    lambda m: m.sample(5, guidance=-2, progress=False),
    lambda m: m.sample(-1, progress=False),
    lambda m: m.sample(5, batch_size=0, progress=False),
    lambda m: m.decode([[0.0] * m.latent_dim], temperature=-0.5),
    lambda m: m.decode([[0.0] * 3]),
    lambda m: m.prior_sample(-3),
    lambda m: m.likelihood(["CCO"], k=0),
    lambda m: m.encode(["CCO"], batch_size=0),
])
def test_numeric_options_are_range_checked_in_the_api(old_model, call):
    with pytest.raises(ConfigError):
        call(old_model)


def test_bad_smarts_objective_is_one_line_without_rdkit_log(tmp_path, capfd):
    from molvae.errors import ObjectiveError
    from molvae.objectives import get_objective

    capfd.readouterr()
    with pytest.raises(ObjectiveError):
        get_objective("smarts:C(")
    assert capfd.readouterr().err == ""
    assert main(["optimize", str(FIXTURE), "--objective", "smarts:C(", "--budget", "5",
                 "--out", str(tmp_path / "opt")]) == 1
    assert "SMARTS" in _one_line_error(capfd, "optimize")


def test_optimize_option_typo_is_caught_before_the_model_loads(tmp_path):
    from molvae.optimize import optimize

    with pytest.raises(ConfigError, match=r"unknown option 'populaton'.*allowed: population, children"):
        optimize(tmp_path / "no-such-model", "qed", budget=10, options={"populaton": 200}, progress=False)
    assert not (tmp_path / "no-such-model").exists()
    with pytest.raises(ConfigError, match="allowed: batch, trust"):
        optimize(tmp_path / "no-such-model", "qed", budget=10, method="tpe", options={"bacth": 4}, progress=False)
    with pytest.raises(ConfigError, match="graph_share cannot be set with latent_share=auto"):
        optimize(tmp_path / "no-such-model", "qed", budget=10, method="graph_ga",
                 options={"latent_share": "auto", "graph_share": 0.5}, progress=False)


def test_output_path_that_is_a_directory(tmp_path, capfd):
    taken = tmp_path / "out.smi"
    taken.mkdir()
    assert main(["sample", str(FIXTURE), "-n", "3", "--out", str(taken), "--quiet"]) == 1
    assert _one_line_error(capfd, "sample") == f"molvae sample: error: {taken}: is a directory; --out takes a file name"
    assert main(["reconstruct", str(FIXTURE), str(FIXTURE / "train.smi"), "--out", str(taken)]) == 1
    assert "is a directory" in _one_line_error(capfd, "reconstruct")


def test_latent_table_that_is_not_csv(tmp_path, capfd):
    bad = tmp_path / "z.csv"
    bad.write_bytes(b"\xff\xfe\x00z0,z1\n\x00\x01")
    assert main(["decode", str(FIXTURE), str(bad)]) == 1
    _one_line_error(capfd, "decode")


def test_disk_full_is_one_line(tmp_path, capfd, monkeypatch):
    import molvae.data

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(molvae.data, "write_molecules", full)
    assert main(["sample", str(FIXTURE), "-n", "3", "--out", str(tmp_path / "s.smi"), "--quiet"]) == 1
    assert "no space left on device" in _one_line_error(capfd, "sample")


def test_permission_denied_is_one_line(tmp_path, capfd, monkeypatch):
    import molvae.data

    def denied(df, path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(molvae.data, "write_molecules", denied)
    assert main(["sample", str(FIXTURE), "-n", "3", "--out", str(tmp_path / "s.smi"), "--quiet"]) == 1
    assert _one_line_error(capfd, "sample").endswith(f"{tmp_path / 's.smi'}: permission denied")


def test_unknown_property_is_a_config_error_and_still_a_key_error():
    from molvae.chem import compute_properties

    with pytest.raises(ConfigError) as info:
        compute_properties(["CCO"], ["logp", "colour"])
    assert isinstance(info.value, KeyError)
    assert str(info.value).startswith("unknown property 'colour'")


def test_report_does_not_swallow_real_bugs(tmp_path, old_model, monkeypatch):
    from molvae.report import write_report

    def broken(*args, **kwargs):
        raise RuntimeError("a bug, not bad input")

    monkeypatch.setattr(old_model, "interpolate", broken)
    smiles = (FIXTURE / "train.smi").read_text().split()[:40]
    with pytest.raises(RuntimeError, match="a bug"):
        write_report(smiles, tmp_path / "report", model=old_model, progress=False)
